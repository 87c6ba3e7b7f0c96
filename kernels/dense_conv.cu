// dense_conv.cu — the im2col / col2im halves of a dense (groups = 1) convolution; the GEMM
// between them is gemm_f32. Layout: x NCHW view of one image, col[(c*k + kh)*k + kw][oh*Wo + ow].
// Launch: one thread per col element (im2col) or per input element (col2im, a gather with no
// atomics: each input pixel sums the taps that read it). Bound by memory.
#include "common.cuh"

KERNEL void im2col(const float* __restrict__ x, int C, int H, int W, int k, int stride, int pad,
                   int Ho, int Wo, float* __restrict__ col)
{
    i64 total = (i64)C * k * k * Ho * Wo;
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x)
    {
        int ow = (int)(e % Wo);
        int oh = (int)((e / Wo) % Ho);
        i64 row = e / ((i64)Ho * Wo);
        int kw = (int)(row % k), kh = (int)((row / k) % k), c = (int)(row / ((i64)k * k));
        int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
        col[e] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? x[((i64)c * H + ih) * W + iw] : 0.f;
    }
}

KERNEL void col2im(const float* __restrict__ col, int C, int H, int W, int k, int stride, int pad,
                   int Ho, int Wo, float* __restrict__ dx, int accumulate)
{
    i64 total = (i64)C * H * W;
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x)
    {
        int iw = (int)(e % W), ih = (int)((e / W) % H), c = (int)(e / ((i64)H * W));
        float s = 0.f;
        for (int kh = 0; kh < k; kh++)
        {
            int t = ih + pad - kh;
            if (t < 0 || t % stride != 0) continue;
            int oh = t / stride;
            if (oh >= Ho) continue;
            for (int kw = 0; kw < k; kw++)
            {
                int u = iw + pad - kw;
                if (u < 0 || u % stride != 0) continue;
                int ow = u / stride;
                if (ow >= Wo) continue;
                s += col[(((i64)c * k + kh) * k + kw) * Ho * Wo + (i64)oh * Wo + ow];
            }
        }
        dx[e] = accumulate ? dx[e] + s : s;
    }
}

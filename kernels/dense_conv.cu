// dense_conv.cu — the im2col / col2im halves of a dense (groups = 1) convolution; the GEMM
// between them is gemm_f32. Layout: x NCHW view of `images` images (xs apart), col holds each
// image's [(c*k + kh)*k + kw][oh*Wo + ow] matrix, one after another. Launch: grid-stride, one
// thread per col element (im2col) or per input element (col2im, a gather with no atomics: each
// input pixel sums the taps that read it). Bound by memory. x, col and dx are activations (act):
// with bf16 ones the columns are bf16 too, as the GEMMs between read and write them.
#include "common.cuh"

KERNEL void im2col(const act* __restrict__ x, i64 xs, int images, int C, int H, int W, int k, int stride, int pad,
                   int Ho, int Wo, act* __restrict__ col)
{
    i64 per_image = (i64)C * k * k * Ho * Wo, total = per_image * images;
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x)
    {
        i64 n = e / per_image, r = e % per_image;
        int ow = (int)(r % Wo);
        int oh = (int)((r / Wo) % Ho);
        i64 row = r / ((i64)Ho * Wo);
        int kw = (int)(row % k), kh = (int)((row / k) % k), c = (int)(row / ((i64)k * k));
        int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
        col[e] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? ld(x[n * xs + ((i64)c * H + ih) * W + iw]) : 0.f;
    }
}

KERNEL void col2im(const act* __restrict__ col, int images, int C, int H, int W, int k, int stride, int pad,
                   int Ho, int Wo, act* __restrict__ dx, i64 dxs, int accumulate)
{
    i64 per_image = (i64)C * H * W, total = per_image * images;
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x)
    {
        i64 n = e / per_image, r = e % per_image;
        const act* cn = col + n * ((i64)C * k * k * Ho * Wo);
        int iw = (int)(r % W), ih = (int)((r / W) % H), c = (int)(r / ((i64)H * W));
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
                s += cn[(((i64)c * k + kh) * k + kw) * Ho * Wo + (i64)oh * Wo + ow];
            }
        }
        act* d = dx + n * dxs + r;
        *d = accumulate ? *d + s : s;
    }
}

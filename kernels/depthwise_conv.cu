// depthwise_conv.cu — k x k depthwise convolution, stride 1 or 2, zero padding, with a channel
// multiplier m (Cout = m * Cin; output channel o reads input channel o / m), NCHW views.
// Forward: one thread per output element. Backward data: one thread per input element,
// gathering the outputs that read it (no atomics). Backward weight: grid (Cout, S), block (co, s)
// of REDUCE_THREADS threads covering the s-th chunk of co's (n, oh, ow) positions; each thread
// accumulates all k*k taps over its share in registers, then one shared-memory pass and a warp
// reduction per tap. S > 1 (few channels) writes parts that depthwise_conv_finish_weight adds in
// chunk order. Bound by memory (forward, data) and by the reduction (weight).
#include "common.cuh"

#define MAX_TAPS 25 // k <= 5

KERNEL void depthwise_conv_fwd(const float* __restrict__ x, i64 xs, const float* __restrict__ w,
                               float* __restrict__ y, i64 ys, int N, int Cin, int H, int W,
                               int Cout, int Ho, int Wo, int k, int stride, int pad)
{
    int m = Cout / Cin;
    i64 per_image = (i64)Cout * Ho * Wo, total = per_image * N;
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x)
    {
        int ow = (int)(e % Wo), oh = (int)((e / Wo) % Ho);
        int co = (int)((e / ((i64)Ho * Wo)) % Cout), n = (int)(e / per_image);
        const float* xp = x + n * xs + (i64)(co / m) * H * W;
        const float* wp = w + (i64)co * k * k;
        float s = 0.f;
        for (int kh = 0; kh < k; kh++)
        {
            int ih = oh * stride - pad + kh;
            if (ih < 0 || ih >= H) continue;
            for (int kw = 0; kw < k; kw++)
            {
                int iw = ow * stride - pad + kw;
                if (iw >= 0 && iw < W) s = fmaf(xp[(i64)ih * W + iw], wp[kh * k + kw], s);
            }
        }
        y[n * ys + (i64)co * Ho * Wo + (i64)oh * Wo + ow] = s;
    }
}

KERNEL void depthwise_conv_bwd_data(const float* __restrict__ dy, i64 dys, const float* __restrict__ w,
                                    float* __restrict__ dx, i64 dxs, int N, int Cin, int H, int W,
                                    int Cout, int Ho, int Wo, int k, int stride, int pad, int accumulate)
{
    int m = Cout / Cin;
    i64 per_image = (i64)Cin * H * W, total = per_image * N;
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x)
    {
        int iw = (int)(e % W), ih = (int)((e / W) % H);
        int ci = (int)((e / ((i64)H * W)) % Cin), n = (int)(e / per_image);
        float s = 0.f;
        for (int j = 0; j < m; j++)
        {
            int co = ci * m + j;
            const float* dyp = dy + n * dys + (i64)co * Ho * Wo;
            const float* wp = w + (i64)co * k * k;
            for (int kh = 0; kh < k; kh++)
            {
                int t = ih + pad - kh;
                if (t < 0 || t % stride != 0 || t / stride >= Ho) continue;
                int oh = t / stride;
                for (int kw = 0; kw < k; kw++)
                {
                    int u = iw + pad - kw;
                    if (u < 0 || u % stride != 0 || u / stride >= Wo) continue;
                    s = fmaf(dyp[(i64)oh * Wo + u / stride], wp[kh * k + kw], s);
                }
            }
        }
        float* p = dx + n * dxs + (i64)ci * H * W + (i64)ih * W + iw;
        *p = accumulate ? *p + s : s;
    }
}

KERNEL void depthwise_conv_bwd_weight(const float* __restrict__ x, i64 xs, const float* __restrict__ dy, i64 dys,
                                      float* __restrict__ dw, int N, int Cin, int H, int W,
                                      int Cout, int Ho, int Wo, int k, int stride, int pad, i64 chunk, double* __restrict__ parts)
{
    int co = blockIdx.x, m = Cout / Cin, taps = k * k, S = gridDim.y;
    float acc[MAX_TAPS];
    for (int t = 0; t < MAX_TAPS; t++) acc[t] = 0.f;
    i64 plane = (i64)Ho * Wo, total = plane * N, lo = blockIdx.y * chunk, hi = lo + chunk < total ? lo + chunk : total;
    for (i64 e = lo + threadIdx.x; e < hi; e += blockDim.x)
    {
        int n = (int)(e / plane), ow = (int)(e % Wo), oh = (int)((e % plane) / Wo);
        float g = dy[n * dys + (i64)co * plane + e % plane];
        const float* xp = x + n * xs + (i64)(co / m) * H * W;
        for (int kh = 0; kh < k; kh++)
        {
            int ih = oh * stride - pad + kh;
            if (ih < 0 || ih >= H) continue;
            for (int kw = 0; kw < k; kw++)
            {
                int iw = ow * stride - pad + kw;
                if (iw >= 0 && iw < W) acc[kh * k + kw] = fmaf(g, xp[(i64)ih * W + iw], acc[kh * k + kw]);
            }
        }
    }
    // Every thread's partial sums pass through shared memory once; warp w then reduces taps w,
    // w + 8, ...: one block barrier in all instead of two per tap (50 at k = 5).
    __shared__ float partial[MAX_TAPS][REDUCE_THREADS];
    for (int t = 0; t < taps; t++) partial[t][threadIdx.x] = acc[t];
    __syncthreads();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int t = warp; t < taps; t += blockDim.x >> 5)
    {
        double s = 0;
        for (int i = lane; i < blockDim.x; i += 32) s += partial[t][i];
        s = warp_sum(s);
        if (lane != 0) continue;
        if (S == 1) dw[(i64)co * taps + t] = (float)s;
        else parts[((i64)co * S + blockIdx.y) * taps + t] = s;
    }
}

// dw[co, t] = sum over the S chunks of parts[(co * S + s) * taps + t], in chunk order.
KERNEL void depthwise_conv_finish_weight(const double* __restrict__ parts, int S, int Cout, int taps, float* __restrict__ dw)
{
    FOR_EACH((i64)Cout * taps)
    {
        i64 co = e / taps, t = e % taps;
        double s = 0;
        for (int j = 0; j < S; j++) s += parts[(co * S + j) * taps + t];
        dw[e] = (float)s;
    }
}

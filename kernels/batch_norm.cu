// batch_norm.cu — batch norm over (N, H, W) per channel with an optional fused ReLU, PyTorch
// semantics: the biased variance normalises, the unbiased one enters running_var; momentum
// weights the new statistic. Statistics and gradient sums: one block per channel, two passes
// (mean, then centred second moment), accumulated in double. Normalisation and dx: one thread
// per element. Bound by memory (three or four passes over the activation).
#include "common.cuh"

KERNEL void batch_norm_stats(const float* __restrict__ x, i64 xs, int N, int C, int P,
                             float* __restrict__ save_mean, float* __restrict__ save_invstd,
                             float* __restrict__ running_mean, float* __restrict__ running_var,
                             float momentum, float eps)
{
    int c = blockIdx.x;
    i64 M = (i64)N * P;
    double s = 0;
    for (i64 e = threadIdx.x; e < M; e += blockDim.x) s += x[(e / P) * xs + (i64)c * P + e % P];
    double mean = block_sum<double>(s) / M;
    double q = 0;
    for (i64 e = threadIdx.x; e < M; e += blockDim.x)
    {
        double d = x[(e / P) * xs + (i64)c * P + e % P] - mean;
        q += d * d;
    }
    double var = block_sum<double>(q) / M;
    if (threadIdx.x == 0)
    {
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)(1.0 / sqrt(var + eps));
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * var * M / (M - 1));
    }
}

// y = x * scale + shift (then ReLU), scale = gamma * invstd, shift = beta - mean * scale; with
// use_running the statistics are the running ones (eval mode).
KERNEL void batch_norm_apply(const float* __restrict__ x, i64 xs, float* __restrict__ y, i64 ys,
                             int N, int C, int P, const float* __restrict__ gamma, const float* __restrict__ beta,
                             const float* __restrict__ mean, const float* __restrict__ invstd_or_var,
                             int use_running, float eps, int relu)
{
    i64 per_image = (i64)C * P, total = per_image * N;
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x)
    {
        int c = (int)((e % per_image) / P);
        float invstd = use_running ? rsqrtf(invstd_or_var[c] + eps) : invstd_or_var[c];
        float scale = gamma[c] * invstd, shift = beta[c] - mean[c] * scale;
        float v = fmaf(x[view_offset(e, per_image, xs)], scale, shift);
        if (relu && v < 0.f) v = 0.f;
        y[view_offset(e, per_image, ys)] = v;
    }
}

// dgamma = sum dy' (x - mean) invstd, dbeta = sum dy', dy' = dy masked by y > 0 under ReLU.
KERNEL void batch_norm_bwd_reduce(const float* __restrict__ x, i64 xs, const float* __restrict__ y, i64 ys,
                                  const float* __restrict__ dy, i64 dys, int N, int C, int P,
                                  const float* __restrict__ mean, const float* __restrict__ invstd,
                                  float* __restrict__ dgamma, float* __restrict__ dbeta, int relu)
{
    int c = blockIdx.x;
    i64 M = (i64)N * P;
    float mu = mean[c];
    double sg = 0, sgx = 0;
    for (i64 e = threadIdx.x; e < M; e += blockDim.x)
    {
        i64 n = e / P, p = e % P;
        float g = dy[n * dys + (i64)c * P + p];
        if (relu && !(y[n * ys + (i64)c * P + p] > 0.f)) g = 0.f;
        sg += g;
        sgx += (double)g * (x[n * xs + (i64)c * P + p] - mu);
    }
    sg = block_sum<double>(sg);
    sgx = block_sum<double>(sgx);
    if (threadIdx.x == 0)
    {
        dgamma[c] = (float)(sgx * invstd[c]);
        dbeta[c] = (float)sg;
    }
}

// dx = gamma invstd (dy' - dbeta / M - (x - mean) invstd dgamma / M), written or added.
KERNEL void batch_norm_bwd_data(const float* __restrict__ x, i64 xs, const float* __restrict__ y, i64 ys,
                                const float* __restrict__ dy, i64 dys, float* __restrict__ dx, i64 dxs,
                                int N, int C, int P, const float* __restrict__ gamma,
                                const float* __restrict__ mean, const float* __restrict__ invstd,
                                const float* __restrict__ dgamma, const float* __restrict__ dbeta,
                                int relu, int accumulate)
{
    i64 per_image = (i64)C * P, total = per_image * N;
    float inv_m = 1.f / (float)((i64)N * P);
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x)
    {
        int c = (int)((e % per_image) / P);
        float g = dy[view_offset(e, per_image, dys)];
        if (relu && !(y[view_offset(e, per_image, ys)] > 0.f)) g = 0.f;
        float a = gamma[c] * invstd[c];
        float xc = x[view_offset(e, per_image, xs)] - mean[c];
        float v = a * (g - dbeta[c] * inv_m - xc * invstd[c] * dgamma[c] * inv_m);
        float* p = dx + view_offset(e, per_image, dxs);
        *p = accumulate ? *p + v : v;
    }
}

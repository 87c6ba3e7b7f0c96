// batch_norm.cu — batch norm over (N, H, W) per channel with an optional fused ReLU, PyTorch
// semantics: the biased variance normalises, the unbiased one enters running_var; momentum
// weights the new statistic. Statistics and gradient sums: grid (C, S), block (c, s) covering
// the s-th of S chunks of channel c's N * P values, accumulated in double; the statistics in two
// passes (mean, then centred second moment). With S = 1 a block writes the results; with S > 1
// (when C alone cannot fill the device, e.g. 16 channels at 112x112) it writes its part and a
// finish kernel combines the parts in chunk order, so results never depend on timing.
// Normalisation and dx: one thread per element. Bound by memory (three or four passes).
#include "common.cuh"

__device__ __forceinline__ void store_stats(int c, double mean, double var, i64 M, float* __restrict__ save_mean,
                                            float* __restrict__ save_invstd, float* __restrict__ running_mean,
                                            float* __restrict__ running_var, float momentum, float eps)
{
    save_mean[c] = (float)mean;
    save_invstd[c] = (float)(1.0 / sqrt(var + eps));
    running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
    running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * var * M / (M - 1));
}

// Statistics of chunk blockIdx.y (of `chunk` values) of channel blockIdx.x. S = 1: the results;
// S > 1: (count, mean, centred sum of squares) to parts[(c * S + s) * 3 ...].
KERNEL void batch_norm_stats(const float* __restrict__ x, i64 xs, int N, int C, int P, i64 chunk,
                             float* __restrict__ save_mean, float* __restrict__ save_invstd,
                             float* __restrict__ running_mean, float* __restrict__ running_var,
                             float momentum, float eps, double* __restrict__ parts)
{
    int c = blockIdx.x, S = gridDim.y;
    i64 M = (i64)N * P, lo = blockIdx.y * chunk, hi = lo + chunk < M ? lo + chunk : M;
    i64 count = hi > lo ? hi - lo : 0;
    double s = 0;
    for (i64 e = lo + threadIdx.x; e < hi; e += blockDim.x) s += x[(e / P) * xs + (i64)c * P + e % P];
    s = block_sum<double>(s);
    double mean = count > 0 ? s / count : 0.0;
    double q = 0;
    for (i64 e = lo + threadIdx.x; e < hi; e += blockDim.x)
    {
        double d = x[(e / P) * xs + (i64)c * P + e % P] - mean;
        q += d * d;
    }
    q = block_sum<double>(q);
    if (threadIdx.x != 0) return;
    if (S == 1)
    {
        store_stats(c, mean, q / M, M, save_mean, save_invstd, running_mean, running_var, momentum, eps);
        return;
    }
    double* part = parts + ((i64)c * S + blockIdx.y) * 3;
    part[0] = (double)count;
    part[1] = mean;
    part[2] = q;
}

// Combines the S chunk statistics of each channel in order (Chan, Golub and LeVeque's pairwise
// update of count, mean and centred sum of squares). One thread per channel.
KERNEL void batch_norm_finish_stats(const double* __restrict__ parts, int S, int C, i64 M,
                                    float* __restrict__ save_mean, float* __restrict__ save_invstd,
                                    float* __restrict__ running_mean, float* __restrict__ running_var,
                                    float momentum, float eps)
{
    FOR_EACH(C)
    {
        double n = 0, mean = 0, q = 0;
        for (int s = 0; s < S; s++)
        {
            const double* part = parts + (e * S + s) * 3;
            double nb = part[0];
            if (nb == 0) continue;
            double total = n + nb, d = part[1] - mean;
            mean += d * nb / total;
            q += part[2] + d * d * n * nb / total;
            n = total;
        }
        store_stats((int)e, mean, q / M, M, save_mean, save_invstd, running_mean, running_var, momentum, eps);
    }
}

// y = x * scale + shift (then ReLU), scale = gamma * invstd, shift = beta - mean * scale; with
// use_running the statistics are the running ones (eval mode).
KERNEL void batch_norm_apply(const float* __restrict__ x, i64 xs, float* __restrict__ y, i64 ys,
                             int N, int C, int P, const float* __restrict__ gamma, const float* __restrict__ beta,
                             const float* __restrict__ mean, const float* __restrict__ invstd_or_var,
                             int use_running, float eps, int with_relu)
{
    i64 per_image = (i64)C * P, total = per_image * N;
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x)
    {
        int c = (int)((e % per_image) / P);
        float invstd = use_running ? rsqrtf(invstd_or_var[c] + eps) : invstd_or_var[c];
        float scale = gamma[c] * invstd, shift = beta[c] - mean[c] * scale;
        float v = fmaf(x[view_offset(e, per_image, xs)], scale, shift);
        if (with_relu) v = relu(v);
        y[view_offset(e, per_image, ys)] = v;
    }
}

// dgamma = sum dy' (x - mean) invstd, dbeta = sum dy', dy' = relu_grad(y, dy) under ReLU, over
// chunk blockIdx.y of channel blockIdx.x. S = 1: the results; S > 1: the two sums to
// parts[(c * S + s) * 2 ...], added in order by batch_norm_finish_bwd.
KERNEL void batch_norm_bwd_reduce(const float* __restrict__ x, i64 xs, const float* __restrict__ y, i64 ys,
                                  const float* __restrict__ dy, i64 dys, int N, int C, int P, i64 chunk,
                                  const float* __restrict__ mean, const float* __restrict__ invstd,
                                  float* __restrict__ dgamma, float* __restrict__ dbeta, int with_relu, double* __restrict__ parts)
{
    int c = blockIdx.x, S = gridDim.y;
    i64 M = (i64)N * P, lo = blockIdx.y * chunk, hi = lo + chunk < M ? lo + chunk : M;
    float mu = mean[c];
    double sg = 0, sgx = 0;
    for (i64 e = lo + threadIdx.x; e < hi; e += blockDim.x)
    {
        i64 n = e / P, p = e % P;
        float g = dy[n * dys + (i64)c * P + p];
        if (with_relu) g = relu_grad(y[n * ys + (i64)c * P + p], g);
        sg += g;
        sgx += (double)g * (x[n * xs + (i64)c * P + p] - mu);
    }
    sg = block_sum<double>(sg);
    sgx = block_sum<double>(sgx);
    if (threadIdx.x != 0) return;
    if (S == 1)
    {
        dgamma[c] = (float)(sgx * invstd[c]);
        dbeta[c] = (float)sg;
        return;
    }
    double* part = parts + ((i64)c * S + blockIdx.y) * 2;
    part[0] = sg;
    part[1] = sgx;
}

// Adds the S chunk sums of each channel in order. One thread per channel.
KERNEL void batch_norm_finish_bwd(const double* __restrict__ parts, int S, int C, const float* __restrict__ invstd,
                                  float* __restrict__ dgamma, float* __restrict__ dbeta)
{
    FOR_EACH(C)
    {
        double sg = 0, sgx = 0;
        for (int s = 0; s < S; s++)
        {
            sg += parts[(e * S + s) * 2];
            sgx += parts[(e * S + s) * 2 + 1];
        }
        dgamma[e] = (float)(sgx * invstd[e]);
        dbeta[e] = (float)sg;
    }
}

// dx = gamma invstd (dy' - dbeta / M - (x - mean) invstd dgamma / M), written or added.
KERNEL void batch_norm_bwd_data(const float* __restrict__ x, i64 xs, const float* __restrict__ y, i64 ys,
                                const float* __restrict__ dy, i64 dys, float* __restrict__ dx, i64 dxs,
                                int N, int C, int P, const float* __restrict__ gamma,
                                const float* __restrict__ mean, const float* __restrict__ invstd,
                                const float* __restrict__ dgamma, const float* __restrict__ dbeta,
                                int with_relu, int accumulate)
{
    i64 per_image = (i64)C * P, total = per_image * N;
    float inv_m = 1.f / (float)((i64)N * P);
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x)
    {
        int c = (int)((e % per_image) / P);
        float g = dy[view_offset(e, per_image, dys)];
        if (with_relu) g = relu_grad(y[view_offset(e, per_image, ys)], g);
        float a = gamma[c] * invstd[c];
        float xc = x[view_offset(e, per_image, xs)] - mean[c];
        float v = a * (g - dbeta[c] * inv_m - xc * invstd[c] * dgamma[c] * inv_m);
        float* p = dx + view_offset(e, per_image, dxs);
        *p = accumulate ? *p + v : v;
    }
}

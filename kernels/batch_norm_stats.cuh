// batch_norm_stats.cuh — the end of a batch-norm statistics block, shared by batch_norm_stats and
// by the depthwise forward that sums its own output's statistics (depthwise_conv_fwd_stats, v2.5).
// Both kernels accumulate the same sums in the same order and finish them here, so the fused and
// the unfused path give the same statistics bit for bit.
#pragma once
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

// The shift of a chunk's one-pass sums: its first value, or 0 when that is not finite (an Inf
// would make every d NaN; the mean is Inf then, as on the CPU).
__device__ __forceinline__ double stats_shift(float first)
{
    double shift = first;
    return shift - shift != 0.0 ? 0.0 : shift;
}

// The batch-norm statistics of the M = N * P values of channel c, where this block (every thread
// calls it) holds in s1 and s2 its threads' sums of d = v - shift and d^2 over chunk blockIdx.y
// of gridDim.y (count values). S = 1: the results; S > 1: (count, mean, centred sum of squares)
// to parts[(c * S + s) * 3 ...], and the channel's last block to finish combines them in chunk
// order, so the result never depends on timing.
__device__ __forceinline__ void finish_stats(int c, i64 count, i64 M, double shift, double s1, double s2,
                                             float* __restrict__ save_mean, float* __restrict__ save_invstd,
                                             float* __restrict__ running_mean, float* __restrict__ running_var,
                                             float momentum, float eps, double* __restrict__ parts, unsigned* __restrict__ done)
{
    int S = gridDim.y;
    s1 = block_sum<double>(s1);
    s2 = block_sum<double>(s2);
    if (threadIdx.x != 0) return;
    double mean = count > 0 ? shift + s1 / count : 0.0, q = count > 0 ? s2 - s1 * s1 / count : 0.0;
    q = q < 0.0 ? 0.0 : q; // rounding can take the shifted form just below 0 (never NaN to 0)
    if (S == 1)
    {
        store_stats(c, mean, q / M, M, save_mean, save_invstd, running_mean, running_var, momentum, eps);
        return;
    }
    double* part = parts + ((i64)c * S + blockIdx.y) * 3;
    part[0] = (double)count;
    part[1] = mean;
    part[2] = q;
    if (!last_to_arrive(done, c, S)) return;
    // Chan, Golub and LeVeque's pairwise update of count, mean and centred sum of squares.
    const volatile double* all = parts + (i64)c * S * 3; // written by other blocks: no cached copy
    double n = 0;
    mean = 0, q = 0;
    for (int s = 0; s < S; s++)
    {
        double nb = all[s * 3];
        if (nb == 0) continue;
        double total = n + nb, mb = all[s * 3 + 1], d = mb - mean;
        // A non-finite mean combines as the sum it stands for (Inf stays Inf, as on the CPU):
        // the pairwise update would add Inf - Inf. The variance is NaN then, as on the CPU.
        mean = d - d == 0.0 ? mean + d * nb / total : (n * mean + nb * mb) / total;
        q += all[s * 3 + 2] + d * d * n * nb / total;
        n = total;
    }
    store_stats(c, mean, q / M, M, save_mean, save_invstd, running_mean, running_var, momentum, eps);
}

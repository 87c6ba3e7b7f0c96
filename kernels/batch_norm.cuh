// batch_norm.cuh — the batch-norm pieces that batch_norm.cu shares with the depthwise kernels that
// fuse a batch norm (v2.5, v2.7): the end of a statistics block (finish_stats), the normalisation
// (BnAffine) and the input gradient (BnInputGrad). Fused and unfused kernels compute through the
// same functions, with explicit fmaf where rounding could otherwise depend on the compiler's
// contraction choices, so both paths give the same values bit for bit.
#pragma once
#include "common.cuh"

// The normalisation as an affine map per channel: y = fmaf(x, scale, shift), scale = gamma *
// invstd, shift = beta - mean * scale. Written with explicit fmaf so that the backward kernels,
// which recompute y from x for the activation's gradient instead of reading y (v2.4), get the very
// value the forward wrote: no contraction choice of the compiler can differ between kernels.
struct BnAffine
{
    float scale, shift;
    __device__ __forceinline__ BnAffine(float gamma, float beta, float mean, float invstd)
        : scale(gamma * invstd), shift(fmaf(-mean, gamma * invstd, beta)) {}
    __device__ __forceinline__ float operator()(float x) const { return fmaf(x, scale, shift); }
};

// A batch norm's output from its input: y = BnAffine(x), then its activation. batch_norm_apply
// and the depthwise forward that applies its input's batch norm as it reads it (v2.11) both
// compute through it, so the value the conv reads is the value batch_norm_apply writes.
//
// Every struct here has two forms. The call operator (and add) knows none and ReLU, any nonzero
// kind meaning ReLU: the fused conv kernels', whose host runs a batch norm with any other
// activation unfused (a hard-swish in each of their unrolled taps cost up to 24 registers and
// spills: issue 14). The _any form knows every kind bn_activation does: the plain batch-norm
// kernels'. For none and ReLU the two compute the same operations.
struct BnApply
{
    BnAffine affine;
    int act_kind;
    __device__ __forceinline__ float operator()(float x) const
    {
        float v = affine(x);
        return act_kind ? relu(v) : v;
    }
    __device__ __forceinline__ float any(float x) const { return bn_activation(act_kind, affine(x)); }
};

// A batch norm's operands for its input gradient, as a kernel that fuses it receives them: its
// input x (NCHW view, image stride xs), parameters, saved statistics and the parameter gradients
// that batch_norm_bwd_reduce wrote, and the kind of activation that follows it.
struct BnOperand
{
    const act* x;
    i64 xs;
    const float *gamma, *beta, *mean, *invstd, *dgamma, *dbeta;
    int act_kind;
};

// The input gradient of channel c's batch norm at one element, from its input x and output
// gradient dy: dx = a (dy' - dbeta / M - (x - mean) invstd dgamma / M), a = gamma invstd, dy'
// through the activation from its input y(x) (recomputed from x, as BnAffine). batch_norm_bwd_data and the depthwise backward
// that computes its dy on the fly (v2.7) both call it. Every product feeds an explicit fmaf or
// nothing, so no compiler can contract it differently in the two kernels.
struct BnInputGrad
{
    BnAffine y;
    float a, mean, kx, dbeta, inv_m;
    int act_kind;
    __device__ __forceinline__ BnInputGrad() : y(0.f, 0.f, 0.f, 0.f), a(0.f), mean(0.f), kx(0.f), dbeta(0.f), inv_m(0.f), act_kind(0) {} // unused: no batch norm fused
    __device__ __forceinline__ BnInputGrad(const BnOperand& p, int c, float inv_m)
        : y(p.gamma[c], p.beta[c], p.mean[c], p.invstd[c]), a(p.gamma[c] * p.invstd[c]), mean(p.mean[c]),
          kx(p.invstd[c] * (p.dgamma[c] * inv_m)), dbeta(p.dbeta[c]), inv_m(inv_m), act_kind(p.act_kind) {}
    __device__ __forceinline__ float operator()(float x, float dy) const { return through(x, act_kind ? relu_grad(y(x), dy) : dy); }
    __device__ __forceinline__ float any(float x, float dy) const { return through(x, bn_activation_grad(act_kind, y(x), dy)); }
    // dx from x and dy' (the activation's gradient already applied).
    __device__ __forceinline__ float through(float x, float g) const { return a * fmaf(mean - x, kx, fmaf(-dbeta, inv_m, g)); }
};

// A thread's share of a batch norm's parameter-gradient sums over channel c: dbeta = sum dy',
// dgamma = invstd sum dy' (x - mean), dy' through the activation (from y(x), as BnAffine), in
// double. batch_norm_bwd_reduce and the depthwise data gradient that reduces its input's batch
// norm as it writes that input's gradient (v2.12) both add through it.
struct BnGradSums
{
    BnAffine y;
    float mean;
    int act_kind;
    double sg = 0, sgx = 0;
    __device__ __forceinline__ BnGradSums(float gamma, float beta, float mean, float invstd, int act_kind)
        : y(gamma, beta, mean, invstd), mean(mean), act_kind(act_kind) {}
    __device__ __forceinline__ void add(float x, float dy) { add_through(x, act_kind ? relu_grad(y(x), dy) : dy); }
    __device__ __forceinline__ void add_any(float x, float dy) { add_through(x, bn_activation_grad(act_kind, y(x), dy)); }
    // x and dy' (the activation's gradient already applied) into the sums.
    __device__ __forceinline__ void add_through(float x, float g)
    {
        sg += g;
        sgx += (double)g * (x - mean);
    }
};

// The end of a parameter-gradient block (every thread calls it): the block's sums over chunk
// blockIdx.y of channel c. S = 1: dgamma and dbeta; S > 1: the two sums to parts[(c * S + s) * 2
// ...], and the channel's last block to finish adds them in chunk order.
__device__ __forceinline__ void finish_grad_sums(int c, BnGradSums sums, const float* __restrict__ invstd, float* __restrict__ dgamma,
                                                 float* __restrict__ dbeta, double* __restrict__ parts, unsigned* __restrict__ done)
{
    int S = gridDim.y;
    double sg = block_sum<double>(sums.sg);
    double sgx = block_sum<double>(sums.sgx);
    if (threadIdx.x != 0) return;
    if (S > 1)
    {
        double* part = parts + ((i64)c * S + blockIdx.y) * 2;
        part[0] = sg;
        part[1] = sgx;
        if (!last_to_arrive(done, c, S)) return;
        const volatile double* all = parts + (i64)c * S * 2; // written by other blocks: no cached copy
        sg = 0, sgx = 0;
        for (int s = 0; s < S; s++) sg += all[s * 2], sgx += all[s * 2 + 1];
    }
    dgamma[c] = (float)(sgx * invstd[c]);
    dbeta[c] = (float)sg;
}

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

// Chan, Golub and LeVeque's pairwise update: (n, mean, q) absorbs a part of nb values with mean
// mb and centred sum of squares qb. A non-finite mean combines as the sum it stands for (Inf
// stays Inf, as on the CPU): the pairwise update would add Inf - Inf. The variance is NaN then,
// as on the CPU.
__device__ __forceinline__ void chan_merge(double& n, double& mean, double& q, double nb, double mb, double qb)
{
    if (nb == 0) return;
    double total = n + nb, d = mb - mean;
    mean = d - d == 0.0 ? mean + d * nb / total : (n * mean + nb * mb) / total;
    q += qb + d * d * n * nb / total;
    n = total;
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
    const volatile double* all = parts + (i64)c * S * 3; // written by other blocks: no cached copy
    double n = 0;
    mean = 0, q = 0;
    for (int s = 0; s < S; s++) chan_merge(n, mean, q, all[s * 3], all[s * 3 + 1], all[s * 3 + 2]);
    store_stats(c, mean, q / M, M, save_mean, save_invstd, running_mean, running_var, momentum, eps);
}

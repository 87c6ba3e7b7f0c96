// batch_norm.cu — batch norm over (N, H, W) per channel with an optional fused activation, PyTorch
// semantics: the biased variance normalises, the unbiased one enters running_var; momentum
// weights the new statistic. Statistics and gradient sums: grid (C, S), block (c, s) covering
// the s-th of S chunks of channel c's N * P values, accumulated in double; the statistics in one
// pass (v2; v1 made two). With S = 1 a block writes the results; with S > 1 (when C alone cannot
// fill the device, e.g. 16 channels at 112x112) it writes its part and the channel's last block
// to finish combines the parts in chunk order, so results never depend on timing (v2; v1 had a
// finish kernel). Normalisation and dx: grid-stride loops on an NchwCursor (no division per
// element). Bound by memory (x read once for the statistics, once to normalise). Activations
// (x, y, r, dy, dx) are act (common.cuh); parameters, statistics and sums are float or double.
#include "batch_norm.cuh"

// Statistics of chunk blockIdx.y (of `chunk` values) of channel blockIdx.x, in one pass: sums of
// d = x - shift and d^2 in double, shift the chunk's first value (so a mean far from 0 costs no
// precision: v1 read x twice for a centred second moment). S = 1: the results; S > 1: (count,
// mean, centred sum of squares) to parts[(c * S + s) * 3 ...], combined by the last block.
KERNEL void batch_norm_stats(const act* __restrict__ x, i64 xs, int N, int C, int P, i64 chunk,
                             float* __restrict__ save_mean, float* __restrict__ save_invstd,
                             float* __restrict__ running_mean, float* __restrict__ running_var,
                             float momentum, float eps, double* __restrict__ parts, unsigned* __restrict__ done)
{
    int c = blockIdx.x;
    i64 M = (i64)N * P, lo = blockIdx.y * chunk, hi = lo + chunk < M ? lo + chunk : M;
    i64 count = hi > lo ? hi - lo : 0;
    const act* xc = x + (i64)c * P;
    double shift = count > 0 ? stats_shift(xc[(lo / P) * xs + lo % P]) : 0.0;
    double s1 = 0, s2 = 0;
    i64 e = lo + threadIdx.x;
    for (NchwCursor at(e, blockDim.x, 1, 1, P); e < hi; e += blockDim.x, at.advance(1, 1, P))
    {
        double d = xc[at.n * xs + at.w] - shift;
        s1 += d;
        s2 += d * d;
    }
    finish_stats(c, count, M, shift, s1, s2, save_mean, save_invstd, running_mean, running_var, momentum, eps, parts, done);
}

// y = x * scale + shift (then the activation of kind act_kind); with use_running the statistics are the running ones (eval
// mode). With r, y = that + r (v2.16): a residual sum written in place of the batch norm's output.
KERNEL void batch_norm_apply(const act* __restrict__ x, i64 xs, act* __restrict__ y, i64 ys,
                             int N, int C, int P, const float* __restrict__ gamma, const float* __restrict__ beta,
                             const float* __restrict__ mean, const float* __restrict__ invstd_or_var,
                             int use_running, float eps, int act_kind, const act* __restrict__ r, i64 rs)
{
    FOR_EACH_NCHW(at, N, C, 1, P)
    {
        int c = at.c;
        float invstd = use_running ? rsqrtf(invstd_or_var[c] + eps) : invstd_or_var[c];
        BnApply bn{BnAffine(gamma[c], beta[c], mean[c], invstd), act_kind};
        i64 offset = (i64)c * P + at.w;
        float v = bn.any(x[at.n * xs + offset]);
        if (r) v += r[at.n * rs + offset]; // a branch, not + 0: -0 stays -0, as without r
        y[at.n * ys + offset] = v;
    }
}

// dgamma = sum dy' (x - mean) invstd, dbeta = sum dy', dy' = activation_grad(y, dy) (y pre-activation), over
// chunk blockIdx.y of channel blockIdx.x. y is recomputed from x (BnAffine), so it is not read:
// one pass less over the tensor under an activation (v2.4). S = 1: the results; S > 1: the two sums to
// parts[(c * S + s) * 2 ...], added in chunk order by the last block to finish.
KERNEL void batch_norm_bwd_reduce(const act* __restrict__ x, i64 xs, const act* __restrict__ dy, i64 dys,
                                  int N, int C, int P, i64 chunk, const float* __restrict__ gamma,
                                  const float* __restrict__ beta, const float* __restrict__ mean,
                                  const float* __restrict__ invstd,
                                  float* __restrict__ dgamma, float* __restrict__ dbeta, int act_kind,
                                  double* __restrict__ parts, unsigned* __restrict__ done)
{
    int c = blockIdx.x;
    i64 M = (i64)N * P, lo = blockIdx.y * chunk, hi = lo + chunk < M ? lo + chunk : M;
    BnGradSums sums(gamma[c], beta[c], mean[c], invstd[c], act_kind);
    i64 e = lo + threadIdx.x;
    for (NchwCursor at(e, blockDim.x, 1, 1, P); e < hi; e += blockDim.x, at.advance(1, 1, P))
    {
        i64 offset = (i64)c * P + at.w;
        sums.add_any(x[at.n * xs + offset], dy[at.n * dys + offset]);
    }
    finish_grad_sums(c, sums, invstd, dgamma, dbeta, parts, done);
}

// dx = gamma invstd (dy' - dbeta / M - (x - mean) invstd dgamma / M) (BnInputGrad), written or
// added; the activation's gradient from x as in batch_norm_bwd_reduce.
KERNEL void batch_norm_bwd_data(const act* __restrict__ x, i64 xs, const act* __restrict__ dy, i64 dys,
                                act* __restrict__ dx, i64 dxs, int N, int C, int P,
                                const float* __restrict__ gamma, const float* __restrict__ beta,
                                const float* __restrict__ mean, const float* __restrict__ invstd,
                                const float* __restrict__ dgamma, const float* __restrict__ dbeta,
                                int act_kind, int accumulate)
{
    float inv_m = 1.f / (float)((i64)N * P);
    BnOperand bn{x, xs, gamma, beta, mean, invstd, dgamma, dbeta, act_kind};
    FOR_EACH_NCHW(at, N, C, 1, P)
    {
        i64 offset = (i64)at.c * P + at.w;
        float v = BnInputGrad(bn, at.c, inv_m).any(x[at.n * xs + offset], dy[at.n * dys + offset]);
        act* p = dx + at.n * dxs + offset;
        *p = accumulate ? *p + v : v;
    }
}

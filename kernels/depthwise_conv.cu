// depthwise_conv.cu — k x k depthwise convolution, stride 1 or 2, zero padding, with a channel
// multiplier m (Cout = m * Cin; output channel o reads input channel o / m), NCHW views.
// Forward: one thread per output element; or, with the following batch norm's statistics
// (depthwise_conv_fwd_stats, v2.5), batch_norm_stats's grid and sums; its _apply variants (v2.11)
// also apply the batch norm whose output they read, and write that output. Backward data: one
// thread per input element, gathering the outputs that read it (no atomics); the _reduce variants
// (v2.12) run on batch_norm_bwd_reduce's grid and also reduce the batch norm whose output they
// read. Backward weight: grid (Cout, S), block (co, s)
// of REDUCE_THREADS threads covering the s-th chunk of co's (n, oh, ow) positions; each thread
// accumulates all k*k taps over its share in registers, then one shared-memory pass and a warp
// reduction per tap. S > 1 (few channels) writes parts that the channel's last block to finish
// adds in chunk order (v2; v1 had depthwise_conv_finish_weight). Bound by memory (forward, data) and by the reduction (weight).
// The _bn backward kernels (v2.7) take the following batch norm's output gradient instead and
// compute the conv's output gradient where they read it (BnInputGrad, batch_norm.cuh).
//
// Entry points are written out one by one: the backend and the emulator find them by their
// `KERNEL void name(` text, so a macro that generated them would hide them.
//
// v2: each op is a template on <K, S> (kernel size, stride), instantiated for GhostNet's four
// (3 or 5, stride 1 or 2), so the tap loops unroll, the stride's divisions are shifts and the
// weight gradient's k*k sums stay in registers (v1's runtime-indexed acc[25] was a 104-byte
// stack frame). K = 0 is the generic kernel (any k <= 5, any stride) for other shapes. Grid-
// stride loops walk an NchwCursor instead of dividing every index.
#include "batch_norm.cuh"

#define MAX_TAPS 25 // k <= 5

// The batch norm whose output a depthwise forward reads, for the _apply kernels (v2.11): x is that
// batch norm's input, its statistics are already saved, and the kernel writes its output y (NCHW
// view, image stride ys) as it reads it. The other forward kernels take it too and ignore it, so
// the host launches them with one argument list.
struct BnApplyOperand
{
    const float *gamma, *beta, *mean, *invstd;
    int act_kind;
    act* y;
    i64 ys;
    // With r (v2.16), also sum = y + r (NCHW views, image strides ss and rs): a residual sum
    // written in place of an output that y is the first channels of. y is still written: the
    // conv's backward reads it.
    act* sum;
    i64 ss;
    const act* r;
    i64 rs;
};

// One output of the depthwise conv: the k x k taps around (oh, ow) of one input plane xp; with
// APPLY, each tap the batch norm's output in(x) (BnApply, as batch_norm_apply computes it).
template <int K, int S, bool APPLY = false>
__device__ __forceinline__ float depthwise_output(const act* __restrict__ xp, const float* __restrict__ wp, int H, int W,
                                                  int oh, int ow, int k, int stride, int pad, const BnApply& in = BnApply{BnAffine(0.f, 0.f, 0.f, 0.f), 0})
{
    int ih0 = oh * stride - pad, iw0 = ow * stride - pad;
    float s = 0.f;
#pragma unroll
    for (int kh = 0; kh < k; kh++)
    {
        int ih = ih0 + kh;
        if (ih < 0 || ih >= H) continue;
#pragma unroll
        for (int kw = 0; kw < k; kw++)
        {
            int iw = iw0 + kw;
            if (iw < 0 || iw >= W) continue;
            float v = xp[ih * W + iw];
            if constexpr (APPLY) v = in(v);
            s = fmaf(v, wp[kh * k + kw], s);
        }
    }
    return s;
}

template <int K, int S>
__device__ __forceinline__ void depthwise_fwd(const act* __restrict__ x, i64 xs, const float* __restrict__ w,
                                              act* __restrict__ y, i64 ys, int N, int Cin, int H, int W,
                                              int Cout, int Ho, int Wo, int k_any, int stride_any, int pad)
{
    const int k = K ? K : k_any, stride = K ? S : stride_any;
    int m = Cout / Cin;
    FOR_EACH_NCHW(o, N, Cout, Ho, Wo)
    {
        const act* xp = x + o.n * xs + (i64)(m == 1 ? o.c : o.c / m) * H * W;
        y[o.n * ys + ((i64)o.c * Ho + o.h) * Wo + o.w] = depthwise_output<K, S>(xp, w + o.c * k * k, H, W, o.h, o.w, k, stride, pad);
    }
}

// The forward that also computes the batch-norm statistics of its output y (v2.5), for the batch
// norm that always follows a depthwise conv in GhostNet. Grid (Cout, S) as batch_norm_stats: block
// (co, s) computes chunk s of channel co's N * Ho * Wo outputs, writes them, and sums them exactly
// as batch_norm_stats would after it (same chunks, same thread order, same shift, same finish),
// so the statistics are the unfused path's bit for bit, without its launch and its read of y.
// With APPLY (v2.11), x is the input of the batch norm `a` whose output the conv reads (the Ghost
// module's primary batch norm, read by the cheap operation): each tap applies it as it loads it,
// and the output's centre tap writes a's output, so batch_norm_apply's launch and its read of x
// are gone. Stride 1 with same padding only (the host checks): the centre taps of Ho x Wo = H x W
// outputs are every input exactly once; with a channel multiplier the first of an input's m
// output channels writes it.
template <int K, int S, bool APPLY>
__device__ __forceinline__ void depthwise_fwd_stats(const act* __restrict__ x, i64 xs, const float* __restrict__ w,
                                                    act* __restrict__ y, i64 ys, int N, int Cin, int H, int W,
                                                    int Cout, int Ho, int Wo, int k_any, int stride_any, int pad, i64 chunk,
                                                    float* __restrict__ save_mean, float* __restrict__ save_invstd,
                                                    float* __restrict__ running_mean, float* __restrict__ running_var,
                                                    float momentum, float eps, double* __restrict__ parts, unsigned* __restrict__ done,
                                                    BnApplyOperand a)
{
    const int k = K ? K : k_any, stride = K ? S : stride_any;
    int co = blockIdx.x, m = Cout / Cin, ci = m == 1 ? co : co / m;
    i64 plane = (i64)Ho * Wo, M = plane * N, lo = blockIdx.y * chunk, hi = lo + chunk < M ? lo + chunk : M;
    i64 count = hi > lo ? hi - lo : 0, x_plane = (i64)ci * H * W;
    const float* wp = w + co * k * k;
    const BnApply in = APPLY ? BnApply{BnAffine(a.gamma[ci], a.beta[ci], a.mean[ci], a.invstd[ci]), a.act_kind} : BnApply{BnAffine(0.f, 0.f, 0.f, 0.f), 0};
    const bool writes_input = APPLY && (m == 1 || co % m == 0);
    // batch_norm_stats shifts by the chunk's first value of y: thread 0 computes it for the block.
    __shared__ float first;
    if (threadIdx.x == 0 && count > 0)
    {
        i64 n0 = lo / plane, p0 = lo % plane;
        first = depthwise_output<K, S, APPLY>(x + n0 * xs + x_plane, wp, H, W, (int)(p0 / Wo), (int)(p0 % Wo), k, stride, pad, in);
    }
    __syncthreads();
    double shift = count > 0 ? stats_shift(first) : 0.0;
    double s1 = 0, s2 = 0;
    i64 e = lo + threadIdx.x;
    for (NchwCursor at(e, blockDim.x, 1, Ho, Wo); e < hi; e += blockDim.x, at.advance(1, Ho, Wo))
    {
        const act* xp = x + at.n * xs + x_plane;
        float v = depthwise_output<K, S, APPLY>(xp, wp, H, W, at.h, at.w, k, stride, pad, in);
        y[at.n * ys + (i64)co * plane + at.h * Wo + at.w] = v;
        if (writes_input)
        {
            i64 offset = x_plane + at.h * W + at.w;
            float u = in(xp[at.h * W + at.w]);
            a.y[at.n * a.ys + offset] = u;
            if (a.r) a.sum[at.n * a.ss + offset] = u + a.r[at.n * a.rs + offset];
        }
        double d = v - shift;
        s1 += d;
        s2 += d * d;
    }
    finish_stats(co, count, M, shift, s1, s2, save_mean, save_invstd, running_mean, running_var, momentum, eps, parts, done);
}

// The data gradient at input (n, c, h, w): the sum over the outputs that read it of their
// gradient times the tap's weight. With BN (v2.7), dy is the gradient of the batch norm that
// follows the conv, and the conv's own output gradient is computed where it is read, from dy and
// the batch norm's input (the conv's output): BnInputGrad, as batch_norm_bwd_data would have written it.
template <int K, int S, bool BN>
__device__ __forceinline__ float depthwise_input_grad(const act* __restrict__ dy, i64 dys, const float* __restrict__ w,
                                                      int n, int c, int h, int w_, int m, int Ho, int Wo, int k, int stride, int pad,
                                                      const BnOperand& bn, float inv_m)
{
    float s = 0.f;
    for (int j = 0; j < m; j++)
    {
        int co = c * m + j;
        const act* dyp = dy + n * dys + (i64)co * Ho * Wo;
        const float* wp = w + co * k * k;
        const act* zp = BN ? bn.x + n * bn.xs + (i64)co * Ho * Wo : nullptr;
        BnInputGrad grad = BN ? BnInputGrad(bn, co, inv_m) : BnInputGrad();
        // Output row oh reads this input through tap kh when oh * stride = h + pad - kh: only
        // the taps of h + pad's residue mod stride (every tap at stride 1, every other at 2).
#pragma unroll
        for (int kh = (h + pad) % stride; kh < k; kh += stride)
        {
            int oh = (h + pad - kh) / stride;
            if (oh < 0 || oh >= Ho) continue;
#pragma unroll
            for (int kw = (w_ + pad) % stride; kw < k; kw += stride)
            {
                int ow = (w_ + pad - kw) / stride;
                if (ow < 0 || ow >= Wo) continue;
                float g = dyp[oh * Wo + ow];
                if constexpr (BN) g = grad(zp[oh * Wo + ow], g);
                s = fmaf(g, wp[kh * k + kw], s);
            }
        }
    }
    return s;
}

// One thread per input element: dx written, or added to.
template <int K, int S, bool BN>
__device__ __forceinline__ void depthwise_bwd_data(const act* __restrict__ dy, i64 dys, const float* __restrict__ w,
                                                   act* __restrict__ dx, i64 dxs, int N, int Cin, int H, int W,
                                                   int Cout, int Ho, int Wo, int k_any, int stride_any, int pad, int accumulate,
                                                   BnOperand bn)
{
    const int k = K ? K : k_any, stride = K ? S : stride_any;
    int m = Cout / Cin;
    float inv_m = 1.f / (float)((i64)N * Ho * Wo);
    FOR_EACH_NCHW(i, N, Cin, H, W)
    {
        float s = depthwise_input_grad<K, S, BN>(dy, dys, w, i.n, i.c, i.h, i.w, m, Ho, Wo, k, stride, pad, bn, inv_m);
        act* p = dx + i.n * dxs + ((i64)i.c * H + i.h) * W + i.w;
        *p = accumulate ? *p + s : s;
    }
}

// The batch norm whose output is the conv's input x, for the _reduce kernels (v2.12): its input
// z (NCHW view, image stride zs), parameters, saved statistics, activation kind and the parameter
// gradients to write.
struct BnReduceOperand
{
    const act* z;
    i64 zs;
    const float *gamma, *beta, *mean, *invstd;
    int act_kind;
    float *dgamma, *dbeta;
};

// The data gradient through the conv's batch norm (depthwise_bwd_data<BN = true>), which also
// reduces the parameter gradients of the batch norm `r` whose output the conv read (v2.12: the
// Ghost module's primary one, read by the cheap operation). This conv's dx is the last addition
// to that output's gradient (the concat's gradient first, the cheap operation's second), so once
// a value is written it is the gradient batch_norm_bwd_reduce would read. Grid (Cin, S), as
// batch_norm_bwd_reduce on that batch norm: block (c, s) writes chunk s of channel c's inputs and
// adds them to the sums with the same chunks, thread order and finish, so dgamma and dbeta are
// batch_norm_bwd_reduce's bit for bit, without its launch and its read of dx.
template <int K, int S>
__device__ __forceinline__ void depthwise_bwd_data_reduce(const act* __restrict__ dy, i64 dys, const float* __restrict__ w,
                                                          act* __restrict__ dx, i64 dxs, int N, int Cin, int H, int W,
                                                          int Cout, int Ho, int Wo, int k_any, int stride_any, int pad, int accumulate,
                                                          BnOperand bn, i64 chunk, BnReduceOperand r, double* __restrict__ parts,
                                                          unsigned* __restrict__ done)
{
    const int k = K ? K : k_any, stride = K ? S : stride_any;
    int c = blockIdx.x, m = Cout / Cin;
    float inv_m = 1.f / (float)((i64)N * Ho * Wo);
    i64 plane = (i64)H * W, M = plane * N, lo = blockIdx.y * chunk, hi = lo + chunk < M ? lo + chunk : M;
    BnGradSums sums(r.gamma[c], r.beta[c], r.mean[c], r.invstd[c], r.act_kind);
    i64 e = lo + threadIdx.x;
    for (NchwCursor at(e, blockDim.x, 1, H, W); e < hi; e += blockDim.x, at.advance(1, H, W))
    {
        float s = depthwise_input_grad<K, S, true>(dy, dys, w, at.n, c, at.h, at.w, m, Ho, Wo, k, stride, pad, bn, inv_m);
        i64 at_c = (i64)c * plane + at.h * W + at.w;
        act* p = dx + at.n * dxs + at_c;
        float d = accumulate ? *p + s : s;
        *p = d;
        sums.add(r.z[at.n * r.zs + at_c], d);
    }
    finish_grad_sums(c, sums, r.invstd, r.dgamma, r.dbeta, parts, done);
}

// One output position's share of the weight gradient: its gradient g times each tap's input.
template <int K, int S, int TAPS>
__device__ __forceinline__ void depthwise_weight_taps(float (&acc)[TAPS], float g, const act* __restrict__ xp, int H, int W,
                                                      int oh, int ow, int k, int stride, int pad)
{
    int ih0 = oh * stride - pad, iw0 = ow * stride - pad;
#pragma unroll
    for (int kh = 0; kh < k; kh++)
    {
        int ih = ih0 + kh;
        if (ih < 0 || ih >= H) continue;
#pragma unroll
        for (int kw = 0; kw < k; kw++)
        {
            int iw = iw0 + kw;
            if (iw >= 0 && iw < W) acc[kh * k + kw] = fmaf(g, xp[ih * W + iw], acc[kh * k + kw]);
        }
    }
}

// The end of a weight-gradient block (every thread calls it): each thread's tap sums pass through
// shared memory once; warp w then reduces taps w, w + 8, ...: one block barrier in all instead of
// two per tap (50 at k = 5). S = gridDim.y > 1 writes parts that channel co's last block to finish
// adds in chunk order (v1 ran depthwise_conv_finish_weight for it).
template <int TAPS>
__device__ __forceinline__ void finish_taps(const float (&acc)[TAPS], int taps, int co, float* __restrict__ dw,
                                            double* __restrict__ parts, unsigned* __restrict__ done)
{
    int nS = gridDim.y;
    __shared__ float partial[TAPS][REDUCE_THREADS];
#pragma unroll
    for (int t = 0; t < TAPS; t++)
        if (t < taps) partial[t][threadIdx.x] = acc[t];
    __syncthreads();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int t = warp; t < taps; t += blockDim.x >> 5)
    {
        double s = 0;
        for (int i = lane; i < blockDim.x; i += 32) s += partial[t][i];
        s = warp_sum(s);
        if (lane != 0) continue;
        if (nS == 1) dw[(i64)co * taps + t] = (float)s;
        else
        {
            parts[((i64)co * nS + blockIdx.y) * taps + t] = s;
            __threadfence(); // before thread 0 counts the block in
        }
    }
    if (nS == 1) return;
    __shared__ int last;
    __syncthreads(); // every warp's taps written
    if (threadIdx.x == 0) last = last_to_arrive(done, co, nS);
    __syncthreads();
    if (!last) return;
    const volatile double* all = parts + (i64)co * nS * taps; // written by other blocks: no cached copy
    for (int t = threadIdx.x; t < taps; t += blockDim.x)
    {
        double sum = 0;
        for (int j = 0; j < nS; j++) sum += all[j * taps + t];
        dw[(i64)co * taps + t] = (float)sum;
    }
}

// With BN (v2.7), dy is the following batch norm's output gradient, as in depthwise_bwd_data.
template <int K, int S, bool BN>
__device__ __forceinline__ void depthwise_bwd_weight(const act* __restrict__ x, i64 xs, const act* __restrict__ dy, i64 dys,
                                                     float* __restrict__ dw, int N, int Cin, int H, int W,
                                                     int Cout, int Ho, int Wo, int k_any, int stride_any, int pad, i64 chunk,
                                                     double* __restrict__ parts, unsigned* __restrict__ done, BnOperand bn)
{
    constexpr int TAPS = K ? K * K : MAX_TAPS; // registers when K is known
    const int k = K ? K : k_any, stride = K ? S : stride_any;
    int co = blockIdx.x, m = Cout / Cin;
    float acc[TAPS];
#pragma unroll
    for (int t = 0; t < TAPS; t++) acc[t] = 0.f;
    i64 plane = (i64)Ho * Wo, total = plane * N, lo = blockIdx.y * chunk, hi = lo + chunk < total ? lo + chunk : total;
    BnInputGrad grad = BN ? BnInputGrad(bn, co, 1.f / (float)total) : BnInputGrad();
    i64 e = lo + threadIdx.x;
    // (n, 0, oh, ow) of position e, moved blockDim.x positions a turn.
    for (NchwCursor at(e, blockDim.x, 1, Ho, Wo); e < hi; e += blockDim.x, at.advance(1, Ho, Wo))
    {
        i64 at_co = (i64)co * plane + at.h * Wo + at.w;
        float g = dy[at.n * dys + at_co];
        if constexpr (BN) g = grad(bn.x[at.n * bn.xs + at_co], g);
        const act* xp = x + at.n * xs + (i64)(m == 1 ? co : co / m) * H * W;
        depthwise_weight_taps<K, S>(acc, g, xp, H, W, at.h, at.w, k, stride, pad);
    }
    finish_taps<TAPS>(acc, k * k, co, dw, parts, done);
}

// v2.13: both gradients of a stride-1 depthwise conv with one output channel per input and same
// padding (the Ghost module's cheap operation) through its batch norm, in one pass: grid (C, S)
// as depthwise_bwd_weight, block (c, s) covering chunk s of channel c's positions, which are its
// inputs and its outputs alike (Ho x Wo = H x W). Each position adds its output gradient dZ
// (BnInputGrad, from dy and z) times the input taps to the weight sums, as depthwise_bwd_weight,
// and gathers its input gradient, as depthwise_input_grad; with r.z set, the finished input
// gradient goes into the sums of the batch norm whose output x is, as depthwise_bwd_data_reduce
// (v2.12). Same chunks, thread order and finishes as those kernels, so dW, dx and both batch
// norms' gradients are theirs bit for bit; dy and z are read once, not once per kernel.
template <int K>
__device__ __forceinline__ void depthwise_bwd_both(const act* __restrict__ x, i64 xs, const act* __restrict__ dy, i64 dys,
                                                   float* __restrict__ dw, int N, int C, int H, int W, int k_any, int pad, i64 chunk,
                                                   double* __restrict__ parts, unsigned* __restrict__ done, const float* __restrict__ w,
                                                   act* __restrict__ dx, i64 dxs, int accumulate, BnOperand bn, BnReduceOperand r,
                                                   double* __restrict__ in_parts, unsigned* __restrict__ in_done)
{
    constexpr int TAPS = K ? K * K : MAX_TAPS;
    const int k = K ? K : k_any;
    int c = blockIdx.x;
    float acc[TAPS];
#pragma unroll
    for (int t = 0; t < TAPS; t++) acc[t] = 0.f;
    i64 plane = (i64)H * W, total = plane * N, lo = blockIdx.y * chunk, hi = lo + chunk < total ? lo + chunk : total;
    float inv_m = 1.f / (float)total;
    BnInputGrad grad(bn, c, inv_m);
    const bool reduce = r.z != nullptr;
    BnGradSums sums = reduce ? BnGradSums(r.gamma[c], r.beta[c], r.mean[c], r.invstd[c], r.act_kind) : BnGradSums(0.f, 0.f, 0.f, 0.f, 0);
    i64 e = lo + threadIdx.x;
    for (NchwCursor at(e, blockDim.x, 1, H, W); e < hi; e += blockDim.x, at.advance(1, H, W))
    {
        i64 at_c = (i64)c * plane + at.h * W + at.w;
        float g = grad(bn.x[at.n * bn.xs + at_c], dy[at.n * dys + at_c]);
        const act* xp = x + at.n * xs + (i64)c * plane;
        depthwise_weight_taps<K, 1>(acc, g, xp, H, W, at.h, at.w, k, 1, pad);
        float s = depthwise_input_grad<K, 1, true>(dy, dys, w, at.n, c, at.h, at.w, 1, H, W, k, 1, pad, bn, inv_m);
        act* p = dx + at.n * dxs + at_c;
        float d = accumulate ? *p + s : s;
        *p = d;
        if (reduce) sums.add(r.z[at.n * r.zs + at_c], d);
    }
    finish_taps<TAPS>(acc, k * k, c, dw, parts, done);
    if (reduce) finish_grad_sums(c, sums, r.invstd, r.dgamma, r.dbeta, in_parts, in_done);
}

#define DEPTHWISE_PARAMS                                                                                        \
    const act *__restrict__ x, i64 xs, const float *__restrict__ w, act *__restrict__ y, i64 ys, int N, int Cin, \
        int H, int W, int Cout, int Ho, int Wo, int k, int stride, int pad
#define DEPTHWISE_ARGS x, xs, w, y, ys, N, Cin, H, W, Cout, Ho, Wo, k, stride, pad
#define DEPTHWISE_DATA_PARAMS DEPTHWISE_PARAMS, int accumulate
// The batch norm that follows the conv, for the _bn backward kernels (v2.7): its input z (the
// conv's output), parameters, saved statistics, parameter gradients and activation kind. The plain
// backward kernels take them too and ignore them, so the host launches both with one argument
// list (no allocation per launch).
#define BN_OPERAND_PARAMS                                                                                  \
    const act *__restrict__ z, i64 zs, const float *__restrict__ gamma, const float *__restrict__ beta, \
        const float *__restrict__ mean, const float *__restrict__ invstd, const float *__restrict__ dgamma,  \
        const float *__restrict__ dbeta, int act_kind
#define BN_OPERAND BnOperand{z, zs, gamma, beta, mean, invstd, dgamma, dbeta, act_kind}
// The batch norm whose output the conv read, for the gradients that reduce it (BnReduceOperand):
// the _reduce data gradients (v2.12), with the chunk of their grid (Cin, S) and the split's parts
// and counters; the one-pass backward (v2.13), whose grid is the weight gradient's (in_z null: no
// reduction), with parts and counters of their own.
#define REDUCE_OPERAND_PARAMS                                                                                  \
    const act *__restrict__ in_z, i64 in_zs, const float *__restrict__ in_gamma,                             \
        const float *__restrict__ in_beta, const float *__restrict__ in_mean, const float *__restrict__ in_invstd, \
        int in_act_kind, float *__restrict__ in_dgamma, float *__restrict__ in_dbeta
#define REDUCE_OPERAND BnReduceOperand{in_z, in_zs, in_gamma, in_beta, in_mean, in_invstd, in_act_kind, in_dgamma, in_dbeta}
#define BN_REDUCE_PARAMS i64 chunk, REDUCE_OPERAND_PARAMS, double *__restrict__ parts, unsigned *__restrict__ done
#define BN_REDUCE chunk, REDUCE_OPERAND, parts, done
#define DEPTHWISE_BOTH_PARAMS                                                                            \
    DEPTHWISE_WEIGHT_PARAMS, const float *__restrict__ w, act *__restrict__ dx, i64 dxs, int accumulate, \
        BN_OPERAND_PARAMS, REDUCE_OPERAND_PARAMS, double *__restrict__ in_parts, unsigned *__restrict__ in_done
#define DEPTHWISE_BOTH_ARGS x, xs, dy, dys, dw, N, Cin, H, W, k, pad, chunk, parts, done, w, dx, dxs, accumulate, BN_OPERAND, REDUCE_OPERAND, in_parts, in_done
#define DEPTHWISE_STATS_PARAMS                                                                             \
    DEPTHWISE_PARAMS, i64 chunk, float *__restrict__ save_mean, float *__restrict__ save_invstd,           \
        float *__restrict__ running_mean, float *__restrict__ running_var, float momentum, float eps, \
        double *__restrict__ parts, unsigned *__restrict__ done
#define DEPTHWISE_STATS_ARGS \
    DEPTHWISE_ARGS, chunk, save_mean, save_invstd, running_mean, running_var, momentum, eps, parts, done
// The batch norm an _apply forward applies to its input (BnApplyOperand), its output y_in.
#define BN_APPLY_PARAMS                                                                                         \
    const float *__restrict__ in_gamma, const float *__restrict__ in_beta, const float *__restrict__ in_mean, \
        const float *__restrict__ in_invstd, int in_act_kind, act *__restrict__ y_in, i64 y_ins,                \
        act *__restrict__ sum_in, i64 sum_ins, const act *__restrict__ r_in, i64 r_ins
#define BN_APPLY BnApplyOperand{in_gamma, in_beta, in_mean, in_invstd, in_act_kind, y_in, y_ins, sum_in, sum_ins, r_in, r_ins}
#define DEPTHWISE_WEIGHT_PARAMS                                                                                     \
    const act *__restrict__ x, i64 xs, const act *__restrict__ dy, i64 dys, float *__restrict__ dw, int N, int Cin, \
        int H, int W, int Cout, int Ho, int Wo, int k, int stride, int pad, i64 chunk, double *__restrict__ parts,      \
        unsigned *__restrict__ done
#define DEPTHWISE_WEIGHT_ARGS x, xs, dy, dys, dw, N, Cin, H, W, Cout, Ho, Wo, k, stride, pad, chunk, parts, done

// Entry points: the generic kernel and the <k, stride> variants CudaBackend.DepthwiseVariant names
// (x, w, y of the forward are dy, w, dx for the data gradient). NVRTC exports no templates.
KERNEL void depthwise_conv_fwd(DEPTHWISE_PARAMS) { depthwise_fwd<0, 0>(DEPTHWISE_ARGS); }
KERNEL void depthwise_conv_fwd_k3s1(DEPTHWISE_PARAMS) { depthwise_fwd<3, 1>(DEPTHWISE_ARGS); }
KERNEL void depthwise_conv_fwd_k3s2(DEPTHWISE_PARAMS) { depthwise_fwd<3, 2>(DEPTHWISE_ARGS); }
KERNEL void depthwise_conv_fwd_k5s1(DEPTHWISE_PARAMS) { depthwise_fwd<5, 1>(DEPTHWISE_ARGS); }
KERNEL void depthwise_conv_fwd_k5s2(DEPTHWISE_PARAMS) { depthwise_fwd<5, 2>(DEPTHWISE_ARGS); }
KERNEL void depthwise_conv_fwd_stats(DEPTHWISE_STATS_PARAMS, BN_APPLY_PARAMS) { depthwise_fwd_stats<0, 0, false>(DEPTHWISE_STATS_ARGS, BN_APPLY); }
KERNEL void depthwise_conv_fwd_stats_k3s1(DEPTHWISE_STATS_PARAMS, BN_APPLY_PARAMS) { depthwise_fwd_stats<3, 1, false>(DEPTHWISE_STATS_ARGS, BN_APPLY); }
KERNEL void depthwise_conv_fwd_stats_k3s2(DEPTHWISE_STATS_PARAMS, BN_APPLY_PARAMS) { depthwise_fwd_stats<3, 2, false>(DEPTHWISE_STATS_ARGS, BN_APPLY); }
KERNEL void depthwise_conv_fwd_stats_k5s1(DEPTHWISE_STATS_PARAMS, BN_APPLY_PARAMS) { depthwise_fwd_stats<5, 1, false>(DEPTHWISE_STATS_ARGS, BN_APPLY); }
KERNEL void depthwise_conv_fwd_stats_k5s2(DEPTHWISE_STATS_PARAMS, BN_APPLY_PARAMS) { depthwise_fwd_stats<5, 2, false>(DEPTHWISE_STATS_ARGS, BN_APPLY); }
KERNEL void depthwise_conv_bwd_data(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_data<0, 0, false>(DEPTHWISE_ARGS, accumulate, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_data_k3s1(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_data<3, 1, false>(DEPTHWISE_ARGS, accumulate, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_data_k3s2(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_data<3, 2, false>(DEPTHWISE_ARGS, accumulate, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_data_k5s1(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_data<5, 1, false>(DEPTHWISE_ARGS, accumulate, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_data_k5s2(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_data<5, 2, false>(DEPTHWISE_ARGS, accumulate, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_weight(DEPTHWISE_WEIGHT_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_weight<0, 0, false>(DEPTHWISE_WEIGHT_ARGS, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_weight_k3s1(DEPTHWISE_WEIGHT_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_weight<3, 1, false>(DEPTHWISE_WEIGHT_ARGS, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_weight_k3s2(DEPTHWISE_WEIGHT_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_weight<3, 2, false>(DEPTHWISE_WEIGHT_ARGS, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_weight_k5s1(DEPTHWISE_WEIGHT_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_weight<5, 1, false>(DEPTHWISE_WEIGHT_ARGS, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_weight_k5s2(DEPTHWISE_WEIGHT_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_weight<5, 2, false>(DEPTHWISE_WEIGHT_ARGS, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_data_bn(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_data<0, 0, true>(DEPTHWISE_ARGS, accumulate, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_data_bn_k3s1(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_data<3, 1, true>(DEPTHWISE_ARGS, accumulate, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_data_bn_k3s2(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_data<3, 2, true>(DEPTHWISE_ARGS, accumulate, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_data_bn_k5s1(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_data<5, 1, true>(DEPTHWISE_ARGS, accumulate, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_data_bn_k5s2(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_data<5, 2, true>(DEPTHWISE_ARGS, accumulate, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_weight_bn(DEPTHWISE_WEIGHT_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_weight<0, 0, true>(DEPTHWISE_WEIGHT_ARGS, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_weight_bn_k3s1(DEPTHWISE_WEIGHT_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_weight<3, 1, true>(DEPTHWISE_WEIGHT_ARGS, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_weight_bn_k3s2(DEPTHWISE_WEIGHT_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_weight<3, 2, true>(DEPTHWISE_WEIGHT_ARGS, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_weight_bn_k5s1(DEPTHWISE_WEIGHT_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_weight<5, 1, true>(DEPTHWISE_WEIGHT_ARGS, BN_OPERAND); }
KERNEL void depthwise_conv_bwd_weight_bn_k5s2(DEPTHWISE_WEIGHT_PARAMS, BN_OPERAND_PARAMS) { depthwise_bwd_weight<5, 2, true>(DEPTHWISE_WEIGHT_ARGS, BN_OPERAND); }
// Stride 1 only (depthwise_fwd_stats with APPLY): no s2 variants. The affine map on every tap
// took k5s1 past 64 registers on sm_90 (8 bytes spilled at 4 blocks per SM): these run at 3.
#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 3
KERNEL void depthwise_conv_fwd_stats_apply(DEPTHWISE_STATS_PARAMS, BN_APPLY_PARAMS) { depthwise_fwd_stats<0, 0, true>(DEPTHWISE_STATS_ARGS, BN_APPLY); }
KERNEL void depthwise_conv_fwd_stats_apply_k3s1(DEPTHWISE_STATS_PARAMS, BN_APPLY_PARAMS) { depthwise_fwd_stats<3, 1, true>(DEPTHWISE_STATS_ARGS, BN_APPLY); }
KERNEL void depthwise_conv_fwd_stats_apply_k5s1(DEPTHWISE_STATS_PARAMS, BN_APPLY_PARAMS) { depthwise_fwd_stats<5, 1, true>(DEPTHWISE_STATS_ARGS, BN_APPLY); }
#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 4
// The data gradient that also reduces its input's batch norm (v2.12). The generic kernel serves
// stride 2 too (CudaBackend.DepthwiseKernels names it there); the Ghost module's cheap
// operation, the one caller, runs at stride 1.
KERNEL void depthwise_conv_bwd_data_reduce(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS, BN_REDUCE_PARAMS) { depthwise_bwd_data_reduce<0, 0>(DEPTHWISE_ARGS, accumulate, BN_OPERAND, BN_REDUCE); }
KERNEL void depthwise_conv_bwd_data_reduce_k3s1(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS, BN_REDUCE_PARAMS) { depthwise_bwd_data_reduce<3, 1>(DEPTHWISE_ARGS, accumulate, BN_OPERAND, BN_REDUCE); }
KERNEL void depthwise_conv_bwd_data_reduce_k5s1(DEPTHWISE_DATA_PARAMS, BN_OPERAND_PARAMS, BN_REDUCE_PARAMS) { depthwise_bwd_data_reduce<5, 1>(DEPTHWISE_ARGS, accumulate, BN_OPERAND, BN_REDUCE); }
// Both gradients in one pass (v2.13): stride 1, same padding, one output channel per input only
// (the host checks); the stride-2 slots of CudaBackend.DepthwiseKernels name the generic kernel,
// which is never launched there.
KERNEL void depthwise_conv_bwd_both_bn(DEPTHWISE_BOTH_PARAMS) { depthwise_bwd_both<0>(DEPTHWISE_BOTH_ARGS); }
KERNEL void depthwise_conv_bwd_both_bn_k3s1(DEPTHWISE_BOTH_PARAMS) { depthwise_bwd_both<3>(DEPTHWISE_BOTH_ARGS); }
// At 4 blocks per SM k5s1 spilled (20-24 bytes on sm_80 and sm_90, 64 registers): 25 tap sums
// besides the gather's. It runs at 3.
#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 3
KERNEL void depthwise_conv_bwd_both_bn_k5s1(DEPTHWISE_BOTH_PARAMS) { depthwise_bwd_both<5>(DEPTHWISE_BOTH_ARGS); }
#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 4

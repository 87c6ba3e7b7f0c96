// cross_entropy.cu — softmax cross-entropy with label smoothing, fused with its gradient, and
// the rank of the true class for top-k accuracy. One block per sample (row of K logits).
// With target t = (1 - eps) onehot + eps / K: loss = logsumexp(z) - sum_j t_j z_j and
// d(mean loss)/dz = (softmax(z) - t) / N. Sums in double. A label outside [0, K) writes a NaN
// loss, which the host reports. Non-finite logits as PyTorch: a NaN or +Inf logit makes its row's
// loss and gradient NaN (the max propagates NaN; Inf - Inf is NaN); a -Inf logit adds nothing to
// the softmax, and makes the loss +Inf only when it is the label's or label smoothing is on.
// Logits and their gradient are act (common.cuh); losses, labels, ranks and totals are not.
#include "common.cuh"

KERNEL void softmax_cross_entropy(const act* __restrict__ z, const int* __restrict__ labels, int N, int K,
                                  float eps, float* __restrict__ losses, act* __restrict__ dz)
{
    int row = blockIdx.x;
    const act* zr = z + (i64)row * K;
    int y = labels[row];
    float m = __int_as_float(0xff800000); // -Inf, the CPU twin's start
    for (int j = threadIdx.x; j < K; j += blockDim.x) m = max_nan(m, zr[j]);
    m = block_max(m);
    double se = 0, sz = 0;
    for (int j = threadIdx.x; j < K; j += blockDim.x)
    {
        se += exp((double)zr[j] - m);
        sz += zr[j];
    }
    se = block_sum<double>(se);
    sz = block_sum<double>(sz);
    double lse = m + log(se);
    bool valid = y >= 0 && y < K;
    if (threadIdx.x == 0)
        // Without smoothing sz has no weight: 0 * (-Inf) would make a finite loss NaN.
        losses[row] = valid ? (float)(lse - (1.0 - eps) * zr[y] - (eps > 0.f ? eps / K * sz : 0.0)) : __int_as_float(0x7fc00000);
    if (!dz) return;
    for (int j = threadIdx.x; j < K; j += blockDim.x)
    {
        double t = eps / K + (j == y ? 1.0 - eps : 0.0);
        dz[(i64)row * K + j] = (float)((exp((double)zr[j] - lse) - t) / N);
    }
}

// ranks[row] = how many logits rank ahead of the label's (ties: the lower index first), so the
// sample is top-k correct when rank < k. A row holding a NaN, or a label outside [0, K), gets
// rank INT_MAX: never correct for any k, even k > K (PyTorch's topk would rank NaN first; a NaN
// row must not count as a correct prediction).
KERNEL void top_k_rank(const act* __restrict__ z, const int* __restrict__ labels, int K, int* __restrict__ ranks)
{
    int row = blockIdx.x;
    const act* zr = z + (i64)row * K;
    int y = labels[row];
    bool valid = y >= 0 && y < K;
    float v = valid ? ld(zr[y]) : 0.f;
    int count = 0, nans = 0;
    for (int j = threadIdx.x; j < K; j += blockDim.x)
    {
        float u = zr[j];
        if (u > v || (u == v && j < y)) count++;
        if (is_nan(u)) nans++;
    }
    count = block_sum<int>(count);
    nans = block_sum<int>(nans);
    if (threadIdx.x == 0) ranks[row] = valid && nans == 0 ? count : 0x7fffffff;
}

// A batch's totals, the one read a training step makes (16 bytes, not the N losses and N ranks):
// totals[0] = the sum of the losses in double (a NaN or infinite loss makes it non-finite, so the
// host's NaN stop needs no flag of its own), then as ints the samples of rank < 1 and rank < 5.
// One block; the partial sums are added in the same order every launch.
KERNEL void sum_batch(const float* __restrict__ losses, const int* __restrict__ ranks, int N, double* __restrict__ totals)
{
    double sum = 0;
    int top1 = 0, top5 = 0;
    for (int i = threadIdx.x; i < N; i += blockDim.x)
    {
        sum += losses[i];
        top1 += ranks[i] < 1;
        top5 += ranks[i] < 5;
    }
    sum = block_sum<double>(sum);
    top1 = block_sum<int>(top1);
    top5 = block_sum<int>(top5);
    if (threadIdx.x != 0) return;
    totals[0] = sum;
    int* counts = reinterpret_cast<int*>(totals + 1);
    counts[0] = top1;
    counts[1] = top5;
}

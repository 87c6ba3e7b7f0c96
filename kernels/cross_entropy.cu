// cross_entropy.cu — softmax cross-entropy with label smoothing, fused with its gradient, and
// the rank of the true class for top-k accuracy. One block per sample (row of K logits).
// With target t = (1 - eps) onehot + eps / K: loss = logsumexp(z) - sum_j t_j z_j and
// d(mean loss)/dz = (softmax(z) - t) / N. Sums in double. A label outside [0, K) writes a NaN
// loss, which the host reports.
#include "common.cuh"

KERNEL void softmax_cross_entropy(const float* __restrict__ z, const int* __restrict__ labels, int N, int K,
                                  float eps, float* __restrict__ losses, float* __restrict__ dz)
{
    int row = blockIdx.x;
    const float* zr = z + (i64)row * K;
    int y = labels[row];
    float m = -3.402823466e38f;
    for (int j = threadIdx.x; j < K; j += blockDim.x) m = fmaxf(m, zr[j]);
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
        losses[row] = valid ? (float)(lse - (1.0 - eps) * zr[y] - eps / K * sz) : __int_as_float(0x7fc00000);
    if (!dz) return;
    for (int j = threadIdx.x; j < K; j += blockDim.x)
    {
        double t = eps / K + (j == y ? 1.0 - eps : 0.0);
        dz[(i64)row * K + j] = (float)((exp((double)zr[j] - lse) - t) / N);
    }
}

KERNEL void top_k_rank(const float* __restrict__ z, const int* __restrict__ labels, int K, int* __restrict__ ranks)
{
    int row = blockIdx.x;
    const float* zr = z + (i64)row * K;
    int y = labels[row];
    float v = (y >= 0 && y < K) ? zr[y] : 3.402823466e38f;
    int count = 0;
    for (int j = threadIdx.x; j < K; j += blockDim.x)
        if (zr[j] > v || (zr[j] == v && j < y)) count++;
    count = block_sum<int>(count);
    if (threadIdx.x == 0) ranks[row] = count;
}

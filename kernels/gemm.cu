// gemm.cu — strided batched SGEMM: C[b] = op(A)[b] op(B)[b] (+ beta C[b]) (+ bias per column).
// Every matrix is addressed by strides, so one kernel serves the pointwise conv (per image,
// W X and W^T dY), its weight gradient (dY X^T), the dense conv's im2col GEMMs and the linear
// layers: A(i, k) = A[b*sAb + i*sAi + k*sAk], B(k, j) = B[b*sBb + k*sBk + j*sBj],
// C(i, j) = C[b*sCb + i*sCi + j]. K may run over segments of kSeg: k = s*kSeg + r addresses A at
// s*sAs + r*sAk (B at s*sBs + r*sBk), so the pointwise weight gradient sum_n dY[n] X[n]^T is one
// GEMM whose K spans every image's plane (kSeg = K: a single segment).
// Launch: grid (ceil(N / 64), ceil(M / 64), batch), 256 threads; each thread owns a 4x4 block of
// a 64x64 output tile; K advances 16 at a time through shared memory. Tiles are loaded along
// whichever index has unit stride, so loads coalesce for A, A^T, B and B^T alike.
// Bound by FLOPs for wide layers; v1 keeps no double buffering and no tensor cores.
#include "common.cuh"

#define TILE 64
#define BK 16
#define FOLD_K 256 // a multiple of BK

KERNEL void gemm_f32(int M, int N, int K, int kSeg,
                     const float* __restrict__ A, i64 sAb, i64 sAi, i64 sAk, i64 sAs,
                     const float* __restrict__ B, i64 sBb, i64 sBk, i64 sBj, i64 sBs,
                     float* __restrict__ C, i64 sCb, i64 sCi,
                     float beta, const float* __restrict__ bias)
{
    __shared__ float As[BK][TILE + 1];
    __shared__ float Bs[BK][TILE + 1];
    int b = blockIdx.z;
    int i0 = blockIdx.y * TILE, j0 = blockIdx.x * TILE;
    A += b * sAb;
    B += b * sBb;
    C += b * sCb;
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    // fp32 sums over chunks of FOLD_K, added into double totals: weight gradients run K over
    // every pixel of the batch (3.2M terms for the stem at batch 256), where one fp32 running sum
    // would lose ~1e-4 relative. 16 double adds per 4,096 FMAs.
    float acc[4][4];
    double total[4][4];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = 0.f, total[r][c] = 0.0;

    for (int k0 = 0; k0 < K; k0 += BK)
    {
        for (int e = threadIdx.x; e < TILE * BK; e += 256)
        {
            int ii, kk;
            if (sAk == 1) { ii = e / BK; kk = e % BK; } else { kk = e / TILE; ii = e % TILE; }
            int gi = i0 + ii, gk = k0 + kk;
            int seg = gk / kSeg;
            As[kk][ii] = (gi < M && gk < K) ? A[gi * sAi + seg * sAs + (gk - seg * kSeg) * sAk] : 0.f;
        }
        for (int e = threadIdx.x; e < TILE * BK; e += 256)
        {
            int jj, kk;
            if (sBj == 1) { kk = e / TILE; jj = e % TILE; } else { jj = e / BK; kk = e % BK; }
            int gk = k0 + kk, gj = j0 + jj;
            int seg = gk / kSeg;
            Bs[kk][jj] = (gk < K && gj < N) ? B[seg * sBs + (gk - seg * kSeg) * sBk + gj * sBj] : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk++)
        {
            float a[4], bv[4];
#pragma unroll
            for (int r = 0; r < 4; r++) a[r] = As[kk][ty + 16 * r];
#pragma unroll
            for (int c = 0; c < 4; c++) bv[c] = Bs[kk][tx + 16 * c];
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int c = 0; c < 4; c++) acc[r][c] = fmaf(a[r], bv[c], acc[r][c]);
        }
        __syncthreads();
        if ((k0 + BK) % FOLD_K == 0 || k0 + BK >= K)
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) total[r][c] += acc[r][c], acc[r][c] = 0.f;
    }
    for (int r = 0; r < 4; r++)
    {
        int i = i0 + ty + 16 * r;
        if (i >= M) continue;
        for (int c = 0; c < 4; c++)
        {
            int j = j0 + tx + 16 * c;
            if (j >= N) continue;
            float v = (float)total[r][c];
            if (bias) v += bias[j];
            float* p = C + i * sCi + j;
            *p = beta == 0.f ? v : v + beta * *p; // beta 0 never reads C: it may hold garbage
        }
    }
}

// out[e] = sum_s partial[s * count + e] (+ beta * out[e]): the split-K partial products of a
// weight gradient, added in split order (deterministic; no atomics). One thread per element.
KERNEL void split_sum(const float* __restrict__ partial, int splits, i64 count, float* __restrict__ out, float beta)
{
    FOR_EACH(count)
    {
        double s = 0;
        for (int k = 0; k < splits; k++) s += partial[k * count + e];
        out[e] = beta == 0.f ? (float)s : (float)(s + beta * out[e]);
    }
}

// Column sums of a row-major [rows, cols] matrix: the bias gradient of a linear layer.
// One thread per column, rows summed in order (deterministic).
KERNEL void column_sum(int rows, int cols, const float* __restrict__ x, float* __restrict__ y)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    double s = 0;
    for (int i = 0; i < rows; i++) s += x[(i64)i * cols + j];
    y[j] = (float)s;
}

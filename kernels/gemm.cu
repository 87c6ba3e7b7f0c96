// gemm.cu — strided batched SGEMM: C[z] = op(A)[z] op(B)[z] (+ beta C[z]) (+ bias per column).
// Every matrix is addressed by strides, so one kernel family serves the pointwise conv (per image,
// W X and W^T dY), its weight gradient (dY X^T), the dense conv's im2col GEMMs and the linear
// layers: A(i, k) = A[z*sAb + i*sAi + k*sAk], B(k, j) = B[z*sBb + k*sBk + j*sBj],
// C(i, j) = C[z*sCb + i*sCi + j]. K may run over segments of kSeg: k = s*kSeg + r addresses A at
// s*sAs + r*sAk (B at s*sBs + r*sBk), so the pointwise weight gradient sum_n dY[n] X[n]^T is one
// GEMM whose K spans every image's plane. With kPiece > 0, blockIdx.z = p computes only the
// k in [p*kPiece, (p+1)*kPiece) (split-K: z then selects a partial product through sCb, and
// split_sum adds the pieces in order).
//
// v2 (docs/kernels.md): one template, gemm_tile<BM, BN>, instantiated for the tile shapes the
// launcher picks from M and N (16x256 for an 8-channel pointwise conv over a 112x112 plane,
// 256x16 for its transpose, 64x64 where both are wide). 256 threads as a 16 x 16 grid, each owning
// a (BM/16) x (BN/16) block of the tile at a 16-element stride (so stores coalesce); K advances
// 16 at a time through shared memory, the next step's tile prefetched into registers while the
// current one is multiplied. Tiles are loaded along whichever index has unit stride, so loads
// coalesce for A, A^T, B and B^T alike. Segments are walked by a per-thread cursor (no division
// per element, as v1 had). Segmented K needs both operands loaded along k (sAk == 1, sBj != 1):
// the launcher guarantees it. Sums are fp32: the launcher keeps every K piece at most
// CudaBackend.MaxKPiece long, and split_sum adds pieces in double.
#include "common.cuh"
#include "mma.cuh"

#define BK 16

// Where one thread's loads of one operand tile start, and how its cursor walks K. A thread
// loads LOADS elements per K step, element j at base + j * step (+ the cursor's offset), at
// tile position (row0 + j * drow, kk0 + j * dk).
struct TileCursor
{
    const float* base; // operand + row0 * row stride
    i64 step;          // from element j to j + 1
    i64 offset;        // of k = k_next within its segment: seg * sS + r * sK
    int r;             // k_next's position within its segment
    int row0, drow, kk0, dk;
};

// A cursor for an operand with element (row, k) at row * sRow + seg * sS + r * sK. along_k: the
// tile is loaded with k fastest (consecutive threads read consecutive k).
template <int ROWS>
__device__ __forceinline__ TileCursor tile_cursor(const float* p, int row_start, i64 sRow, i64 sK, i64 sS, int kSeg,
                                                  int k_begin, bool along_k)
{
    TileCursor c;
    int t = threadIdx.x;
    if (along_k) c.row0 = t / BK, c.drow = 256 / BK, c.kk0 = t % BK, c.dk = 0;
    else c.row0 = t % ROWS, c.drow = 0, c.kk0 = t / ROWS, c.dk = 256 / ROWS;
    c.base = p + (i64)(row_start + c.row0) * sRow;
    c.step = c.drow * sRow + c.dk * sK;
    int k = k_begin + c.kk0, seg = k / kSeg; // once per thread
    c.r = k - seg * kSeg;
    c.offset = seg * sS + (i64)c.r * sK;
    return c;
}

// Moves the cursor BK along K, stepping into the next segment(s) where it passes an end.
__device__ __forceinline__ void advance(TileCursor& c, i64 sK, i64 sS, int kSeg)
{
    c.r += BK;
    c.offset += BK * sK;
    while (c.r >= kSeg)
    {
        c.r -= kSeg;
        c.offset += sS - kSeg * sK;
    }
}

// Reads this thread's LOADS elements of the tile whose first k is k0 (0 outside the matrix).
template <int LOADS>
__device__ __forceinline__ void load_tile(float (&v)[LOADS], const TileCursor& c, int row_start, int rows, int k0, int k_end)
{
#pragma unroll
    for (int j = 0; j < LOADS; j++)
    {
        int row = row_start + c.row0 + j * c.drow, k = k0 + c.kk0 + j * c.dk;
        v[j] = row < rows && k < k_end ? c.base[c.offset + j * c.step] : 0.f;
    }
}

template <int LOADS, int COLS>
__device__ __forceinline__ void store_tile(float (&s)[BK][COLS], const float (&v)[LOADS], const TileCursor& c)
{
#pragma unroll
    for (int j = 0; j < LOADS; j++) s[c.kk0 + j * c.dk][c.row0 + j * c.drow] = v[j];
}

#define GEMM_PARAMS                                                                                   \
    int M, int N, int K, int kSeg, int kPiece,                                                        \
        const float *__restrict__ A, i64 sAb, i64 sAi, i64 sAk, i64 sAs,                              \
        const float *__restrict__ B, i64 sBb, i64 sBk, i64 sBj, i64 sBs,                              \
        float *__restrict__ C, i64 sCb, i64 sCi, float beta, const float *__restrict__ bias
#define GEMM_ARGS M, N, K, kSeg, kPiece, A, sAb, sAi, sAk, sAs, B, sBb, sBk, sBj, sBs, C, sCb, sCi, beta, bias

template <int BM, int BN>
__device__ __forceinline__ void gemm_tile(GEMM_PARAMS)
{
    constexpr int TM = BM / 16, TN = BN / 16; // outputs per thread along i and j
    constexpr int LA = BM * BK / 256, LB = BN * BK / 256; // loads per thread per K step
    __shared__ float As[BK][BM + 1];
    __shared__ float Bs[BK][BN + 1];
    int z = blockIdx.z;
    int i0 = blockIdx.y * BM, j0 = blockIdx.x * BN;
    int k_begin = kPiece > 0 ? z * kPiece : 0;
    int k_end = kPiece > 0 && k_begin + kPiece < K ? k_begin + kPiece : K;
    A += z * sAb;
    B += z * sBb;
    C += z * sCb;
    TileCursor ca = tile_cursor<BM>(A, i0, sAi, sAk, sAs, kSeg, k_begin, sAk == 1);
    TileCursor cb = tile_cursor<BN>(B, j0, sBj, sBk, sBs, kSeg, k_begin, sBj != 1);
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    float acc[TM][TN];
#pragma unroll
    for (int r = 0; r < TM; r++)
#pragma unroll
        for (int c = 0; c < TN; c++) acc[r][c] = 0.f;

    float va[LA], vb[LB];
    load_tile(va, ca, i0, M, k_begin, k_end);
    load_tile(vb, cb, j0, N, k_begin, k_end);
    for (int k0 = k_begin; k0 < k_end; k0 += BK)
    {
        store_tile(As, va, ca);
        store_tile(Bs, vb, cb);
        __syncthreads();
        if (k0 + BK < k_end) // the next tile's global loads overlap this tile's FMAs
        {
            advance(ca, sAk, sAs, kSeg);
            advance(cb, sBk, sBs, kSeg);
            load_tile(va, ca, i0, M, k0 + BK, k_end);
            load_tile(vb, cb, j0, N, k0 + BK, k_end);
        }
#pragma unroll
        for (int kk = 0; kk < BK; kk++)
        {
            float a[TM], b[TN];
#pragma unroll
            for (int r = 0; r < TM; r++) a[r] = As[kk][ty + 16 * r];
#pragma unroll
            for (int c = 0; c < TN; c++) b[c] = Bs[kk][tx + 16 * c];
#pragma unroll
            for (int r = 0; r < TM; r++)
#pragma unroll
                for (int c = 0; c < TN; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < TM; r++)
    {
        int i = i0 + ty + 16 * r;
        if (i >= M) continue;
#pragma unroll
        for (int c = 0; c < TN; c++)
        {
            int j = j0 + tx + 16 * c;
            if (j >= N) continue;
            float v = acc[r][c];
            if (bias) v += bias[j];
            float* p = C + i * sCi + j;
            *p = beta == 0.f ? v : v + beta * *p; // beta 0 never reads C: it may hold garbage
        }
    }
}

// The tile shapes CudaBackend.GemmTiles lists, one entry point each (NVRTC exports no templates),
// at 2 blocks per SM: up to 128 registers for a thread's 16 accumulators, prefetch and cursors.
#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 2
KERNEL void gemm_f32_64x64(GEMM_PARAMS) { gemm_tile<64, 64>(GEMM_ARGS); }
KERNEL void gemm_f32_32x128(GEMM_PARAMS) { gemm_tile<32, 128>(GEMM_ARGS); }
KERNEL void gemm_f32_128x32(GEMM_PARAMS) { gemm_tile<128, 32>(GEMM_ARGS); }
KERNEL void gemm_f32_16x256(GEMM_PARAMS) { gemm_tile<16, 256>(GEMM_ARGS); }
KERNEL void gemm_f32_256x16(GEMM_PARAMS) { gemm_tile<256, 16>(GEMM_ARGS); }
KERNEL void gemm_f32_32x32(GEMM_PARAMS) { gemm_tile<32, 32>(GEMM_ARGS); }
KERNEL void gemm_f32_16x16(GEMM_PARAMS) { gemm_tile<16, 16>(GEMM_ARGS); }


// v2.2: the same GEMM (GEMM_PARAMS, the same operand semantics) on the tensor cores, TF32
// m16n8k8 mma.sync with fp32 accumulation. 256 threads = 8 warps in a WARPS_M x WARPS_N grid,
// each owning a (BM / WARPS_M) x (BN / WARPS_N) block of the BM x BN tile as MT x NT 16x8
// fragments. K advances BK = 16 at a time through two shared-memory stages filled by cp.async
// (4 bytes an element: the operands' strides are arbitrary, so 16-byte copies are not in
// general aligned; the TileCursor walk above gives each element's address, segments and split-K
// pieces included), the next stage's copies in flight while the current one is multiplied.
// Elements outside the matrix (rows >= M or N, k >= the piece's end) are zero-filled by the
// copy (src-size 0), so partial tiles need no branches in the MMA loop. Both tiles are stored
// k-fastest (As[i][k], Bs[j][k], rows padded to 20 floats: conflict-free fragment reads and
// 16-byte aligned rows), so ldmatrix.x4 gives A's fragments and ldmatrix.x2 B's.
// SPLIT3 (3xTF32): x = big + small with big = tf32(x), small = tf32(x - big), and the product
// is accumulated as big*small + small*big + big*big (the small*small term dropped), close to
// fp32 accuracy. For non-finite x the cross terms use 0 for both parts (else inf * 0 there would
// make NaN where the exact product is inf); NaN and inf reach the output through big*big.
#define TC_BK 16
#define TC_LD (TC_BK + 4)

// A fragment's registers as tf32 (plain) or as the big part and the cross-term parts (SPLIT3).
template <bool SPLIT3, int R>
__device__ __forceinline__ void tf32_split(const unsigned (&raw)[R], unsigned (&big)[R], unsigned (&cross)[R], unsigned (&small)[R])
{
#pragma unroll
    for (int i = 0; i < R; i++)
    {
        float x = __int_as_float((int)raw[i]);
        big[i] = to_tf32(x);
        if (SPLIT3)
        {
            bool finite = (raw[i] & 0x7f800000u) != 0x7f800000u; // not inf or NaN
            cross[i] = finite ? big[i] : 0u;
            small[i] = finite ? to_tf32(x - __int_as_float((int)big[i])) : 0u;
        }
    }
}

// Issues the cp.async copies of one operand tile (ROWS x TC_BK, stored s[row][k]) whose first k is k0.
template <int LOADS>
__device__ __forceinline__ void copy_tile(float (*s)[TC_LD], const TileCursor& c, const float* any, int row_start, int rows, int k0, int k_end)
{
#pragma unroll
    for (int j = 0; j < LOADS; j++)
    {
        int row = c.row0 + j * c.drow, kk = c.kk0 + j * c.dk;
        bool in = row_start + row < rows && k0 + kk < k_end;
        cp_async_4(&s[row][kk], in ? c.base + c.offset + j * c.step : any, in ? 4 : 0);
    }
}

template <int BM, int BN, int WARPS_M, bool SPLIT3>
__device__ __forceinline__ void gemm_tc_tile(float (&As)[2][BM][TC_LD], float (&Bs)[2][BN][TC_LD], GEMM_PARAMS)
{
    constexpr int WARPS_N = 8 / WARPS_M;
    constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N; // one warp's block
    constexpr int MT = WM / 16, NT = WN / 8;            // its 16x8 fragments
    static_assert(WARPS_M * WARPS_N == 8 && MT * 16 == WM && NT * 8 == WN && MT > 0 && NT > 0, "warp tiling");
    constexpr int LA = BM * TC_BK / 256, LB = BN * TC_BK / 256;
    int z = blockIdx.z;
    int i0 = blockIdx.y * BM, j0 = blockIdx.x * BN;
    int k_begin = kPiece > 0 ? z * kPiece : 0;
    int k_end = kPiece > 0 && k_begin + kPiece < K ? k_begin + kPiece : K;
    A += z * sAb;
    B += z * sBb;
    C += z * sCb;
    // tile_cursor's thread layout is BK = 16 wide, as TC_BK.
    TileCursor ca = tile_cursor<BM>(A, i0, sAi, sAk, sAs, kSeg, k_begin, sAk == 1);
    TileCursor cb = tile_cursor<BN>(B, j0, sBj, sBk, sBs, kSeg, k_begin, sBj != 1);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int wm = (warp % WARPS_M) * WM, wn = (warp / WARPS_M) * WN;
    float acc[MT][NT][4];
#pragma unroll
    for (int a = 0; a < MT; a++)
#pragma unroll
        for (int b = 0; b < NT; b++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[a][b][r] = 0.f;

    copy_tile<LA>(As[0], ca, A, i0, M, k_begin, k_end);
    copy_tile<LB>(Bs[0], cb, B, j0, N, k_begin, k_end);
    cp_async_commit();
    int stage = 0;
    for (int k0 = k_begin; k0 < k_end; k0 += TC_BK, stage ^= 1)
    {
        if (k0 + TC_BK < k_end) // the next stage's copies overlap this stage's MMAs
        {
            advance(ca, sAk, sAs, kSeg);
            advance(cb, sBk, sBs, kSeg);
            copy_tile<LA>(As[stage ^ 1], ca, A, i0, M, k0 + TC_BK, k_end);
            copy_tile<LB>(Bs[stage ^ 1], cb, B, j0, N, k0 + TC_BK, k_end);
        }
        cp_async_commit(); // possibly empty: the wait below always leaves the newest group
        cp_async_wait<1>();
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 8)
        {
            // B's fragments (and parts) for all NT, A's one m at a time: fewer live registers.
            unsigned bb[NT][2], bc[NT][2], bs[NT][2];
#pragma unroll
            for (int n = 0; n < NT; n++)
            {
                unsigned b[2];
                ldmatrix_x2(b, &Bs[stage][wn + n * 8 + lane % 8][kk + 4 * ((lane / 8) % 2)]);
                tf32_split<SPLIT3>(b, bb[n], bc[n], bs[n]);
            }
#pragma unroll
            for (int m = 0; m < MT; m++)
            {
                unsigned a[4], ab[4], ac[4], as[4];
                ldmatrix_x4(a, &As[stage][wm + m * 16 + lane % 16][kk + 4 * (lane / 16)]);
                tf32_split<SPLIT3>(a, ab, ac, as);
#pragma unroll
                for (int n = 0; n < NT; n++)
                {
                    if (SPLIT3)
                    {
                        mma_tf32_16x8x8(acc[m][n], ac, bs[n], acc[m][n]);
                        mma_tf32_16x8x8(acc[m][n], as, bc[n], acc[m][n]);
                    }
                    mma_tf32_16x8x8(acc[m][n], ab, bb[n], acc[m][n]);
                }
            }
        }
        __syncthreads(); // the next iteration's copies overwrite this stage
    }
    cp_async_wait_all(); // nothing in flight at exit (K = 0 leaves the first group)
    int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int r = 0; r < 4; r++)
            {
                int i = i0 + wm + m * 16 + g + 8 * (r >> 1), j = j0 + wn + n * 8 + 2 * t + (r & 1);
                if (i >= M || j >= N) continue;
                float v = acc[m][n][r];
                if (bias) v += bias[j];
                float* p = C + i * sCi + j;
                *p = beta == 0.f ? v : v + beta * *p;
            }
}

// The stages are declared in the entry point and passed to the template (written when the
// emulator kept a template's statics out of its shared-memory section; it no longer does).
// Before sm_80 there is no mma.sync, cp.async or ldmatrix: the entry points compile to a trap,
// so this file still loads there for the fp32 kernels (CudaBackend.Precision refuses tf32).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define TC_BODY(BM, BN, WARPS_M, SPLIT3)                  \
    __shared__ __align__(16) float As[2][BM][TC_LD];     \
    __shared__ __align__(16) float Bs[2][BN][TC_LD];     \
    gemm_tc_tile<BM, BN, WARPS_M, SPLIT3>(As, Bs, GEMM_ARGS);
#else
#define TC_BODY(BM, BN, WARPS_M, SPLIT3) __trap();
#endif

// CudaBackend.TensorTiles' shapes (BM, BN, warps along M), tf32 at 2 blocks per SM, then 3xTF32.
KERNEL void gemm_tf32_128x64(GEMM_PARAMS) { TC_BODY(128, 64, 4, false) }
KERNEL void gemm_tf32_64x128(GEMM_PARAMS) { TC_BODY(64, 128, 2, false) }
KERNEL void gemm_tf32_64x64(GEMM_PARAMS) { TC_BODY(64, 64, 2, false) }
KERNEL void gemm_tf32_16x256(GEMM_PARAMS) { TC_BODY(16, 256, 1, false) }
KERNEL void gemm_tf32_256x16(GEMM_PARAMS) { TC_BODY(256, 16, 8, false) }
KERNEL void gemm_tf32_32x32(GEMM_PARAMS) { TC_BODY(32, 32, 2, false) }
// 3xTF32 holds three parts of each fragment: at 2 blocks per SM (128 registers) ptxas spilled
// up to 68 bytes a thread, so these run at 1 block per SM (up to 255 registers).
#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 1
KERNEL void gemm_tf32x3_128x64(GEMM_PARAMS) { TC_BODY(128, 64, 4, true) }
KERNEL void gemm_tf32x3_64x128(GEMM_PARAMS) { TC_BODY(64, 128, 2, true) }
KERNEL void gemm_tf32x3_64x64(GEMM_PARAMS) { TC_BODY(64, 64, 2, true) }
KERNEL void gemm_tf32x3_16x256(GEMM_PARAMS) { TC_BODY(16, 256, 1, true) }
KERNEL void gemm_tf32x3_256x16(GEMM_PARAMS) { TC_BODY(256, 16, 8, true) }
KERNEL void gemm_tf32x3_32x32(GEMM_PARAMS) { TC_BODY(32, 32, 2, true) }

#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 4

// out[e] = sum_s partial[s * count + e] (+ beta * out[e]): the split-K partial products of a
// weight gradient, added in split order in double (deterministic; no atomics). One thread per element.
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

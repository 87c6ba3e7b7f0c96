// gemm.cu — strided batched SGEMM: C[z] = op(A)[z] op(B)[z] (+ beta C[z]) (+ bias per column).
// Every matrix is addressed by strides, so one kernel family serves the pointwise conv (per image,
// W X and W^T dY), its weight gradient (dY X^T), the dense conv's im2col GEMMs and the linear
// layers: A(i, k) = A[z*sAb + i*sAi + k*sAk], B(k, j) = B[z*sBb + k*sBk + j*sBj],
// C(i, j) = C[z*sCb + i*sCi + j]. K may run over segments of kSeg: k = s*kSeg + r addresses A at
// s*sAs + r*sAk (B at s*sBs + r*sBk), so the pointwise weight gradient sum_n dY[n] X[n]^T is one
// GEMM whose K spans every image's plane. With kPiece > 0, blockIdx.z = p computes only the
// k in [p*kPiece, (p+1)*kPiece) (split-K: z then selects a partial product through sCb, and
// split_sum adds the pieces in order; or, with sum_to set, the tile's last block to finish adds
// them, v2.8: finish_split below). With act_out set (v2.14), the epilogue also writes
// activation(kind, C(i, j)) to act_out, laid out as C (a linear layer and the activation
// after it: the host never sets it with split-K, whose C is a partial product).
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
#include "batch_norm.cuh"
#include "mma.cuh"

#define BK 16

// Where one thread's loads of one operand tile start, and how its cursor walks K. A thread
// loads LOADS elements per K step, element j at base + j * step (+ the cursor's offset), at
// tile position (row0 + j * drow, kk0 + j * dk).
template <typename T>
struct TileCursor
{
    const T* base;     // operand + row0 * row stride
    i64 step;          // from element j to j + 1
    i64 offset;        // of k = k_next within its segment: seg * sS + r * sK
    i64 z_offset;      // the same element of a fused batch norm's input z: seg * zS + r * sK (v2.9)
    i64 g_offset;      // its gate's K part, seg * gS + r * gK (v2.18; the row part is in the gate's base)
    int r;             // k_next's position within its segment
    int row0, drow, kk0, dk;
};

// A cursor for an operand with element (row, k) at row * sRow + seg * sS + r * sK. along_k: the
// tile is loaded with k fastest (consecutive threads read consecutive k).
template <int ROWS, typename T>
__device__ __forceinline__ TileCursor<T> tile_cursor(const T* p, int row_start, i64 sRow, i64 sK, i64 sS, int kSeg,
                                                  int k_begin, bool along_k, i64 zS = 0, i64 gS = 0, i64 gK = 0)
{
    TileCursor<T> c;
    int t = threadIdx.x;
    if (along_k) c.row0 = t / BK, c.drow = 256 / BK, c.kk0 = t % BK, c.dk = 0;
    else c.row0 = t % ROWS, c.drow = 0, c.kk0 = t / ROWS, c.dk = 256 / ROWS;
    c.base = p + (i64)(row_start + c.row0) * sRow;
    c.step = c.drow * sRow + c.dk * sK;
    int k = k_begin + c.kk0, seg = k / kSeg; // once per thread
    c.r = k - seg * kSeg;
    c.offset = seg * sS + (i64)c.r * sK;
    c.z_offset = seg * zS + (i64)c.r * sK;
    c.g_offset = seg * gS + (i64)c.r * gK;
    return c;
}

// Moves the cursor BK along K, stepping into the next segment(s) where it passes an end.
template <typename T>
__device__ __forceinline__ void advance(TileCursor<T>& c, i64 sK, i64 sS, int kSeg, i64 zS = 0, i64 gS = 0, i64 gK = 0)
{
    c.r += BK;
    c.offset += BK * sK;
    c.z_offset += BK * sK; // dead (and gone) in kernels without a fused batch norm
    c.g_offset += BK * gK; // and in kernels without a gate
    while (c.r >= kSeg)
    {
        c.r -= kSeg;
        c.offset += sS - kSeg * sK;
        c.z_offset += zS - kSeg * sK;
        c.g_offset += gS - kSeg * gK;
    }
}

// Reads this thread's LOADS elements of the tile whose first k is k0 (0 outside the matrix).
template <int LOADS, typename T>
__device__ __forceinline__ void load_tile(float (&v)[LOADS], const TileCursor<T>& c, int row_start, int rows, int k0, int k_end)
{
#pragma unroll
    for (int j = 0; j < LOADS; j++)
    {
        int row = row_start + c.row0 + j * c.drow, k = k0 + c.kk0 + j * c.dk;
        v[j] = row < rows && k < k_end ? (float)c.base[c.offset + j * c.step] : 0.f;
    }
}

// load_tile for an operand that is a batch norm's input gradient (v2.9): the operand's memory holds
// the batch norm's output gradient dy, z (its input, the GEMM's own earlier output) lies at the
// cursor's z offsets from zb, and each element is BnInputGrad's value, as batch_norm_bwd_data
// would have written it. CHANNEL_ROWS: the operand's rows are the channels (A of the weight
// gradient, dZ X^T); else its k is (B of the data gradient, W^T dZ).
template <int LOADS, bool CHANNEL_ROWS>
__device__ __forceinline__ void load_bn_tile(float (&v)[LOADS], const TileCursor<act>& c, const act* zb, const BnOperand& bn, float inv_m,
                                             int row_start, int rows, int k0, int k_end)
{
#pragma unroll
    for (int j = 0; j < LOADS; j++)
    {
        int row = row_start + c.row0 + j * c.drow, k = k0 + c.kk0 + j * c.dk;
        v[j] = row < rows && k < k_end ? BnInputGrad(bn, CHANNEL_ROWS ? row : k, inv_m)(zb[c.z_offset + j * c.step], c.base[c.offset + j * c.step]) : 0.f;
    }
}

// load_tile for an operand scaled as it is loaded (v2.18: squeeze-excite's output x * gate, whose
// x the operand's memory holds): element j times gb[c.g_offset + j * gstep], gb the gate at the
// thread's first row. One multiply, as channel_scale makes, so the products are its bits.
template <int LOADS>
__device__ __forceinline__ void load_gated_tile(float (&v)[LOADS], const TileCursor<act>& c, const act* gb, i64 gstep, int row_start, int rows, int k0, int k_end)
{
#pragma unroll
    for (int j = 0; j < LOADS; j++)
    {
        int row = row_start + c.row0 + j * c.drow, k = k0 + c.kk0 + j * c.dk;
        bool inside = row < rows && k < k_end;
        v[j] = inside ? (float)c.base[c.offset + j * c.step] * (float)gb[c.g_offset + j * gstep] : 0.f;
    }
}

template <int LOADS, int COLS, typename T>
__device__ __forceinline__ void store_tile(float (&s)[BK][COLS], const float (&v)[LOADS], const TileCursor<T>& c)
{
#pragma unroll
    for (int j = 0; j < LOADS; j++) s[c.kk0 + j * c.dk][c.row0 + j * c.drow] = v[j];
}

// v2.9: one operand (bn_operand 1: A, 2: B; 0: none) is the input gradient of the batch norm that
// read this conv's output z, computed where it is loaded (gemm_f32_bn_* only; the other kernels
// take these parameters and ignore them, so every GEMM launch has one argument list). z is at
// bn_z + matrix * bn_zb + the operand's own offsets, with bn_zs for its K segments; then the batch
// norm's parameters, saved statistics, reduced dgamma and dbeta, activation kind and 1 / (N * P).
// v2.10: with st_parts set, the output C (rows channels, columns a plane's pixels, one matrix an
// image) is also the input of a training batch norm, whose statistics the epilogue computes
// (tile_stats, gemm_f32_stats_* only): st_mean, st_invstd, st_running_mean, st_running_var as
// batch_norm_stats writes them, with its momentum and eps.
// v2.18: with GATE (gemm_f32_bn_gate_*, gemm_f32_stats_gate_*), operand B is scaled as it is loaded:
// B(k, j) of matrix z times gate[z * g_batch + seg * g_seg + r * g_k + j * g_row] (k = seg * kSeg +
// r): squeeze-excite's output, x * gate per image and channel, which is then never written. The
// pointwise forward's B is x[n] (k a channel: g_batch C, g_k 1), its weight gradient's B is x^T
// with an image a K segment (j a channel: g_seg C, g_row 1).
#define GEMM_BN_PARAMS                                                                                       \
    int bn_operand, const void *__restrict__ bn_z, i64 bn_zb, i64 bn_zs, const float *__restrict__ bn_gamma, \
        const float *__restrict__ bn_beta, const float *__restrict__ bn_mean, const float *__restrict__ bn_invstd, \
        const float *__restrict__ bn_dgamma, const float *__restrict__ bn_dbeta, int bn_act_kind, float bn_inv_m,  \
        float *__restrict__ st_mean, float *__restrict__ st_invstd, float *__restrict__ st_running_mean,      \
        float *__restrict__ st_running_var, float st_momentum, float st_eps, double *__restrict__ st_parts,    \
        unsigned *__restrict__ st_done, const void *__restrict__ gate, i64 g_batch, i64 g_seg, i64 g_row, i64 g_k
#define GEMM_BN_ARGS bn_operand, bn_z, bn_zb, bn_zs, bn_gamma, bn_beta, bn_mean, bn_invstd, bn_dgamma, bn_dbeta, bn_act_kind, bn_inv_m, \
    st_mean, st_invstd, st_running_mean, st_running_var, st_momentum, st_eps, st_parts, st_done, gate, g_batch, g_seg, g_row, g_k

// v2.10: the batch-norm statistics of the GEMM's output, from the accumulators (no pass over C).
// Each block reduces its tile's rows (a row's 16 threads are a half warp: shuffles) to one part
// per row, (count, mean, centred sum of squares), two passes over the registers. Part s =
// (image, column block) of channel i goes to st_parts[(i * S + s) * 3]. The last block of a row
// block to finish (counter blockIdx.y) merges its rows' S parts in part order (chan_merge):
// 256 / BM threads per row, each a fixed stride of parts, then the row's first thread merges
// theirs in lane order. The order never depends on timing, but it is not batch_norm_stats's
// chunking: the statistics agree with the unfused path to rounding, not bit for bit.
template <int BM, int BN>
__device__ __forceinline__ void tile_stats(const float (&acc)[BM / 16][BN / 16], int M, int N, int i0, int j0,
                                           float* __restrict__ save_mean, float* __restrict__ save_invstd,
                                           float* __restrict__ running_mean, float* __restrict__ running_var,
                                           float momentum, float eps, double* __restrict__ parts, unsigned* __restrict__ done)
{
    constexpr int TM = BM / 16, TN = BN / 16, T = 256 / BM; // threads per row in the merge
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    int S = gridDim.x * gridDim.z, s = blockIdx.z * gridDim.x + blockIdx.x;
    int count = N - j0 < BN ? N - j0 : BN;
#pragma unroll
    for (int r = 0; r < TM; r++)
    {
        double sum = 0;
#pragma unroll
        for (int c = 0; c < TN; c++)
            if (j0 + tx + 16 * c < N) sum += acc[r][c];
        for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        double mean = sum / count, q = 0;
#pragma unroll
        for (int c = 0; c < TN; c++)
            if (j0 + tx + 16 * c < N)
            {
                double d = acc[r][c] - mean;
                q += d * d;
            }
        for (int o = 8; o > 0; o >>= 1) q += __shfl_xor_sync(0xffffffffu, q, o);
        int i = i0 + ty + 16 * r;
        if (tx == 0 && i < M)
        {
            double* part = parts + ((i64)i * S + s) * 3;
            part[0] = count;
            part[1] = mean;
            part[2] = q;
        }
    }
    __shared__ int last;
    __shared__ double merged[256][3];
    __threadfence(); // this thread's parts are visible to whichever block merges them
    __syncthreads();
    if (threadIdx.x == 0) last = last_to_arrive(done, blockIdx.y, S);
    __syncthreads();
    if (!last) return;
    int row = threadIdx.x / T, lane = threadIdx.x % T, i = i0 + row;
    double n = 0, mean = 0, q = 0;
    if (i < M)
    {
        const volatile double* all = parts + (i64)i * S * 3; // written by other blocks: no cached copy
        for (int p = lane; p < S; p += T) chan_merge(n, mean, q, all[p * 3], all[p * 3 + 1], all[p * 3 + 2]);
    }
    merged[threadIdx.x][0] = n;
    merged[threadIdx.x][1] = mean;
    merged[threadIdx.x][2] = q;
    __syncthreads();
    if (lane != 0 || i >= M) return;
    for (int l = 1; l < T; l++) chan_merge(n, mean, q, merged[threadIdx.x + l][0], merged[threadIdx.x + l][1], merged[threadIdx.x + l][2]);
    double values = (double)N * gridDim.z; // every part's q is a sum of squares: no clamp needed
    store_stats(i, mean, q / values, (i64)values, save_mean, save_invstd, running_mean, running_var, momentum, eps);
}

// The matrices travel untyped (every pointer is 8 bytes at launch): gemm_tile's TA and TB say
// what A and B hold, and C (and sum_to) is GemmOut<TA, TB> (bf16 activations, issue 13: a weight
// in fp32, every activation in act; the weight gradients, the one product of two activations,
// in fp32). act_out, bn_z and gate are activations; the bias and the batch-norm values are fp32.
#define GEMM_PARAMS                                                                                   \
    int M, int N, int K, int kSeg, int kPiece,                                                        \
        const void *__restrict__ A, i64 sAb, i64 sAi, i64 sAk, i64 sAs,                               \
        const void *__restrict__ B, i64 sBb, i64 sBk, i64 sBj, i64 sBs,                               \
        void *__restrict__ C, i64 sCb, i64 sCi, float beta, const float *__restrict__ bias,            \
        void *__restrict__ sum_to, float sum_beta, unsigned *__restrict__ done, int activation_kind, void *__restrict__ act_out, \
        GEMM_BN_PARAMS
#define GEMM_ARGS M, N, K, kSeg, kPiece, A, sAb, sAi, sAk, sAs, B, sBb, sBk, sBj, sBs, C, sCb, sCi, beta, bias, sum_to, sum_beta, done, activation_kind, act_out, GEMM_BN_ARGS

// What a GEMM of A holding TA and B holding TB writes: an activation, unless both operands are
// activations (a weight gradient, dY X^T), which is an fp32 parameter gradient; split-K's partial
// products occur only there (CudaBackend.WeightGradient), so they are fp32 too. With fp32
// activations every case is float.
template <typename TA, typename TB> struct GemmOut { typedef act type; };
template <> struct GemmOut<act, act> { typedef float type; };

// v2.8: split-K's sum without a split_sum launch. After the blocks of a tile (gridDim.z of them,
// one per K piece) have written their partial products to C (z at partial + z * sCb, beta 0),
// the one that finishes last adds them into sum_to (same row stride sCi) in piece order, in
// double, with split_sum's very expression, so the result is split_sum's bit for bit and never
// depends on which block came last. Every thread fences its own stores before the block counts
// itself in (last_to_arrive fences only thread 0's). Out of line: inlined, it kept values live
// through the main loop that cost the tiles 1-6 registers (32x32 on sm_80: 82, which the
// allocation's granularity of 8 makes 88, 2 blocks per SM instead of 3).
template <int BM, int BN, typename TC>
__device__ __noinline__ void finish_split(int M, int N, int i0, int j0, const TC* partial, i64 sCb, i64 sCi,
                                             TC* __restrict__ sum_to, float beta, unsigned* __restrict__ done)
{
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = last_to_arrive(done, blockIdx.y * gridDim.x + blockIdx.x, gridDim.z);
    __syncthreads();
    if (!last) return;
    const volatile TC* all = partial; // written by other blocks: no cached copy
    for (int e = threadIdx.x; e < BM * BN; e += blockDim.x)
    {
        int i = i0 + e / BN, j = j0 + e % BN;
        if (i >= M || j >= N) continue;
        i64 at = i * sCi + j;
        double s = 0;
        for (int k = 0; k < (int)gridDim.z; k++) s += (float)all[k * sCb + at];
        sum_to[at] = beta == 0.f ? (float)s : (float)(s + beta * (float)sum_to[at]);
    }
}

// v2.14: activation(C) into act_out (laid out as C) for the block's tile, read back from C after
// a barrier (the block's own stores: L1/L2). Out of line, as finish_split: written into the
// epilogue's loop, its pointers raised the tiles by 4-20 registers and spilled sm_80's tf32 128x64.
template <int BM, int BN, typename TC>
__device__ __noinline__ void tile_activation(int M, int N, int i0, int j0, const TC* C, i64 sCi, act* __restrict__ act_out, int kind)
{
    __syncthreads(); // every thread's C stores are visible to the block
    for (int e = threadIdx.x; e < BM * BN; e += blockDim.x)
    {
        int i = i0 + e / BN, j = j0 + e % BN;
        if (i >= M || j >= N) continue;
        i64 at = i * sCi + j;
        act_out[at] = activation(kind, C[at]);
    }
}

template <int BM, int BN, bool BN_FUSED, bool STATS, bool GATE, typename TA, typename TB>
__device__ __forceinline__ void gemm_tile(GEMM_PARAMS)
{
    typedef typename GemmOut<TA, TB>::type TC;
    constexpr int TM = BM / 16, TN = BN / 16; // outputs per thread along i and j
    constexpr int LA = BM * BK / 256, LB = BN * BK / 256; // loads per thread per K step
    __shared__ float As[BK][BM + 1];
    __shared__ float Bs[BK][BN + 1];
    int z = blockIdx.z;
    int i0 = blockIdx.y * BM, j0 = blockIdx.x * BN;
    int k_begin = kPiece > 0 ? z * kPiece : 0;
    int k_end = kPiece > 0 && k_begin + kPiece < K ? k_begin + kPiece : K;
    const TA* a_mat = (const TA*)A + z * sAb;
    const TB* b_mat = (const TB*)B + z * sBb;
    TC* c_mat = (TC*)C + z * sCb;
    const act* z_act = (const act*)bn_z;
    const act* gates = (const act*)gate;
    const bool bn_a = BN_FUSED && bn_operand == 1, bn_b = BN_FUSED && bn_operand == 2;
    BnOperand bn{z_act, 0, bn_gamma, bn_beta, bn_mean, bn_invstd, bn_dgamma, bn_dbeta, bn_act_kind};
    i64 zS = BN_FUSED ? bn_zs : 0;
    TileCursor<TA> ca = tile_cursor<BM>(a_mat, i0, sAi, sAk, sAs, kSeg, k_begin, sAk == 1, zS);
    i64 gS = GATE ? g_seg : 0, gK = GATE ? g_k : 0;
    TileCursor<TB> cb = tile_cursor<BN>(b_mat, j0, sBj, sBk, sBs, kSeg, k_begin, sBj != 1, zS, gS, gK);
    const act* gb = GATE ? gates + z * g_batch + (i64)(j0 + cb.row0) * g_row : nullptr;
    const i64 gstep = GATE ? cb.dk * g_k + cb.drow * g_row : 0;
    // z's tile starts where the fused operand's does (same row and k strides), in z's own matrix.
    const act* zb = BN_FUSED ? z_act + z * bn_zb + (bn_a ? (i64)(i0 + ca.row0) * sAi : (i64)(j0 + cb.row0) * sBj) : nullptr;
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    float acc[TM][TN];
#pragma unroll
    for (int r = 0; r < TM; r++)
#pragma unroll
        for (int c = 0; c < TN; c++) acc[r][c] = 0.f;

    float va[LA], vb[LB];
    // A batch-norm operand and a gate are activations: a variant whose operand is a weight has none.
    auto load = [&](int k0) {
        if constexpr (BN_FUSED && same_type<TA, act>::value)
        {
            if (bn_a) load_bn_tile<LA, true>(va, ca, zb, bn, bn_inv_m, i0, M, k0, k_end);
            else load_tile(va, ca, i0, M, k0, k_end);
        }
        else load_tile(va, ca, i0, M, k0, k_end);
        if constexpr ((BN_FUSED || GATE) && same_type<TB, act>::value)
        {
            if (bn_b) load_bn_tile<LB, false>(vb, cb, zb, bn, bn_inv_m, j0, N, k0, k_end);
            else if (GATE) load_gated_tile(vb, cb, gb, gstep, j0, N, k0, k_end);
            else load_tile(vb, cb, j0, N, k0, k_end);
        }
        else load_tile(vb, cb, j0, N, k0, k_end);
    };
    load(k_begin);
    for (int k0 = k_begin; k0 < k_end; k0 += BK)
    {
        store_tile(As, va, ca);
        store_tile(Bs, vb, cb);
        __syncthreads();
        if (k0 + BK < k_end) // the next tile's global loads overlap this tile's FMAs
        {
            advance(ca, sAk, sAs, kSeg, zS);
            advance(cb, sBk, sBs, kSeg, zS, gS, gK);
            load(k0 + BK);
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
            TC* p = c_mat + i * sCi + j;
            *p = beta == 0.f ? v : v + beta * (float)*p; // beta 0 never reads C: it may hold garbage
        }
    }
    if (act_out) tile_activation<BM, BN>(M, N, i0, j0, c_mat, sCi, (act*)act_out + z * sCb, activation_kind);
    if (sum_to) finish_split<BM, BN>(M, N, i0, j0, c_mat - z * sCb, sCb, sCi, (TC*)sum_to, sum_beta, done);
    if (STATS && st_parts)
        tile_stats<BM, BN>(acc, M, N, i0, j0, st_mean, st_invstd, st_running_mean, st_running_var, st_momentum, st_eps, st_parts, st_done);
}

// Which operand holds a weight (issue 13, bf16 activations): the plain names read activations in
// both (fp32: everything), _wa a weight in A (convolutions: W X, W^T dY), _wb a weight in B (linear
// layers: X W^T, dY W). With fp32 activations every case is the plain kernel, and the _wa and _wb
// entry points are traps; with bf16, the variants no launch asks for are (FP32_ONLY), so that a
// module holds no code it never runs. The names exist in both builds: the driver looks them all up.
#if GHOSTNET_BF16
#define FP32_ONLY(call) __trap()
#define BF16_ONLY(call) call
#else
#define FP32_ONLY(call) call
#define BF16_ONLY(call) __trap()
#endif

// The tile shapes CudaBackend.GemmTiles lists, one entry point each (NVRTC exports no templates),
// at 2 blocks per SM: up to 128 registers for a thread's 16 accumulators, prefetch and cursors.
#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 2
KERNEL void gemm_f32_64x64(GEMM_PARAMS) { gemm_tile<64, 64, false, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_64x64_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<64, 64, false, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_64x64_wb(GEMM_PARAMS) { BF16_ONLY((gemm_tile<64, 64, false, false, false, act, float>(GEMM_ARGS))); }
KERNEL void gemm_f32_32x128(GEMM_PARAMS) { gemm_tile<32, 128, false, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_32x128_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<32, 128, false, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_32x128_wb(GEMM_PARAMS) { BF16_ONLY((gemm_tile<32, 128, false, false, false, act, float>(GEMM_ARGS))); }
KERNEL void gemm_f32_128x32(GEMM_PARAMS) { gemm_tile<128, 32, false, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_128x32_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<128, 32, false, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_128x32_wb(GEMM_PARAMS) { BF16_ONLY((gemm_tile<128, 32, false, false, false, act, float>(GEMM_ARGS))); }
KERNEL void gemm_f32_16x256(GEMM_PARAMS) { gemm_tile<16, 256, false, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_16x256_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<16, 256, false, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_16x256_wb(GEMM_PARAMS) { BF16_ONLY((gemm_tile<16, 256, false, false, false, act, float>(GEMM_ARGS))); }
KERNEL void gemm_f32_256x16(GEMM_PARAMS) { gemm_tile<256, 16, false, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_256x16_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<256, 16, false, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_256x16_wb(GEMM_PARAMS) { BF16_ONLY((gemm_tile<256, 16, false, false, false, act, float>(GEMM_ARGS))); }
KERNEL void gemm_f32_32x32(GEMM_PARAMS) { gemm_tile<32, 32, false, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_32x32_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<32, 32, false, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_32x32_wb(GEMM_PARAMS) { BF16_ONLY((gemm_tile<32, 32, false, false, false, act, float>(GEMM_ARGS))); }
KERNEL void gemm_f32_16x16(GEMM_PARAMS) { gemm_tile<16, 16, false, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_16x16_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<16, 16, false, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_16x16_wb(GEMM_PARAMS) { BF16_ONLY((gemm_tile<16, 16, false, false, false, act, float>(GEMM_ARGS))); }
// v2.9: the same tiles with one operand a batch norm's input gradient (GEMM_BN_PARAMS). Each tile
// as its plain twin, so the fused path picks the same tile and sums in the same order.
KERNEL void gemm_f32_bn_64x64(GEMM_PARAMS) { gemm_tile<64, 64, true, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_64x64_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<64, 64, true, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_bn_32x128(GEMM_PARAMS) { gemm_tile<32, 128, true, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_32x128_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<32, 128, true, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_bn_16x256(GEMM_PARAMS) { gemm_tile<16, 256, true, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_16x256_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<16, 256, true, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_bn_32x32(GEMM_PARAMS) { gemm_tile<32, 32, true, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_32x32_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<32, 32, true, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_bn_16x16(GEMM_PARAMS) { gemm_tile<16, 16, true, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_16x16_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<16, 16, true, false, false, float, act>(GEMM_ARGS))); }
// With 8 or 16 such loads a thread and K step, ptxas spilled these two (36-60 bytes) within 128
// registers: they run at 1 block per SM.
#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 1
KERNEL void gemm_f32_bn_128x32(GEMM_PARAMS) { gemm_tile<128, 32, true, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_128x32_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<128, 32, true, false, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_bn_256x16(GEMM_PARAMS) { gemm_tile<256, 16, true, false, false, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_256x16_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<256, 16, true, false, false, float, act>(GEMM_ARGS))); }
#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 2
// v2.10: the tiles again with the batch-norm statistics epilogue (tile_stats), apart from the _bn
// kernels: its double reductions raised the 32x32 and 64x64 tiles by 30-35 registers, which the
// backward GEMMs would have carried for nothing.
KERNEL void gemm_f32_stats_64x64(GEMM_PARAMS) { FP32_ONLY((gemm_tile<64, 64, false, true, false, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_64x64_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<64, 64, false, true, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_32x128(GEMM_PARAMS) { FP32_ONLY((gemm_tile<32, 128, false, true, false, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_32x128_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<32, 128, false, true, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_128x32(GEMM_PARAMS) { FP32_ONLY((gemm_tile<128, 32, false, true, false, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_128x32_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<128, 32, false, true, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_16x256(GEMM_PARAMS) { FP32_ONLY((gemm_tile<16, 256, false, true, false, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_16x256_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<16, 256, false, true, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_256x16(GEMM_PARAMS) { FP32_ONLY((gemm_tile<256, 16, false, true, false, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_256x16_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<256, 16, false, true, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_32x32(GEMM_PARAMS) { FP32_ONLY((gemm_tile<32, 32, false, true, false, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_32x32_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<32, 32, false, true, false, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_16x16(GEMM_PARAMS) { FP32_ONLY((gemm_tile<16, 16, false, true, false, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_16x16_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<16, 16, false, true, false, float, act>(GEMM_ARGS))); }
// v2.18: the _bn and _stats tiles again with operand B gated (GATE), for the pointwise conv that
// reads squeeze-excite's output: its weight gradient and its forward. Launch bounds as their twins.
KERNEL void gemm_f32_bn_gate_64x64(GEMM_PARAMS) { gemm_tile<64, 64, true, false, true, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_gate_32x128(GEMM_PARAMS) { gemm_tile<32, 128, true, false, true, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_gate_16x256(GEMM_PARAMS) { gemm_tile<16, 256, true, false, true, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_gate_32x32(GEMM_PARAMS) { gemm_tile<32, 32, true, false, true, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_gate_16x16(GEMM_PARAMS) { gemm_tile<16, 16, true, false, true, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_stats_gate_64x64(GEMM_PARAMS) { FP32_ONLY((gemm_tile<64, 64, false, true, true, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_64x64_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<64, 64, false, true, true, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_32x128(GEMM_PARAMS) { FP32_ONLY((gemm_tile<32, 128, false, true, true, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_32x128_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<32, 128, false, true, true, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_128x32(GEMM_PARAMS) { FP32_ONLY((gemm_tile<128, 32, false, true, true, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_128x32_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<128, 32, false, true, true, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_16x256(GEMM_PARAMS) { FP32_ONLY((gemm_tile<16, 256, false, true, true, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_16x256_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<16, 256, false, true, true, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_256x16(GEMM_PARAMS) { FP32_ONLY((gemm_tile<256, 16, false, true, true, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_256x16_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<256, 16, false, true, true, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_32x32(GEMM_PARAMS) { FP32_ONLY((gemm_tile<32, 32, false, true, true, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_32x32_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<32, 32, false, true, true, float, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_16x16(GEMM_PARAMS) { FP32_ONLY((gemm_tile<16, 16, false, true, true, act, act>(GEMM_ARGS))); }
KERNEL void gemm_f32_stats_gate_16x16_wa(GEMM_PARAMS) { BF16_ONLY((gemm_tile<16, 16, false, true, true, float, act>(GEMM_ARGS))); }
#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 1
KERNEL void gemm_f32_bn_gate_128x32(GEMM_PARAMS) { gemm_tile<128, 32, true, false, true, act, act>(GEMM_ARGS); }
KERNEL void gemm_f32_bn_gate_256x16(GEMM_PARAMS) { gemm_tile<256, 16, true, false, true, act, act>(GEMM_ARGS); }
#undef KERNEL_MIN_BLOCKS
#define KERNEL_MIN_BLOCKS 2


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
__device__ __forceinline__ void copy_tile(float (*s)[TC_LD], const TileCursor<float>& c, const float* any, int row_start, int rows, int k0, int k_end)
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
    const float* a_mat = (const float*)A + z * sAb;
    const float* b_mat = (const float*)B + z * sBb;
    float* c_mat = (float*)C + z * sCb;
    // tile_cursor's thread layout is BK = 16 wide, as TC_BK.
    TileCursor<float> ca = tile_cursor<BM>(a_mat, i0, sAi, sAk, sAs, kSeg, k_begin, sAk == 1);
    TileCursor<float> cb = tile_cursor<BN>(b_mat, j0, sBj, sBk, sBs, kSeg, k_begin, sBj != 1);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int wm = (warp % WARPS_M) * WM, wn = (warp / WARPS_M) * WN;
    float acc[MT][NT][4];
#pragma unroll
    for (int a = 0; a < MT; a++)
#pragma unroll
        for (int b = 0; b < NT; b++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[a][b][r] = 0.f;

    copy_tile<LA>(As[0], ca, a_mat, i0, M, k_begin, k_end);
    copy_tile<LB>(Bs[0], cb, b_mat, j0, N, k_begin, k_end);
    cp_async_commit();
    int stage = 0;
    for (int k0 = k_begin; k0 < k_end; k0 += TC_BK, stage ^= 1)
    {
        if (k0 + TC_BK < k_end) // the next stage's copies overlap this stage's MMAs
        {
            advance(ca, sAk, sAs, kSeg);
            advance(cb, sBk, sBs, kSeg);
            copy_tile<LA>(As[stage ^ 1], ca, a_mat, i0, M, k0 + TC_BK, k_end);
            copy_tile<LB>(Bs[stage ^ 1], cb, b_mat, j0, N, k0 + TC_BK, k_end);
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
                float* p = c_mat + i * sCi + j;
                *p = beta == 0.f ? v : v + beta * *p;
            }
    if (act_out) tile_activation<BM, BN>(M, N, i0, j0, c_mat, sCi, (act*)act_out + z * sCb, activation_kind);
    if (sum_to) finish_split<BM, BN>(M, N, i0, j0, c_mat - z * sCb, sCb, sCi, (float*)sum_to, sum_beta, done);
}

// The stages are declared in the entry point and passed to the template (written when the
// emulator kept a template's statics out of its shared-memory section; it no longer does).
// Before sm_80 there is no mma.sync, cp.async or ldmatrix: the entry points compile to a trap,
// so this file still loads there for the fp32 kernels (CudaBackend.Precision refuses tf32).
// With bf16 activations the tensor-core kernels are not built (their cp.async copies move fp32
// elements); a bf16 backend runs the SIMT kernels (CudaBackend.GemmPrecisionFor).
#if (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800) && !GHOSTNET_BF16
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
// weight gradient, added in split order in double (deterministic; no atomics). One thread per
// element. The unfused path of finish_split (CudaBackend.SumSplitKInGemm off), which must match it.
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
// With kind (v2.17: 1 ReLU, 2 hard-sigmoid; issue 14: 3 clamp(0, 1), 4 hard-swish), x is the gradient of activation(z) = a, and the column
// sums are of the activation's backward (from a for ReLU, from z for the others), written to dz as
// it is summed: a linear layer's bias gradient and the input of its backward GEMMs in one pass
// (relu_bwd or hard_sigmoid_bwd wrote it before).
KERNEL void column_sum(int rows, int cols, const act* __restrict__ x, float* __restrict__ y,
                       int kind, const act* __restrict__ z, const act* __restrict__ a, act* __restrict__ dz)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    double s = 0;
    for (int i = 0; i < rows; i++)
    {
        i64 at = (i64)i * cols + j;
        float g = x[at];
        if (kind)
        {
            g = kind == 1 ? relu_grad(a[at], g) : activation_grad(kind, z[at], g); // one operand loaded, not both
            dz[at] = g;
        }
        s += g;
    }
    y[j] = (float)s;
}

// common.cuh — the one header every kernel includes. NVRTC ships no CUDA headers (no
// <stdint.h>, no <cuda_fp16.h>), so what the kernels need is defined here.
//
// Tensor views. Activations are NCHW. A view is a channel window of a buffer that may hold more
// channels (the Ghost module's concat), so a kernel gets, per tensor, a pointer to element
// (0, 0, 0, 0) of the window and the distance between images ("image stride" = CTotal * H * W).
// Element (n, c, p) of a view with plane size P is at ptr[n * stride + c * P + p]: within one
// image a window is contiguous.
#pragma once

typedef long long i64;
typedef unsigned long long u64;

// bfloat16: the top half of an IEEE float (issue 13, --precision bf16). Stored as its 16 bits, read
// as a float exactly, written rounded to nearest, ties to even, every NaN as 0x7FC0 (PyTorch's
// c10::BFloat16; the host's twin is BFloat16.FromFloat, and the emulator's tests compare them bit
// for bit). Integer operations, not cvt.rn.bf16.f32, so that the emulator runs these very lines.
struct bf16
{
    unsigned short bits;

    bf16() = default;
    __device__ __forceinline__ bf16(float v) : bits(from_float(v)) {}
    __device__ __forceinline__ operator float() const { return __int_as_float((int)((unsigned)bits << 16)); }
    __device__ __forceinline__ operator float() const volatile { return __int_as_float((int)((unsigned)bits << 16)); } // another block's write (finish_split)

    static __device__ __forceinline__ unsigned short from_float(float v)
    {
        unsigned u = (unsigned)__float_as_int(v);
        if (v != v) return 0x7FC0;
        u += 0x7FFFu + ((u >> 16) & 1u);
        return (unsigned short)(u >> 16);
    }
};

// How a kernel holds activations and their gradients: the type of every activation pointer. A file
// in KernelSources.Bf16Files is compiled twice, the second time with GHOSTNET_BF16, and a bf16
// backend loads that one. Arithmetic is fp32 either way: a read converts to float (exactly), a
// write rounds once. Parameters, statistics, workspaces and reductions stay float (or double).
#if GHOSTNET_BF16
typedef bf16 act;
#else
typedef float act;
#endif

// std::is_same, which NVRTC's missing headers do not give.
template <typename A, typename B> struct same_type { static const bool value = false; };
template <typename A> struct same_type<A, A> { static const bool value = true; };

// An activation read as a float: for the places where an implicit conversion is ambiguous (a
// conditional whose other branch is a float).
__device__ __forceinline__ float ld(const act& v) { return (float)v; }

// Every block has 256 threads (THREADS, REDUCE_THREADS), and ptxas is told so, with the number
// of blocks an SM should hold at once: it then keeps registers to 65,536 / (256 * that). Memory-
// bound kernels ask for 4 (half the SM's 2,048 threads, enough to hide DRAM latency); a file
// whose kernels need more registers (gemm.cu: 2) redefines KERNEL_MIN_BLOCKS before them.
// Without a minimum, ptxas unrolls freely and takes 50-130% more registers (measured, NVRTC 11.8).
#define KERNEL_MIN_BLOCKS 4
#define KERNEL extern "C" __global__ __launch_bounds__(256, KERNEL_MIN_BLOCKS)

// Launch shapes shared with CudaBackend.cs.
#define THREADS 256          // elementwise kernels: one thread per element, grid-stride loops
#define REDUCE_THREADS 256   // one block per reduced row / channel / plane

// Grid-stride loop over elements e = 0 .. total - 1.
#define FOR_EACH(total) \
    for (i64 e = blockIdx.x * (i64)blockDim.x + threadIdx.x; e < (total); e += (i64)gridDim.x * blockDim.x)

__device__ __forceinline__ i64 view_offset(i64 e, i64 per_image, i64 stride)
{
    return (e / per_image) * stride + (e % per_image);
}

// Position (n, c, h, w) of a flat index over N x C x H x W, moved by a fixed step with carries:
// a grid-stride loop decomposes its first index and its step once (four 64-bit divisions per
// thread) instead of every element (v1: four or five per element). Each component stays below
// its extent, and a step's component too, so one carry per level suffices.
struct NchwCursor
{
    int n, c, h, w;
    int dn, dc, dh, dw;

    __device__ __forceinline__ NchwCursor(i64 first, i64 step, int C, int H, int W)
    {
        i64 hw = (i64)H * W, chw = hw * C;
        n = (int)(first / chw), c = (int)(first % chw / hw), h = (int)(first % hw / W), w = (int)(first % W);
        dn = (int)(step / chw), dc = (int)(step % chw / hw), dh = (int)(step % hw / W), dw = (int)(step % W);
    }

    __device__ __forceinline__ void advance(int C, int H, int W)
    {
        w += dw;
        int carry = w >= W;
        w -= carry ? W : 0;
        h += dh + carry;
        carry = h >= H;
        h -= carry ? H : 0;
        c += dc + carry;
        carry = c >= C;
        c -= carry ? C : 0;
        n += dn + carry;
    }
};

// A grid-stride loop over every (n, c, h, w) of N x C x H x W: `at` names the cursor.
#define FOR_EACH_NCHW(at, N, C, H, W)                                                                    \
    for (NchwCursor at(blockIdx.x * (i64)blockDim.x + threadIdx.x, (i64)gridDim.x * blockDim.x, C, H, W); \
         at.n < (N); at.advance(C, H, W))

// Called by one thread of each of a channel's S blocks once the block's part is written (and
// fenced by whoever wrote it): true in the last block to arrive, which then combines the parts
// (in chunk order: deterministic) and resets the count for the next launch. Split reductions
// (batch norm, the depthwise weight gradient) finish this way instead of in a second kernel.
__device__ __forceinline__ bool last_to_arrive(unsigned* __restrict__ done, int c, int S)
{
    __threadfence(); // the part is visible to whichever block arrives last
    if (atomicAdd(&done[c], 1u) != (unsigned)S - 1) return false;
    done[c] = 0;
    __threadfence();
    return true;
}

// Sum over the 32 lanes of a warp; lane 0 gets the result.
template <typename T>
__device__ __forceinline__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// Sum over a block of REDUCE_THREADS threads; every thread gets the result.
template <typename T>
__device__ __forceinline__ T block_sum(T v)
{
    __shared__ T warp_sums[32];
    v = warp_sum(v);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads(); // warp_sums may still be read by a previous call
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    T total = 0;
    int warps = (blockDim.x + 31) >> 5;
    for (int w = 0; w < warps; w++) total += warp_sums[w];
    return total;
}

// NaN semantics, as PyTorch's (docs/reliability.md): a NaN operand gives NaN. fmaxf and fminf
// return the other operand for NaN, so a NaN would silently become a number; no kernel uses them.
__device__ __forceinline__ bool is_nan(float v) { return v != v; }

// max(a, b), NaN when either is NaN (torch.maximum, the max-reductions of softmax and topk).
__device__ __forceinline__ float max_nan(float a, float b) { return (a > b || is_nan(a)) ? a : b; }

// relu(NaN) = NaN, relu(-Inf) = 0, relu(-0) = +0 (as Vector256.Max on the CPU). One definition
// for the ReLU op and the ReLU fused into batch norm.
__device__ __forceinline__ float relu(float x) { return x <= 0.f ? 0.f : x; }

// relu6(x + 3) / 6, the squeeze-excite gate. Comparisons, not fminf / fmaxf: those would turn NaN
// into 0 or 1 (hardsigmoid(NaN) is NaN). One definition for the op and the GEMM epilogue (v2.14).
__device__ __forceinline__ float hard_sigmoid(float x)
{
    float v = x + 3.f;
    return (v < 0.f ? 0.f : v > 6.f ? 6.f : v) / 6.f;
}

// clamp(x, 0, 1), the seed's squeeze-excite gate (issue 14); NaN stays NaN, as hard_sigmoid.
__device__ __forceinline__ float clamp01(float x) { return x < 0.f ? 0.f : x > 1.f ? 1.f : x; }

// x * relu6(x + 3) / 6, MobileNetV3's hard-swish (issue 14), times 1/6 rather than over 6: no
// division, whose slow path would cost the batch-norm kernels that fuse it registers (within an
// ulp of PyTorch's; the CPU's twin, ActivationMath, rounds alike). NaN stays NaN.
__device__ __forceinline__ float hard_swish(float x)
{
    float v = x + 3.f;
    return x * (v < 0.f ? 0.f : v > 6.f ? 6.f : v) * (1.f / 6.f);
}

// The ReLU gradient from its output y: dy where y > 0, 0 where y <= 0, NaN where y is NaN (a
// poisoned forward gives no finite gradient; PyTorch would pass dy there).
__device__ __forceinline__ float relu_grad(float y, float dy) { return y > 0.f ? dy : is_nan(y) ? y : 0.f; }

// The hard-sigmoid gradient from its input x: dy / 6 inside (-3, 3), 0 outside, NaN where x is NaN.
__device__ __forceinline__ float hard_sigmoid_grad(float x, float dy) { return (x > -3.f && x < 3.f) ? dy / 6.f : is_nan(x) ? x : 0.f; }

// The clamp(0, 1) gradient from its input x: dy on [0, 1] (PyTorch's clamp_backward, ends included), 0 outside, NaN where x is NaN.
__device__ __forceinline__ float clamp01_grad(float x, float dy) { return (x >= 0.f && x <= 1.f) ? dy : is_nan(x) ? x : 0.f; }

// The hard-swish gradient from its input x, as PyTorch's hardswish_backward: 0 below -3, dy (x / 3
// + 1/2) on [-3, 3] (one fmaf, no division), dy above; NaN where x is NaN.
__device__ __forceinline__ float hard_swish_grad(float x, float dy)
{
    return x < -3.f ? 0.f : x <= 3.f ? dy * fmaf(x, 1.f / 3.f, 0.5f) : x > 3.f ? dy : x;
}

// An activation by its kind, CudaBackend's Activation: 0 none, 1 ReLU, 2 hard-sigmoid, 3 clamp(0,
// 1), 4 hard-swish: the GEMM epilogue's (v2.14, out of line there) and the column sums'. The kind
// is uniform over a launch, so the branches never diverge.
__device__ __forceinline__ float activation(int kind, float x)
{
    return kind == 0 ? x : kind == 1 ? relu(x) : kind == 2 ? hard_sigmoid(x) : kind == 3 ? clamp01(x) : hard_swish(x);
}

// The gradient through activation(kind, x) from its input x (ReLU's mask from x's sign is its
// output's: relu(x) > 0 exactly where x > 0, and NaN where x is NaN).
__device__ __forceinline__ float activation_grad(int kind, float x, float dy)
{
    return kind == 0 ? dy : kind == 1 ? relu_grad(x, dy) : kind == 2 ? hard_sigmoid_grad(x, dy) : kind == 3 ? clamp01_grad(x, dy) : hard_swish_grad(x, dy);
}

// The activations a batch norm fuses (BatchNormOptions): 0 none, 1 ReLU, 4 hard-swish (timm's
// BatchNormAct2d in GhostNet and MobileNetV3). Only these three: the gates' divisions by 6 would
// cost every fused conv and batch-norm kernel registers.
__device__ __forceinline__ float bn_activation(int kind, float v) { return kind == 0 ? v : kind == 1 ? relu(v) : hard_swish(v); }
__device__ __forceinline__ float bn_activation_grad(int kind, float v, float dy) { return kind == 0 ? dy : kind == 1 ? relu_grad(v, dy) : hard_swish_grad(v, dy); }

// Max over a block of REDUCE_THREADS threads, NaN when any thread holds NaN; every thread gets it.
__device__ __forceinline__ float block_max(float v)
{
    __shared__ float warp_max[32];
    for (int o = 16; o > 0; o >>= 1) v = max_nan(v, __shfl_down_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) warp_max[warp] = v;
    __syncthreads();
    float m = warp_max[0];
    int warps = (blockDim.x + 31) >> 5;
    for (int w = 1; w < warps; w++) m = max_nan(m, warp_max[w]);
    return m;
}

// CounterRng.Mix / Uniform of the C# side: SplitMix64's finaliser of seed + (index + 1) * golden.
__device__ __forceinline__ u64 counter_mix(u64 seed, u64 index)
{
    u64 z = seed + (index + 1ull) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ float counter_uniform(u64 seed, u64 index)
{
    return (float)(counter_mix(seed, index) >> 40) * (1.0f / 16777216.0f);
}

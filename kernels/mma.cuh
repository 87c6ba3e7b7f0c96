// mma.cuh — tensor-core and asynchronous-copy building blocks for sm_80 and later, as inline PTX
// (NVRTC has no <mma.h> or <cuda_pipeline.h>). One source for the GPU and the CUDA emulator:
// under GHOSTNET_EMULATOR (tools/cuda-emulator/emu_warp_matrix.h defines it) each function calls
// the emulator's warp-collective implementation instead of the asm. Kernels include
// common.cuh first, then this header.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k8" and "... for mma.m16n8k16 with
// floating point type"). With g = lane / 4 and t = lane % 4 of the calling lane:
//   mma_tf32_16x8x8   A 16x8 (row-major, .row): a[i] = A[g + 8 * (i & 1)][t + 4 * (i >> 1)]
//                     B 8x8 (k by n, .col):     b[i] = B[t + 4 * i][g]
//   mma_bf16_16x8x16  A 16x16: a[j] = A[g + 8 * (j & 1)][2t + 8 * (j >> 1) + {0, 1}]
//                     B 16x8:  b[j] = B[2t + 8 * j + {0, 1}][g]
//                     (two bf16 per register, the lower column / row in the low 16 bits)
//   C and D (both):   c[i] = C[g + 8 * (i >> 1)][2t + (i & 1)]
// tf32 operands are fp32 bit patterns whose low 13 bits the tensor core ignores: round them with
// to_tf32 first (otherwise they are truncated). Accumulation is fp32.
//
// ldmatrix_xN loads N 8x8 matrices of 16-bit elements from shared memory: lane 8j + i passes the
// address of row i of matrix j (16 bytes, 16-byte aligned; lanes >= 8N pass anything). Lane l gets
// r[j] = matrix j's (row l / 4, cols 2(l % 4), 2(l % 4) + 1); _trans gets (rows 2(l % 4),
// 2(l % 4) + 1, col l / 4). For 32-bit data (tf32) one "row" is 4 floats: the non-trans x4 of a
// row-major 16x8 fp32 tile, lane l addressing row l % 16 at column 4 * (l / 16), gives exactly
// mma_tf32_16x8x8's a[]; x2 of an n-major (8 x k) B tile gives b[] (fp32 bits: to_tf32 them). A
// k-major fp32 B cannot use .trans (it swaps 16-bit halves): load its b[] with plain reads.
// Rows of a tile must be 16-byte aligned: declare the arrays __shared__ __align__(16).
//
// cp_async_N copies N bytes global -> shared without the registers: the first src_bytes bytes
// from gmem, zeros up to N (src_bytes = 0 reads nothing: out-of-range rows of a tile). Both
// addresses aligned to N. Copies since the last cp_async_commit() form a group; cp_async_wait<N>()
// waits until at most the N most recent committed groups of this thread are in flight (the open,
// uncommitted group is never waited for; cp_async_wait_all() commits it first). Other threads
// see the data only after a __syncthreads() that follows the wait.
//
// All of it needs sm_80 or later (ptxas rejects it below); every lane of the warp must call the
// mma and ldmatrix functions together (.sync.aligned). tools/cuda-emulator/README.md says what the
// emulator checks (alignment, shared-memory addresses, poisoned cp.async destinations).
#pragma once

// Natural-alignment vector loads and stores (16 bytes for float4): a misaligned one is an error
// on the GPU (CUDA_ERROR_MISALIGNED_ADDRESS) and in the emulator (a failed launch).
__device__ __forceinline__ float4 load_float4(const float* p)
{
#ifdef GHOSTNET_EMULATOR
    emu::wm::check_vector<float4>(p, "load_float4");
#endif
    return *reinterpret_cast<const float4*>(p);
}

__device__ __forceinline__ void store_float4(float* p, float4 v)
{
#ifdef GHOSTNET_EMULATOR
    emu::wm::check_vector<float4>(p, "store_float4");
#endif
    *reinterpret_cast<float4*>(p) = v;
}

__device__ __forceinline__ float2 load_float2(const float* p)
{
#ifdef GHOSTNET_EMULATOR
    emu::wm::check_vector<float2>(p, "load_float2");
#endif
    return *reinterpret_cast<const float2*>(p);
}

__device__ __forceinline__ void store_float2(float* p, float2 v)
{
#ifdef GHOSTNET_EMULATOR
    emu::wm::check_vector<float2>(p, "store_float2");
#endif
    *reinterpret_cast<float2*>(p) = v;
}

// The two bf16 halves of a register as floats (exact).
__device__ __forceinline__ float bf16_lo(unsigned v) { return __int_as_float((int)(v << 16)); }
__device__ __forceinline__ float bf16_hi(unsigned v) { return __int_as_float((int)(v & 0xffff0000u)); }

#ifdef GHOSTNET_EMULATOR

__device__ __forceinline__ unsigned to_tf32(float x) { return emu::wm::to_tf32(x); }
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) { return emu::wm::pack_bf16x2(lo, hi); }

__device__ __forceinline__ void mma_tf32_16x8x8(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) { emu::wm::mma_tf32_16x8x8(d, a, b, c); }
__device__ __forceinline__ void mma_bf16_16x8x16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) { emu::wm::mma_bf16_16x8x16(d, a, b, c); }

__device__ __forceinline__ void ldmatrix_x1(unsigned r[1], const void* smem) { emu::wm::ldmatrix(r, smem, 1, false); }
__device__ __forceinline__ void ldmatrix_x2(unsigned r[2], const void* smem) { emu::wm::ldmatrix(r, smem, 2, false); }
__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const void* smem) { emu::wm::ldmatrix(r, smem, 4, false); }
__device__ __forceinline__ void ldmatrix_x1_trans(unsigned r[1], const void* smem) { emu::wm::ldmatrix(r, smem, 1, true); }
__device__ __forceinline__ void ldmatrix_x2_trans(unsigned r[2], const void* smem) { emu::wm::ldmatrix(r, smem, 2, true); }
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const void* smem) { emu::wm::ldmatrix(r, smem, 4, true); }

__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, int src_bytes = 4) { emu::wm::cp_async(smem, gmem, 4, src_bytes, "cp.async.ca 4"); }
__device__ __forceinline__ void cp_async_8(void* smem, const void* gmem, int src_bytes = 8) { emu::wm::cp_async(smem, gmem, 8, src_bytes, "cp.async.ca 8"); }
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes = 16) { emu::wm::cp_async(smem, gmem, 16, src_bytes, "cp.async.cg 16"); }
__device__ __forceinline__ void cp_async_commit() { emu::wm::cp_async_commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { emu::wm::cp_async_wait(N); }
__device__ __forceinline__ void cp_async_wait_all() { emu::wm::cp_async_wait_all(); }

#else

// A generic pointer to shared memory as the 32-bit .shared address the instructions take.
__device__ __forceinline__ unsigned shared_address(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

// cvt.rna.tf32.f32: round to nearest, ties away from zero; the result's low 13 bits are zero.
__device__ __forceinline__ unsigned to_tf32(float x)
{
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

// Two floats rounded to nearest even bf16 in one register, lo in the low half. cvt.rn.bf16x2.f32
// d, a, b puts a in the upper half, so hi goes first.
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi)
{
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// d = A * B + c for the warp's 16x8x8 tf32 tile (layouts above). d may be c.
__device__ __forceinline__ void mma_tf32_16x8x8(float d[4], const unsigned a[4], const unsigned b[2], const float c[4])
{
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

// d = A * B + c for the warp's 16x8x16 bf16 tile (layouts above). d may be c.
__device__ __forceinline__ void mma_bf16_16x8x16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4])
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

// The "memory" clobbers keep ordinary shared-memory accesses on their side of these asms.
__device__ __forceinline__ void ldmatrix_x1(unsigned r[1], const void* smem)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(shared_address(smem)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x2(unsigned r[2], const void* smem)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(shared_address(smem)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const void* smem)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(smem)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x1_trans(unsigned r[1], const void* smem)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(shared_address(smem)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x2_trans(unsigned r[2], const void* smem)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(shared_address(smem)) : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const void* smem)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(smem)) : "memory");
}

// .ca (cached in L1) for 4 and 8 bytes; 16 bytes use .cg (L2 only: tiles are read once per block).
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, int src_bytes = 4)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(shared_address(smem)), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_8(void* smem, const void* gmem, int src_bytes = 8)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;" ::"r"(shared_address(smem)), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes = 16)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(shared_address(smem)), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

#endif

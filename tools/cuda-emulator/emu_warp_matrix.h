// emu_warp_matrix.h — the emulator's side of kernels/mma.cuh: tensor-core mma.sync, ldmatrix,
// cp.async with commit groups, cvt.rna.tf32.f32 and cvt.rn.bf16x2.f32, the float2 / float4 vector
// types, and the handler of the alignment sanitizer that nvrtc.cpp compiles every module with.
// emu_runtime.h includes this header at its end, so it sees the scheduler (emu::current,
// emu::sync_warp, emu::error); mma.cuh calls into namespace emu::wm when GHOSTNET_EMULATOR is
// defined (here), and emits inline PTX otherwise, so a kernel has one source for both.
//
// Every reference below is to the PTX ISA (docs.nvidia.com/cuda/parallel-thread-execution),
// chapter "Warp Level Matrix Multiply-Accumulate Instructions" and section "Data Movement and
// Conversion Instructions"; section titles are quoted because their numbers move between
// versions.
//
// Warp-collective instructions work like emu::shuffle in emu_runtime.h: each lane publishes what
// it holds (its fragment registers, or the 16-byte row its address points at) in an exchange
// slot, waits at emu::sync_warp for the whole warp, then computes its own result from every
// lane's slot. The slot buffer alternates by the parity of the thread's warp-operation count
// (Thread::shuffles, shared with the shuffles), which is what makes one barrier per instruction
// enough. A lane also publishes a tag (instruction and operation number): lanes of one warp at
// different warp instructions (x2 in half the warp, x4 in the other half, say) fail the launch
// instead of exchanging garbage, as .aligned demands that every lane execute the same one.
#pragma once
#include <stdarg.h>
#include <vector>

#define GHOSTNET_EMULATOR 1
#ifndef __align__
#define __align__(n) __attribute__((aligned(n)))
#endif

// NVRTC predefines CUDA's vector types; these have the GPU's size and alignment, so a float4
// access through a pointer that is not 16-byte aligned is caught by the alignment sanitizer.
struct alignas(8) float2
{
    float x, y;
};
struct alignas(16) float4
{
    float x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

namespace emu::wm
{
// Records the first error of the launch, with the block and thread, as the scheduler does; the
// launch then fails with 719 (CUDA_ERROR_LAUNCH_FAILED) at the end of the pass.
__attribute__((format(printf, 1, 2))) inline void fail(const char* format, ...)
{
    if (error[0] != 0) return;
    char what[384];
    va_list args;
    va_start(args, format);
    vsnprintf(what, sizeof what, format, args);
    va_end(args);
    snprintf(error, sizeof error, "%s in block (%u, %u, %u), thread (%u, %u, %u)", what, block_idx.x, block_idx.y, block_idx.z,
             current ? current->idx.x : 0, current ? current->idx.y : 0, current ? current->idx.z : 0);
}

inline bool aligned(const void* p, size_t alignment) { return (reinterpret_cast<uintptr_t>(p) & (alignment - 1)) == 0; }

// Shared memory is the emu_shared section (the __shared__ macro of emu_runtime.h); ldmatrix and
// the destination of cp.async must lie in it, as their .shared state space demands.
inline bool in_shared(const void* p, size_t bytes)
{
    auto* c = static_cast<const char*>(p);
    return __start_emu_shared != __stop_emu_shared && c >= __start_emu_shared && c + bytes <= __stop_emu_shared;
}

inline uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

inline float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// ---- Conversions ("cvt" in "Data Movement and Conversion Instructions"). ----

// cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10 mantissa bits; the result is a
// .b32 whose low 13 bits are zero. This is the instruction sequence ptxas emits for sm_80/86
// (add 0x1000 unless |x| is Inf or NaN, then mask with 0xffffe000), so Inf stays Inf, the
// canonical NaN stays NaN and a finite value past the largest tf32 rounds to Inf.
inline uint32_t to_tf32(float x)
{
    uint32_t u = bits(x);
    if ((u & 0x7fffffffu) < 0x7f800000u) u += 0x1000u;
    return u & 0xffffe000u;
}

// cvt.rn.f32 -> bf16: round to nearest even; NaN becomes the canonical 0x7fff.
inline uint32_t to_bf16(float x)
{
    uint32_t u = bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// cvt.rn.bf16x2.f32 d, a, b puts a in the upper half of d and b in the lower: mma.cuh passes
// (hi, lo) in that order.
inline uint32_t pack_bf16x2(float lo, float hi) { return to_bf16(hi) << 16 | to_bf16(lo); }

// ---- The exchange of a warp instruction. ----

enum Op : uint32_t
{
    MmaTf32 = 1,
    MmaBf16,
    LdMatrix, // + 4 * count + 2 * trans, so x1/x2/x4 and .trans are different instructions
};

inline const char* op_name(uint32_t op)
{
    switch (op)
    {
    case MmaTf32: return "mma.sync.m16n8k8.tf32";
    case MmaBf16: return "mma.sync.m16n8k16.bf16";
    case LdMatrix + 4: return "ldmatrix.x1";
    case LdMatrix + 8: return "ldmatrix.x2";
    case LdMatrix + 16: return "ldmatrix.x4";
    case LdMatrix + 6: return "ldmatrix.x1.trans";
    case LdMatrix + 10: return "ldmatrix.x2.trans";
    case LdMatrix + 18: return "ldmatrix.x4.trans";
    default: return "another warp instruction";
    }
}

constexpr int SlotWords = 12; // a tag and up to 10 fragment registers (mma: a[4], b[2], c[4])
inline uint32_t slots[2][MaxThreads][SlotWords];

// Publishes `words` (count of them) with the tag of `op`, waits for the warp, and returns the
// slots of its 32 lanes. Lanes at another warp instruction fail the launch.
inline uint32_t (*exchange(uint32_t op, const uint32_t* words, int count))[SlotWords]
{
    unsigned sequence = current->shuffles++;
    uint32_t (*buffer)[SlotWords] = slots[sequence & 1];
    int me = current->linear, base = me & ~31;
    uint32_t tag = op << 24 | (sequence & 0xffffffu);
    buffer[me][0] = tag;
    memcpy(&buffer[me][1], words, count * sizeof(uint32_t));
    sync_warp(0xffffffffu); // fails the launch if the warp is partial or a lane has exited
    for (int lane = 0; lane < 32 && base + lane < thread_count; lane++)
        if (buffer[base + lane][0] != tag)
        {
            uint32_t other = buffer[base + lane][0] >> 24;
            fail("%s: lane %d of the warp is at %s (every lane must execute the same warp instruction, .aligned)", op_name(op), lane,
                 other == op ? "an earlier instruction of the same kind" : op_name(other));
            break;
        }
    return buffer + base;
}

// ---- mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 and m16n8k16 .bf16 ----
// "Matrix Fragments for mma.m16n8k8" (.tf32) and "Matrix Fragments for mma.m16n8k16 with
// floating point type" (.bf16): with groupID = %laneid >> 2 and threadID_in_group = %laneid % 4,
//   tf32 A (16x8):  a_i at row groupID + 8 * (i & 1),         col threadID_in_group + 4 * (i >> 1)
//   tf32 B (8x8):   b_i at row threadID_in_group + 4 * i,     col groupID
//   bf16 A (16x16): a_i at row groupID + 8 * ((i >> 1) & 1),  col threadID_in_group * 2 + (i & 1) + 8 * (i >> 2)
//   bf16 B (16x8):  b_i at row threadID_in_group * 2 + (i & 1) + 8 * (i >> 1), col groupID
//   C, D (16x8):    c_i at row groupID + 8 * (i >> 1),        col threadID_in_group * 2 + (i & 1)
// where a bf16 register holds two elements, the lower-numbered one in its low 16 bits.
//
// Arithmetic: the tensor core reads the top 19 bits of a .tf32 operand (sign, 8 exponent bits,
// 10 mantissa bits) and ignores the low 13, so an operand that skipped cvt.rna.tf32.f32 is in
// effect truncated toward zero (Ootomo and Yokota, 2022, measured this on A100). The emulator
// truncates the same way rather than using the full fp32 value: a kernel that forgets to_tf32
// then loses precision here as it would on the GPU, instead of looking more accurate than it is.
// Products of two tf32 (11-bit significands) or two bf16 (8-bit) values are exact in fp32. They
// are added to c in fp32, round to nearest even, in the order k = 0, 1, ..., K-1. The hardware's
// adder tree differs in the last bits (its order and internal rounding are not specified; Fasi
// et al., 2021, measured truncating alignment on V100/A100), so tests compare with a tolerance
// on a GPU and exactly only on the emulator.
struct Matrices
{
    float a[16][16], b[16][8], c[16][8];
};

inline void multiply(const Matrices& m, int k_size, float d[4])
{
    int lane = current->linear & 31, group = lane >> 2, in_group = lane & 3;
    for (int i = 0; i < 4; i++)
    {
        int row = group + 8 * (i >> 1), col = in_group * 2 + (i & 1);
        float sum = m.c[row][col];
        for (int k = 0; k < k_size; k++) sum += m.a[row][k] * m.b[k][col];
        d[i] = sum;
    }
}

inline void unpack_accumulators(Matrices& m, const uint32_t* c, int lane)
{
    int group = lane >> 2, in_group = lane & 3;
    for (int i = 0; i < 4; i++) m.c[group + 8 * (i >> 1)][in_group * 2 + (i & 1)] = from_bits(c[i]);
}

inline void mma_tf32_16x8x8(float d[4], const unsigned a[4], const unsigned b[2], const float c[4])
{
    uint32_t mine[10];
    memcpy(mine, a, 16);
    memcpy(mine + 4, b, 8);
    memcpy(mine + 6, c, 16);
    auto warp = exchange(MmaTf32, mine, 10);
    Matrices m;
    for (int lane = 0; lane < 32; lane++)
    {
        const uint32_t* w = warp[lane] + 1;
        int group = lane >> 2, in_group = lane & 3;
        for (int i = 0; i < 4; i++) m.a[group + 8 * (i & 1)][in_group + 4 * (i >> 1)] = from_bits(w[i] & 0xffffe000u);
        for (int i = 0; i < 2; i++) m.b[in_group + 4 * i][group] = from_bits(w[4 + i] & 0xffffe000u);
        unpack_accumulators(m, w + 6, lane);
    }
    multiply(m, 8, d);
}

inline void mma_bf16_16x8x16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4])
{
    uint32_t mine[10];
    memcpy(mine, a, 16);
    memcpy(mine + 4, b, 8);
    memcpy(mine + 6, c, 16);
    auto warp = exchange(MmaBf16, mine, 10);
    Matrices m;
    auto element = [](uint32_t reg, int half) { return from_bits(half ? reg & 0xffff0000u : reg << 16); };
    for (int lane = 0; lane < 32; lane++)
    {
        const uint32_t* w = warp[lane] + 1;
        int group = lane >> 2, in_group = lane & 3;
        for (int i = 0; i < 8; i++) m.a[group + 8 * ((i >> 1) & 1)][in_group * 2 + (i & 1) + 8 * (i >> 2)] = element(w[i >> 1], i & 1);
        for (int i = 0; i < 4; i++) m.b[in_group * 2 + (i & 1) + 8 * (i >> 1)][group] = element(w[4 + (i >> 1)], i & 1);
        unpack_accumulators(m, w + 6, lane);
    }
    multiply(m, 16, d);
}

// ---- ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16 ("Warp-level matrix load
// instruction: ldmatrix"). Matrix j (of 1, 2 or 4) is eight rows of eight 16-bit elements; the
// address of its row i comes from thread 8 * j + i (threads 0-7 for .x1, 0-15 for .x2, all 32 for
// .x4; the others' addresses are ignored), and each row is 16 contiguous bytes, 16-byte aligned,
// in shared memory. Thread t receives in register r[j] the elements (row t / 4, cols 2 * (t % 4)
// and 2 * (t % 4) + 1) of matrix j, the first in the low 16 bits; with .trans it receives the
// matrix's transpose: (rows 2 * (t % 4) and 2 * (t % 4) + 1, col t / 4).
// Each lane reads its row when it reaches the instruction (before the warp's barrier), so a lane
// that writes shared memory after its ldmatrix cannot change what another lane's ldmatrix gets,
// as on the GPU where the warp reads all rows at once.
inline void ldmatrix(unsigned* r, const void* row, int count, bool trans)
{
    uint32_t op = LdMatrix + 4 * count + 2 * trans;
    int lane = current->linear & 31;
    uint32_t mine[4];
    memset(mine, 0xff, sizeof mine);
    if (lane < 8 * count)
    {
        if (!aligned(row, 16)) fail("%s: the row address %p of lane %d is not 16-byte aligned", op_name(op), row, lane);
        else if (!in_shared(row, 16)) fail("%s: the row address %p of lane %d is not in shared memory", op_name(op), row, lane);
        else memcpy(mine, row, 16);
    }
    auto warp = exchange(op, mine, 4);
    auto element = [&](int matrix, int row_, int col) {
        uint32_t word = warp[8 * matrix + row_][1 + col / 2];
        return col & 1 ? word >> 16 : word & 0xffffu;
    };
    for (int j = 0; j < count; j++)
        r[j] = trans ? element(j, 2 * (lane & 3), lane >> 2) | element(j, 2 * (lane & 3) + 1, lane >> 2) << 16
                     : element(j, lane >> 2, 2 * (lane & 3)) | element(j, lane >> 2, 2 * (lane & 3) + 1) << 16;
}

// ---- cp.async.{ca,cg}.shared.global [dst], [src], cp-size, src-size; cp.async.commit_group;
// cp.async.wait_group N; cp.async.wait_all ("Data Movement and Conversion Instructions:
// cp.async" and the two after it). Per thread: copies issued since its last commit_group form
// its open group; commit_group closes it; wait_group N completes every committed group but the
// N most recent, and never the open one; wait_all is commit_group then wait_group 0.
// The emulator reads the source when the copy is issued (so a bad source faults in the issuing
// thread), fills the destination with 0xff bytes (NaN) at once, and writes the data only at the
// issuing thread's wait that covers the copy: a read of the destination before that wait (by any
// thread: other threads also need a barrier after the wait) gives NaN. Bytes from src-size up to
// cp-size are zero-filled. The addresses must be aligned to cp-size, the destination must be in
// shared memory and src-size in 0..cp-size. A thread that exits with copies outstanding leaves
// their destinations NaN (its state is dropped when the thread starts in the next block).
struct Copy
{
    char* destination;
    unsigned group;
    int bytes;
    unsigned char data[16];
};

inline std::vector<Copy> copies[MaxThreads];
inline unsigned committed[MaxThreads]; // commit_groups the thread has executed in this block

// Called by each thread's wrapper (nvrtc.cpp) before the kernel body: a new block's thread has
// no copies in flight.
inline void begin_thread()
{
    copies[current->linear].clear();
    committed[current->linear] = 0;
}

inline void cp_async(void* dst, const void* src, int cp_size, int src_size, const char* name)
{
    if (!aligned(dst, cp_size) || !aligned(src, cp_size))
        return fail("%s: the %s address %p is not %d-byte aligned", name, aligned(dst, cp_size) ? "source" : "destination", aligned(dst, cp_size) ? src : dst,
                    cp_size);
    if (!in_shared(dst, cp_size)) return fail("%s: the destination %p is not in shared memory", name, dst);
    if (src_size < 0 || src_size > cp_size) return fail("%s: src-size %d is not in 0..%d", name, src_size, cp_size);
    Copy c{static_cast<char*>(dst), committed[current->linear], cp_size, {}};
    if (src_size > 0) memcpy(c.data, src, src_size);
    memset(dst, 0xff, cp_size);
    copies[current->linear].push_back(c);
}

inline void cp_async_commit() { committed[current->linear]++; }

inline void cp_async_wait(int n)
{
    auto& mine = copies[current->linear];
    unsigned done = committed[current->linear];
    size_t kept = 0;
    for (Copy& c : mine)
        if (c.group + n < done) memcpy(c.destination, c.data, c.bytes); // in issue order
        else mine[kept++] = c;
    mine.resize(kept);
}

inline void cp_async_wait_all()
{
    cp_async_commit();
    cp_async_wait(0);
}

// ---- float2 / float4 loads and stores of mma.cuh's helpers: the GPU needs natural alignment. ----
template <class T>
inline void check_vector(const void* p, const char* what)
{
    if (!aligned(p, sizeof(T))) fail("%s at %p: not %d-byte aligned", what, p, static_cast<int>(sizeof(T)));
}
} // namespace emu::wm

// ---- The alignment sanitizer. nvrtc.cpp compiles every module with -fsanitize=alignment and
// links it without libubsan: these handlers (the ABI of GCC's and Clang's libubsan) make a
// misaligned typed access, such as a float4 load from a pointer that is only 4-byte aligned,
// fail the launch with the source line, instead of working silently as it does on x86 (a GPU
// faults: CUDA_ERROR_MISALIGNED_ADDRESS). ----
namespace emu::ubsan
{
struct Location
{
    const char* file;
    uint32_t line, column;
};
struct Type
{
    uint16_t kind, info;
    char name[1];
};
struct TypeMismatch
{
    Location location;
    const Type* type;
    unsigned char log_alignment, check_kind;
};

inline void report(TypeMismatch* data, uintptr_t pointer)
{
    static const char* const kinds[] = {"load of", "store to", "reference binding to", "member access within", "member call on", "constructor call on"};
    const char* kind = data->check_kind < 6 ? kinds[data->check_kind] : "access to";
    const char* file = data->location.file ? strrchr(data->location.file, '/') : nullptr;
    emu::wm::fail("misaligned address: %s %p for type %s, which requires %u-byte alignment (%s:%u:%u)", kind, reinterpret_cast<void*>(pointer),
                  data->type ? data->type->name : "?", 1u << data->log_alignment, file ? file + 1 : data->location.file ? data->location.file : "?",
                  data->location.line, data->location.column);
}

// The handler records the error and ends the thread there, as the GPU ends the kernel at the
// faulting access (going on would run the access itself, and an aligned SSE store faults as a
// SIGSEGV, which would be reported as an illegal address). The other threads run to the end of
// the pass; then the launch fails. Not inline: only instrumentation calls these, which does not
// make an inline definition be emitted; a module is one translation unit, so there is one
// definition. The _abort form is what -fno-sanitize-recover calls.
[[noreturn]] inline void end_thread()
{
    if (!emu::current) abort(); // not in a kernel thread: the emulator's own code, a bug
    emu::current->state = emu::Done;
    emu::exited[emu::current->linear >> 5]++;
    emu::pass_on(emu::current);
    __builtin_unreachable();
}
} // namespace emu::ubsan

extern "C" __attribute__((used, noreturn)) void __ubsan_handle_type_mismatch_v1(emu::ubsan::TypeMismatch* data, uintptr_t pointer)
{
    emu::ubsan::report(data, pointer);
    emu::ubsan::end_thread();
}
extern "C" __attribute__((used, noreturn)) void __ubsan_handle_type_mismatch_v1_abort(emu::ubsan::TypeMismatch* data, uintptr_t pointer)
{
    emu::ubsan::report(data, pointer);
    emu::ubsan::end_thread();
}

// emu_runtime.h — what a kernel file needs to compile and run as host C++ in the CUDA emulator
// (see README.md beside this file). The fake NVRTC builds one translation unit per kernel file:
// this header, the kernel file, and one exported wrapper per kernel. Everything here is inline,
// so each module carries its own scheduler and nothing is shared between modules.
//
// Semantics kept from the GPU: blocks run one after another; the threads of a block are fibers
// on one OS thread, switched only at __syncthreads and warp shuffles, so code between two sync
// points runs as if no other thread existed (which is all CUDA promises). Exited threads count as
// arrived at __syncthreads, as on Volta and later. A barrier that can never complete (a warp split
// between __syncthreads and a shuffle), or a full-mask shuffle naming an exited or missing lane,
// stops the launch with an error instead of hanging or returning made-up values. Each block
// starts with its shared memory filled with NaN bytes, and GHOSTNET_EMU_ORDER=reverse runs the
// fibers of a pass from the last thread to the first (random:<seed>: blocks, and the threads of
// every pass, in a seeded random order): a read of shared memory that a missing barrier leaves
// unwritten gives NaN in one order or another. Modules built with EMU_RACECHECK (the fake NVRTC
// under GHOSTNET_EMU_RACECHECK=1) also check every shared-memory access for races
// (emu_racecheck.h).
#pragma once
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <type_traits>
#include <utility>
#include <stdarg.h> // emu_warp_matrix.h's, here before __noinline__ is defined below
#include <vector>

#include "emu_order.h"

#if !defined(__x86_64__)
#error "the CUDA emulator's fiber switch is written for x86-64"
#endif

struct dim3
{
    unsigned x = 1, y = 1, z = 1;
};

namespace emu
{
enum State { Ready, AtBlockBarrier, AtWarpBarrier, Done };

struct Thread
{
    dim3 idx;
    int linear;
    int position; // in the order fibers run within a pass
    State state;
    void* sp;
    unsigned shuffles; // parity picks the exchange buffer
    unsigned mask;     // of the warp barrier it waits at
};

constexpr int MaxThreads = 1024;

inline Thread threads[MaxThreads];
inline int order[MaxThreads]; // order[position] = linear index; forward, reversed or shuffled (GHOSTNET_EMU_ORDER)
inline uint64_t exchange[2][MaxThreads]; // shuffle values; two buffers, so one barrier per shuffle suffices
inline int thread_count;
inline int exited[MaxThreads / 32]; // per warp, so a shuffle looks for exited lanes only when there are some
inline Thread* current;
inline void* scheduler_sp;
inline dim3 block_idx, block_dim, grid_dim;
inline void (*body)(void**);
inline void** args;
inline char* stacks; // the driver's: MaxThreads stacks of stack_bytes each
inline size_t stack_bytes;
inline char error[1024];

// The order fibers run in: GHOSTNET_EMU_ORDER (emu_order.h), read at each launch.
inline emu_order::Kind order_kind;
inline char order_text[48] = "forward";
inline uint64_t random_state; // random order: the generator, seeded per block
constexpr uint64_t MaxShuffledBlocks = 1 << 16;
inline uint32_t block_order[MaxShuffledBlocks]; // random order: the grid's blocks, shuffled (grids up to 65,536 blocks)
} // namespace emu

// Every __shared__ variable of the module lives in this section, so a block can start with all of
// its shared memory poisoned, as a GPU block starts with garbage. __shared__ is `static`; the fake
// NVRTC compiles with -fdata-sections and links every zero-initialised static variable of the
// kernel file (function-local, or `static` at file scope: sections .bss._ZZ* and .bss._ZL*) into
// emu_shared. So the runtime headers declare their own variables `inline`, never `static`. (A
// section attribute on __shared__ would not do: GCC ignores it in function templates such as
// block_sum<T>, and refuses to mix one inline function's static with another function's.)
extern "C" char __start_emu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_emu_shared[] __attribute__((weak, visibility("hidden")));

#include "emu_racecheck.h"

namespace emu
{
// Saves the callee-saved registers on the current stack, stores its pointer in *save and resumes
// the stack at `to` (which was saved the same way, or built by start_frame).
extern "C" void emu_switch(void** save, void* to);
asm(R"(
    .text
    .p2align 4
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");

// Hands the OS thread to the next ready thread of this pass, or back to the scheduler after the
// last one: one switch per yield.
inline void pass_on(Thread* me)
{
    for (int p = me->position + 1; p < thread_count; p++)
    {
        Thread* t = &threads[order[p]];
        if (t->state == Ready)
        {
            current = t;
            emu_switch(&me->sp, t->sp);
            return;
        }
    }
    emu_switch(&me->sp, scheduler_sp);
}

[[noreturn]] inline void fiber_main()
{
    body(args);
    current->state = Done;
    exited[current->linear >> 5]++;
    pass_on(current);
    __builtin_unreachable();
}

// A stack that emu_switch can resume: six zero registers, then fiber_main as the return address,
// aligned as if fiber_main had been called.
inline void* start_frame(char* top)
{
    auto* sp = reinterpret_cast<uintptr_t*>(top);
    *--sp = 0;
    *--sp = reinterpret_cast<uintptr_t>(&fiber_main);
    for (int i = 0; i < 6; i++) *--sp = 0;
    return sp;
}

inline void wait(State s)
{
    current->state = s;
    pass_on(current);
}

inline void sync_warp(unsigned mask)
{
    int base = current->linear & ~31;
    int lanes = thread_count - base < 32 ? thread_count - base : 32;
    if (lanes < 32 && (mask >> lanes) != 0 && error[0] == 0)
        snprintf(error, sizeof error, "warp shuffle with mask %08x in thread %d: the block's last warp has only %d lanes", mask, current->linear, lanes);
    if (exited[base >> 5] > 0)
        for (int lane = 0; lane < lanes; lane++)
            if ((mask >> lane & 1u) && threads[base + lane].state == Done && error[0] == 0)
                snprintf(error, sizeof error, "warp shuffle with mask %08x in thread %d: lane %d has already exited", mask, current->linear, lane);
    current->mask = mask;
    wait(AtWarpBarrier);
}

// SplitMix64: the random order's generator and mixer.
inline uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

inline uint64_t next_random() { return mix(random_state += 0x9E3779B97F4A7C15ull); }

// Random order: a new permutation of the block's threads for the next pass.
inline void shuffle_order()
{
    for (int i = thread_count - 1; i > 0; i--)
    {
        int j = static_cast<int>(next_random() % static_cast<uint64_t>(i + 1));
        std::swap(order[i], order[j]);
    }
    for (int p = 0; p < thread_count; p++) threads[order[p]].position = p;
}

// Runs every thread of the current block to completion. False (with `error` set) on a barrier
// that cannot complete, or a race (racecheck modules).
inline bool run_block()
{
    if (__start_emu_shared != __stop_emu_shared) memset(__start_emu_shared, 0xFF, __stop_emu_shared - __start_emu_shared);
    race::on_block_start();
    for (int t = 0; t < thread_count; t++)
    {
        threads[t].state = Ready;
        threads[t].shuffles = 0;
        exited[t >> 5] = 0;
        // Tops staggered by t * 1088 bytes: equally spaced tops would all fall in one cache set.
        threads[t].sp = start_frame(stacks + (t + 1) * stack_bytes - (t * 1088) % (stack_bytes / 2));
        if (order_kind == emu_order::Random) order[t] = t; // each block's orders depend on its seed alone
    }
    for (;;)
    {
        if (order_kind == emu_order::Random) shuffle_order();
        for (int p = 0; p < thread_count; p++)
            if (threads[order[p]].state == Ready)
            {
                current = &threads[order[p]];
                emu_switch(&scheduler_sp, current->sp); // back when the pass has visited every ready thread
                break;
            }
        if (error[0]) return false;
        int done = 0, at_block = 0;
        bool released = false;
        for (int base = 0; base < thread_count; base += 32)
        {
            int live = 0, at_warp = 0;
            for (int t = base; t < base + 32 && t < thread_count; t++)
            {
                State s = threads[t].state;
                done += s == Done;
                at_block += s == AtBlockBarrier;
                live += s != Done;
                at_warp += s == AtWarpBarrier;
            }
            if (live > 0 && at_warp == live)
            {
                // A lane a waiting lane's mask names may have exited after the others arrived (a
                // random order can run it last): the shuffle cannot complete either way.
                for (int t = base; t < base + 32 && t < thread_count && error[0] == 0; t++)
                    if (threads[t].state == AtWarpBarrier)
                        for (int lane = 0; lane < 32 && base + lane < thread_count; lane++)
                            if ((threads[t].mask >> lane & 1u) && threads[base + lane].state == Done && error[0] == 0)
                                snprintf(error, sizeof error, "warp shuffle with mask %08x in thread %d: lane %d has already exited", threads[t].mask, t, lane);
                if (error[0]) return false;
                race::on_warp_release(base, thread_count - base < 32 ? thread_count - base : 32);
                for (int t = base; t < base + 32 && t < thread_count; t++)
                    if (threads[t].state == AtWarpBarrier) threads[t].state = Ready;
                released = true;
            }
        }
        if (done == thread_count) return true;
        if (released) continue;
        if (at_block == thread_count - done)
        {
            race::on_block_barrier();
            for (int t = 0; t < thread_count; t++)
                if (threads[t].state == AtBlockBarrier) threads[t].state = Ready;
            continue;
        }
        snprintf(error, sizeof error, "block (%u, %u, %u): barrier divergence, %d threads at __syncthreads, %d at a warp shuffle, %d exited",
                 block_idx.x, block_idx.y, block_idx.z, at_block, thread_count - done - at_block, done);
        return false;
    }
}

template <class... A, size_t... I>
void call(void (*kernel)(A...), void** a, std::index_sequence<I...>)
{
    kernel(*static_cast<std::remove_reference_t<A>*>(a[I])...);
}

// Unpacks cuLaunchKernel's array of argument pointers into a typed call.
template <class... A>
void invoke(void (*kernel)(A...), void** a)
{
    call(kernel, a, std::index_sequence_for<A...>{});
}

// The byte size of each of a kernel's parameters, for stream capture: cuLaunchKernel copies the
// argument values into the graph node (as the driver does), since the caller's go out of scope.
template <class... A>
int param_sizes(void (*)(A...), unsigned* sizes, int max)
{
    const unsigned each[] = {0u, static_cast<unsigned>(sizeof(std::remove_reference_t<A>))...};
    int count = static_cast<int>(sizeof...(A));
    for (int i = 0; i < count && i < max; i++) sizes[i] = each[i + 1];
    return count;
}
} // namespace emu

// The module's entry point: 0, or 719 (launch failed) with the reason in emu_error(). The
// driver lends the fiber stacks (one per thread of a block, 16-byte aligned).
extern "C" __attribute__((visibility("default"))) int emu_launch(void (*wrapper)(void**), const unsigned* grid, const unsigned* block, void** args,
                                                                  char* fiber_stacks, size_t bytes_per_stack)
{
    using namespace emu;
    error[0] = 0;
    stacks = fiber_stacks;
    stack_bytes = bytes_per_stack;
    body = wrapper;
    emu::args = args;
    block_dim = {block[0], block[1], block[2]};
    grid_dim = {grid[0], grid[1], grid[2]};
    thread_count = static_cast<int>(block[0] * block[1] * block[2]);
#ifdef EMU_ORDER
    const char* requested = EMU_ORDER; // a program built with -DEMU_ORDER="random:7" keeps its order (the emulator's own tests)
#else
    const char* requested = getenv("GHOSTNET_EMU_ORDER");
#endif
    emu_order::Order o = emu_order::parse(requested);
    if (o.kind == emu_order::Invalid)
    {
        snprintf(error, sizeof error, "GHOSTNET_EMU_ORDER=%s: expected forward, reverse, random or random:<seed>", requested);
        return 719;
    }
    order_kind = o.kind;
    memcpy(order_text, o.text, sizeof order_text);
    bool reverse = order_kind == emu_order::Reverse;
    int t = 0;
    for (unsigned z = 0; z < block[2]; z++)
        for (unsigned y = 0; y < block[1]; y++)
            for (unsigned x = 0; x < block[0]; x++, t++)
            {
                int position = reverse ? thread_count - 1 - t : t;
                threads[t] = {{x, y, z}, t, position, Ready, nullptr, 0, 0};
                order[position] = t;
            }
    // Blocks run in order, or shuffled (grids of more than 65,536 blocks: block (a * i + c) mod
    // count at step i, a coprime to count), each block with its own thread orders. Seeded by the
    // seed, the kernel's name and the launch shape, so one launch replays alike whatever ran before.
    uint64_t count = static_cast<uint64_t>(grid[0]) * grid[1] * grid[2], a = 1, c = 0, launch_seed = 0;
    if (order_kind == emu_order::Random)
    {
        Dl_info info{};
        uint64_t name = 1469598103934665603ull; // FNV-1a of the wrapper's exported name
        if (dladdr(reinterpret_cast<void*>(wrapper), &info) && info.dli_sname)
            for (const char* n = info.dli_sname; *n; n++) name = (name ^ static_cast<unsigned char>(*n)) * 1099511628211ull;
        launch_seed = mix(mix(mix(o.seed) ^ name) ^ (count << 20 ^ static_cast<uint64_t>(thread_count)));
        random_state = launch_seed;
        for (int tries = 0; tries < 64 && count > 2; tries++)
        {
            uint64_t candidate = 1 + next_random() % (count - 1), g = candidate, h = count;
            while (h) g %= h, std::swap(g, h); // g = gcd(candidate, count)
            if (g == 1)
            {
                a = candidate;
                break;
            }
        }
        c = count > 1 ? next_random() % count : 0;
        if (count <= MaxShuffledBlocks)
        {
            for (uint32_t i = 0; i < count; i++) block_order[i] = i;
            for (uint64_t i = count - 1; i > 0; i--) std::swap(block_order[i], block_order[next_random() % (i + 1)]);
        }
    }
    bool shuffled = order_kind == emu_order::Random && count <= MaxShuffledBlocks;
    for (uint64_t i = 0; i < count; i++)
    {
        uint64_t b = shuffled ? block_order[i]
                     : order_kind == emu_order::Random ? static_cast<uint64_t>((static_cast<unsigned __int128>(a) * i + c) % count)
                                                        : i;
        block_idx = {static_cast<unsigned>(b % grid[0]), static_cast<unsigned>(b / grid[0] % grid[1]), static_cast<unsigned>(b / grid[0] / grid[1])};
        if (order_kind == emu_order::Random) random_state = mix(launch_seed ^ mix(b + 1));
        if (!run_block())
        {
            size_t n = strlen(error);
            snprintf(error + n, sizeof error - n, " [GHOSTNET_EMU_ORDER=%s]", order_text);
            return 719;
        }
    }
    return 0;
}

extern "C" __attribute__((visibility("default"))) const char* emu_error() { return emu::error; }

// Where a fault happened, for the driver's SIGSEGV report.
extern "C" __attribute__((visibility("default"))) void emu_where(char* text, int length)
{
    using namespace emu;
    snprintf(text, length, "block (%u, %u, %u), thread (%u, %u, %u)", block_idx.x, block_idx.y, block_idx.z,
             current ? current->idx.x : 0, current ? current->idx.y : 0, current ? current->idx.z : 0);
}

// ---- The device side of CUDA C++ that the kernels use. ----
#define threadIdx (emu::current->idx)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline)) // after every standard header (libstdc++ spells __attribute__((__noinline__)))
#define __shared__ static
#define __launch_bounds__(...)

inline void __syncthreads() { emu::wait(emu::AtBlockBarrier); }

namespace emu
{
// One warp shuffle: every lane of the warp publishes `v`, then reads the value of the lane that
// `source(lane, segment)` names (segment: the first lane of the caller's `width`-lane group), or
// keeps its own where that is -1, as the PTX ISA's shfl.sync does for a source out of range.
template <class T, class Source>
T shuffle(unsigned mask, T v, int width, Source source)
{
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a value wider than 64 bits");
    if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    {
        if (error[0] == 0) snprintf(error, sizeof error, "warp shuffle with width %d: not a power of two in 1..32", width);
        width = 32;
    }
    int me = current->linear, lane = me & 31, base = me & ~31;
    // A lane writes this buffer again two shuffles later, after the next barrier, which every
    // lane reaches only once it has read this shuffle's value.
    uint64_t* slots = exchange[current->shuffles++ & 1];
    memcpy(&slots[me], &v, sizeof(T));
    sync_warp(mask);
    T r = v;
    int from = source(lane, lane & ~(width - 1));
    if (from >= 0 && from < 32 && base + from < thread_count) memcpy(&r, &slots[base + from], sizeof(T));
    return r;
}
} // namespace emu

// The CUDA shuffles, each from the PTX ISA's definition of shfl.sync (idx, up, down, bfly).
template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32)
{
    return emu::shuffle(mask, v, width, [&](int, int segment) { return segment + (src_lane & (width - 1)); });
}

template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    return emu::shuffle(mask, v, width, [&](int lane, int segment) { return lane - static_cast<int>(delta) >= segment ? lane - static_cast<int>(delta) : -1; });
}

template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    return emu::shuffle(mask, v, width, [&](int lane, int segment) { return lane + static_cast<int>(delta) < segment + width ? lane + static_cast<int>(delta) : -1; });
}

// A lane may read from its own or an earlier group of `width` lanes; a later group gives its own value.
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    return emu::shuffle(mask, v, width, [&](int lane, int segment) { return (lane ^ lane_mask) < segment + width ? lane ^ lane_mask : -1; });
}

// A barrier for the warp's lanes: with fibers switched only at barriers, it orders their shared-memory accesses.
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::sync_warp(mask); }

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __int_as_float(int i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}
inline int __float_as_int(float f)
{
    int i;
    memcpy(&i, &f, sizeof i);
    return i;
}
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
// Rounded as written, never fused into a multiply-add: g++ (-march=native) contracts a * b + c as
// NVRTC does, so the empty asm makes the product a value of its own, as the intrinsic promises.
inline float __fmul_rn(float a, float b)
{
    float r = a * b;
    __asm__("" : "+x"(r));
    return r;
}
inline float __fadd_rn(float a, float b)
{
    float r = a + b;
    __asm__("" : "+x"(r));
    return r;
}
// Blocks run one after another, so every write of an earlier block is visible: a fence has nothing to order.
inline void __threadfence() {}

// A trap fails the launch (the driver's CUDA_ERROR_LAUNCH_FAILED, 719, at the next wait). The
// thread then returns instead of stopping: this project's traps (entry points one build leaves
// empty, gemm.cu's FP32_ONLY and BF16_ONLY) are the last statement of their kernel.
inline void __trap()
{
    if (emu::error[0] == 0) snprintf(emu::error, sizeof emu::error, "__trap() in block (%u, %u, %u)", blockIdx.x, blockIdx.y, blockIdx.z);
}

// Fibers switch only at barriers, so a read-modify-write is atomic here. Racecheck records it as
// an atomic update, which races with plain accesses but not with other atomics.
template <class T>
EMU_UNINSTRUMENTED_ATOMIC T atomicAdd(T* p, T v)
{
#if EMU_RACECHECK
    emu::race::access(p, sizeof(T), emu::race::Atomic);
#endif
    T old = *p;
    *p = old + v;
    return old;
}
#include "emu_warp_matrix.h"

// emu_racecheck.h — the emulator's shared-memory race detector, in the spirit of
// `compute-sanitizer --tool racecheck` (see README.md beside this file). Included by
// emu_runtime.h; active when the fake NVRTC builds a module with -DEMU_RACECHECK=1, which it does
// with g++ -fsanitize=thread and without libtsan: the instrumentation calls the __tsan_* hooks
// defined here for every load and store the compiler could not prove thread-private, and the
// hooks track only addresses inside the emu_shared section (every __shared__ variable).
//
// The model, per 4-byte word of shared memory and per block: the last writer, and the readers
// and atomic updaters since then, each with the point in its thread's history where it accessed
// the word. Two accesses by different threads, at least one a write (an atomic counts as a write,
// but two atomics never conflict), race unless a barrier orders them:
//  - __syncthreads orders everything before it against everything after (one block-wide epoch
//    counter: an access of an older epoch is ordered);
//  - __syncwarp(mask) and the warp shuffles (mask) order the accesses of the lanes that took part
//    with the same mask, and nothing else: a vector clock per lane over the lanes of its warp,
//    joined within each group of lanes released together.
// Reads of one word since its last write are kept compactly (which warps, which lanes of the
// first warp, the newest stamp and the newest stamp of another lane), which is exact when the
// warp's barriers name all its lanes and can only over-report with partial masks.
// The first race found stops the launch (error 719, the message in emu_error()).
#pragma once

#ifndef EMU_RACECHECK
#define EMU_RACECHECK 0
#endif

namespace emu
{
// The variable names of the emu_shared section, for reports: nvrtc.cpp links a table of
// (offset from the section's start, bytes, name) into racecheck modules (read from `nm`).
struct SharedName
{
    unsigned offset, bytes;
    const char* name;
};
} // namespace emu
extern "C" const emu::SharedName emu_shared_names[] __attribute__((weak, visibility("hidden")));
extern "C" const int emu_shared_name_count __attribute__((weak, visibility("hidden")));

namespace emu::race
{
#if EMU_RACECHECK
#define EMU_UNINSTRUMENTED __attribute__((no_sanitize_thread))

enum Kind { Read, Write, Atomic };

// Accesses of one kind since the word's last write, compressed: exact for other warps (any
// access of another warp in the same epoch races), per lane for the first warp seen.
struct Set
{
    uint32_t warps;  // bit per warp with such an access
    uint32_t lanes;  // lanes of warp w0 with such an access
    uint32_t s1, s2; // newest stamp (of lane u1), and an upper bound of the stamps of the other lanes
    uint16_t tmin, tmax; // lowest and highest thread: one of them is outside any one warp that is not the only one
    uint8_t w0, u1;
};

struct Cell
{
    uint32_t epoch;  // the block epoch of what follows; an older one means nothing recorded
    uint16_t writer; // thread + 1 of the last plain write, 0 for none
    uint8_t split;   // this epoch saw a narrower access: the word's bytes are tracked apart, in byte_cells
    uint8_t unused;
    uint32_t wstamp; // the writer's warp stamp at the write
    Set reads, atomics;
};

constexpr int Warps = MaxThreads / 32;
inline Cell* cells;      // one per 4-byte word of the emu_shared section
inline Cell* byte_cells; // four per word, for words accessed a byte or a half at a time (__half, char)
inline size_t cell_count;
inline uint32_t epoch = 1;    // +1 at each block's start and at each __syncthreads
inline uint32_t stamp[Warps]; // per warp: warp barriers released in this epoch
// vc[w][l][u]: lane l of warp w has synchronised with lane u's history up to u's stamp vc - 1.
inline uint32_t vc[Warps][32][32];
inline uint32_t vc_epoch[Warps]; // the epoch stamp and vc of a warp belong to (reset lazily)

EMU_UNINSTRUMENTED inline void refresh(int w)
{
    if (vc_epoch[w] == epoch) return;
    vc_epoch[w] = epoch;
    stamp[w] = 0;
    memset(vc[w], 0, sizeof vc[w]);
}

EMU_UNINSTRUMENTED inline void next_epoch()
{
    if (++epoch == 0) // after 2^32 barriers: forget everything rather than confuse old epochs with new
    {
        if (cells) memset(cells, 0, cell_count * sizeof(Cell)); // byte cells count only under a word cell of this epoch
        memset(vc_epoch, 0, sizeof vc_epoch);
        epoch = 1;
    }
}

// A block starts: nothing it does is ordered with the previous block's accesses, and nothing
// needs to be (blocks do not share shared memory).
EMU_UNINSTRUMENTED inline void on_block_start()
{
    size_t words = (static_cast<size_t>(__stop_emu_shared - __start_emu_shared) + 3) / 4;
    if (words > cell_count)
    {
        free(cells);
        free(byte_cells);
        cells = static_cast<Cell*>(calloc(words, sizeof(Cell)));
        byte_cells = static_cast<Cell*>(calloc(4 * words, sizeof(Cell))); // untouched pages cost nothing
        cell_count = cells && byte_cells ? words : 0;
    }
    next_epoch();
}

EMU_UNINSTRUMENTED inline void on_block_barrier() { next_epoch(); }

// The warp barrier of the lanes of warp `base / 32` that wait at one (every live lane does): each
// group of lanes that named the same mask synchronises within itself.
EMU_UNINSTRUMENTED inline void on_warp_release(int base, int lanes)
{
    int w = base >> 5;
    refresh(w);
    uint32_t waiting = 0;
    for (int l = 0; l < lanes; l++)
        if (threads[base + l].state == AtWarpBarrier) waiting |= 1u << l;
    uint32_t released = ++stamp[w];
    while (waiting)
    {
        unsigned mask = threads[base + __builtin_ctz(waiting)].mask;
        uint32_t group = 0;
        for (uint32_t rest = waiting; rest; rest &= rest - 1)
        {
            int l = __builtin_ctz(rest);
            if (threads[base + l].mask == mask) group |= 1u << l;
        }
        waiting &= ~group;
        uint32_t joined[32] = {};
        for (uint32_t g = group; g; g &= g - 1)
            for (int u = 0; u < 32; u++) joined[u] = joined[u] > vc[w][__builtin_ctz(g)][u] ? joined[u] : vc[w][__builtin_ctz(g)][u];
        for (uint32_t g = group; g; g &= g - 1) joined[__builtin_ctz(g)] = released;
        for (uint32_t g = group; g; g &= g - 1) memcpy(vc[w][__builtin_ctz(g)], joined, sizeof joined);
    }
}

// Whether thread u's access at warp stamp s (this epoch) is ordered before thread t's next one.
EMU_UNINSTRUMENTED inline bool ordered(int u, uint32_t s, int t) { return (u >> 5) == (t >> 5) && vc[t >> 5][t & 31][u & 31] > s; }

// A thread of `s` whose access is not ordered before thread t's, or -1.
EMU_UNINSTRUMENTED inline int conflict(const Set& s, int t)
{
    if (!s.warps) return -1;
    int w = t >> 5;
    if (s.warps & ~(1u << w)) return (s.tmin >> 5) != w ? s.tmin : s.tmax;
    for (uint32_t others = s.lanes & ~(1u << (t & 31)); others; others &= others - 1)
    {
        int u = __builtin_ctz(others);
        if (vc[w][t & 31][u] <= (u == s.u1 ? s.s1 : s.s2)) return w * 32 + u;
    }
    return -1;
}

EMU_UNINSTRUMENTED inline void add(Set& s, int t, uint32_t now)
{
    int w = t >> 5, l = t & 31;
    if (!s.warps)
    {
        s = {1u << w, 1u << l, now, 0, static_cast<uint16_t>(t), static_cast<uint16_t>(t), static_cast<uint8_t>(w), static_cast<uint8_t>(l)};
        return;
    }
    s.warps |= 1u << w;
    if (t < s.tmin) s.tmin = static_cast<uint16_t>(t);
    if (t > s.tmax) s.tmax = static_cast<uint16_t>(t);
    if (w != s.w0) return;
    s.lanes |= 1u << l;
    if (l != s.u1) s.s2 = s.s1, s.u1 = static_cast<uint8_t>(l); // stamps only grow: the old newest bounds every other lane
    s.s1 = now;
}

__attribute__((noinline, cold)) EMU_UNINSTRUMENTED inline void report(const char* hazard, size_t offset, int t, const char* did, int u, const char* done)
{
    char where[200] = "";
    if (&emu_shared_name_count && emu_shared_names)
        for (int i = 0; i < emu_shared_name_count; i++)
        {
            const SharedName& n = emu_shared_names[i];
            if (offset >= n.offset && offset < static_cast<size_t>(n.offset) + n.bytes)
            {
                snprintf(where, sizeof where, " (%s + %zu, of %u bytes)", n.name, offset - n.offset, n.bytes);
                break;
            }
        }
    const dim3 a = threads[t].idx, b = threads[u].idx;
    snprintf(error, sizeof error,
             "racecheck: %s hazard at shared byte %zu%s in block (%u, %u, %u): thread (%u, %u, %u) %s it after thread (%u, %u, %u) %s it, "
             "with no barrier that orders the two (__syncthreads, or a __syncwarp or shuffle both took part in)",
             hazard, offset, where, block_idx.x, block_idx.y, block_idx.z, a.x, a.y, a.z, did, b.x, b.y, b.z, done);
}

// An access to shared memory at `offset` from the section's start.
// Checks thread t's access of the word or byte `c` (at shared byte `at`) against what `c` recorded,
// and records it. False when it races (reported).
EMU_UNINSTRUMENTED inline bool check(Cell& c, size_t at, int t, uint32_t now, Kind kind)
{
    int writer = c.writer - 1;
    bool write_races = writer >= 0 && writer != t && !ordered(writer, c.wstamp, t);
    int u;
    switch (kind)
    {
    case Read:
        if (write_races) return report("read-after-write", at, t, "reads", writer, "wrote"), false;
        if ((u = conflict(c.atomics, t)) >= 0) return report("read-after-write", at, t, "reads", u, "updated (atomic)"), false;
        add(c.reads, t, now);
        break;
    case Write:
        if (write_races) return report("write-after-write", at, t, "writes", writer, "wrote"), false;
        if ((u = conflict(c.reads, t)) >= 0) return report("write-after-read", at, t, "writes", u, "read"), false;
        if ((u = conflict(c.atomics, t)) >= 0) return report("write-after-write", at, t, "writes", u, "updated (atomic)"), false;
        // Every earlier access is ordered before this write, so before whatever this write is ordered before.
        c.writer = static_cast<uint16_t>(t + 1), c.wstamp = now, c.reads = {}, c.atomics = {};
        break;
    case Atomic:
        if (write_races) return report("read-after-write", at, t, "updates (atomic)", writer, "wrote"), false;
        if ((u = conflict(c.reads, t)) >= 0) return report("write-after-read", at, t, "updates (atomic)", u, "read"), false;
        add(c.atomics, t, now);
        c.writer = 0, c.reads = {};
        break;
    }
    return true;
}

// An access to shared memory at `offset` from the section's start.
__attribute__((noinline)) EMU_UNINSTRUMENTED inline void track(size_t offset, size_t size, Kind kind)
{
    Thread* me = current;
    if (!me || error[0]) return; // outside a launch, or a race already stops this one
    int t = me->linear, w = t >> 5;
    refresh(w);
    uint32_t now = stamp[w];
    size_t end = offset + size; // bytes [offset, end)
    for (size_t i = offset / 4; i * 4 < end && i < cell_count; i++)
    {
        Cell& c = cells[i];
        if (c.epoch != epoch) c = Cell{epoch, 0, 0, 0, 0, {}, {}};
        size_t lo = offset > i * 4 ? offset : i * 4, hi = end < i * 4 + 4 ? end : i * 4 + 4;
        if (!c.split && hi - lo == 4)
        {
            if (!check(c, lo, t, now, kind)) return;
            continue;
        }
        // Part of a word: from now until the next barrier its bytes are tracked apart, each
        // starting from what the word had recorded.
        Cell* b = byte_cells + 4 * i;
        if (!c.split)
        {
            for (int k = 0; k < 4; k++) b[k] = c;
            c.split = 1;
        }
        for (size_t at = lo; at < hi; at++)
            if (!check(b[at - i * 4], at, t, now, kind)) return;
    }
}

// Every instrumented load and store comes here; most are not to shared memory.
__attribute__((always_inline)) EMU_UNINSTRUMENTED inline void access(const void* p, size_t size, Kind kind)
{
    size_t offset = static_cast<size_t>(static_cast<const char*>(p) - __start_emu_shared);
    if (__builtin_expect(offset < static_cast<size_t>(__stop_emu_shared - __start_emu_shared) && size > 0, 0)) track(offset, size, kind);
}
#define EMU_UNINSTRUMENTED_ATOMIC EMU_UNINSTRUMENTED
#else
#define EMU_UNINSTRUMENTED_ATOMIC
inline void on_block_start() {}
inline void on_block_barrier() {}
inline void on_warp_release(int, int) {}
#endif
} // namespace emu::race

#if EMU_RACECHECK
// The entry points of GCC's and Clang's -fsanitize=thread instrumentation (libtsan's interface),
// which the module defines itself instead of linking libtsan. Plain loads and stores are checked;
// atomic builtins are performed (uninstrumented) and recorded as atomic updates.
#define EMU_TSAN extern "C" __attribute__((visibility("hidden"), no_sanitize_thread))
EMU_TSAN void __tsan_init() {}
EMU_TSAN void __tsan_func_entry(void*) {}
EMU_TSAN void __tsan_func_exit() {}
EMU_TSAN void __tsan_vptr_update(void**, void*) {}
EMU_TSAN void __tsan_vptr_read(void**) {}
#define EMU_TSAN_ACCESS(n)                                                                                      \
    EMU_TSAN void __tsan_read##n(void* p) { emu::race::access(p, n, emu::race::Read); }                         \
    EMU_TSAN void __tsan_write##n(void* p) { emu::race::access(p, n, emu::race::Write); }                       \
    EMU_TSAN void __tsan_unaligned_read##n(void* p) { emu::race::access(p, n, emu::race::Read); }               \
    EMU_TSAN void __tsan_unaligned_write##n(void* p) { emu::race::access(p, n, emu::race::Write); }             \
    EMU_TSAN void __tsan_volatile_read##n(void* p) { emu::race::access(p, n, emu::race::Read); }                \
    EMU_TSAN void __tsan_volatile_write##n(void* p) { emu::race::access(p, n, emu::race::Write); }              \
    EMU_TSAN void __tsan_unaligned_volatile_read##n(void* p) { emu::race::access(p, n, emu::race::Read); }      \
    EMU_TSAN void __tsan_unaligned_volatile_write##n(void* p) { emu::race::access(p, n, emu::race::Write); }
EMU_TSAN_ACCESS(1)
EMU_TSAN_ACCESS(2)
EMU_TSAN_ACCESS(4)
EMU_TSAN_ACCESS(8)
EMU_TSAN_ACCESS(16)
#undef EMU_TSAN_ACCESS
EMU_TSAN void __tsan_read_range(void* p, unsigned long n) { emu::race::access(p, n, emu::race::Read); }
EMU_TSAN void __tsan_write_range(void* p, unsigned long n) { emu::race::access(p, n, emu::race::Write); }
EMU_TSAN void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
EMU_TSAN void __tsan_atomic_signal_fence(int) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
// Memory orders are ignored: a launch runs on one OS thread, so sequential consistency is free.
#define EMU_TSAN_ATOMIC(bits, T)                                                                                                   \
    EMU_TSAN T __tsan_atomic##bits##_load(const volatile T* a, int)                                                                \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                                                               \
    }                                                                                                                              \
    EMU_TSAN void __tsan_atomic##bits##_store(volatile T* a, T v, int)                                                             \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                                                                  \
    }                                                                                                                              \
    EMU_TSAN T __tsan_atomic##bits##_exchange(volatile T* a, T v, int)                                                             \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                                                        \
    }                                                                                                                              \
    EMU_TSAN T __tsan_atomic##bits##_fetch_add(volatile T* a, T v, int)                                                            \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);                                                                         \
    }                                                                                                                              \
    EMU_TSAN T __tsan_atomic##bits##_fetch_sub(volatile T* a, T v, int)                                                            \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST);                                                                         \
    }                                                                                                                              \
    EMU_TSAN T __tsan_atomic##bits##_fetch_and(volatile T* a, T v, int)                                                            \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST);                                                                         \
    }                                                                                                                              \
    EMU_TSAN T __tsan_atomic##bits##_fetch_or(volatile T* a, T v, int)                                                             \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST);                                                                          \
    }                                                                                                                              \
    EMU_TSAN T __tsan_atomic##bits##_fetch_xor(volatile T* a, T v, int)                                                            \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST);                                                                         \
    }                                                                                                                              \
    EMU_TSAN T __tsan_atomic##bits##_fetch_nand(volatile T* a, T v, int)                                                           \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        return __atomic_fetch_nand(a, v, __ATOMIC_SEQ_CST);                                                                        \
    }                                                                                                                              \
    EMU_TSAN int __tsan_atomic##bits##_compare_exchange_strong(volatile T* a, T* expected, T v, int, int)                          \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        return __atomic_compare_exchange_n(a, expected, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                             \
    }                                                                                                                              \
    EMU_TSAN int __tsan_atomic##bits##_compare_exchange_weak(volatile T* a, T* expected, T v, int, int)                            \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        return __atomic_compare_exchange_n(a, expected, v, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                              \
    }                                                                                                                              \
    EMU_TSAN T __tsan_atomic##bits##_compare_exchange_val(volatile T* a, T expected, T v, int, int)                                \
    {                                                                                                                              \
        emu::race::access(const_cast<const T*>(a), sizeof(T), emu::race::Atomic);                                                  \
        __atomic_compare_exchange_n(a, &expected, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                                   \
        return expected;                                                                                                           \
    }
EMU_TSAN_ATOMIC(8, unsigned char)
EMU_TSAN_ATOMIC(16, unsigned short)
EMU_TSAN_ATOMIC(32, unsigned int)
EMU_TSAN_ATOMIC(64, unsigned long long)
#undef EMU_TSAN_ATOMIC
#endif

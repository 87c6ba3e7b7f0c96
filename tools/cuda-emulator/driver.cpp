// driver.cpp — libcuda.so.1 of the CUDA emulator: the driver API entry points GhostNet.Cuda binds,
// over host memory. "Modules" are the shared objects the fake NVRTC (nvrtc.cpp) builds. Work on a
// stream (launches, memsets, copies, graph replays, waits for another stream's events) is queued
// and runs, in order, only when the host waits for it or another stream's wait needs it, so a
// missing wait reads stale memory; on the legacy stream (null) a launch runs before it returns.
// Stream capture records a capturing stream's launches and memsets into a graph (with the
// arguments' values, as the driver copies them) that cuGraphLaunch replays in order; what a GPU's
// capture refuses (a host copy, a synchronisation of the stream or of the context) invalidates
// the capture here too. Device memory is poisoned with NaN bytes, 256-byte aligned as cuMemAlloc's is, and ends
// within 255 bytes of a PROT_NONE page, so a kernel that reads unwritten memory produces NaN and
// one that runs off the end of a buffer faults (past the slack) or spoils the slack's canary
// (checked after every launch); either becomes CUDA_ERROR_ILLEGAL_ADDRESS with the kernel printed.
#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "image_format.h"

#define EXPORT extern "C" __attribute__((visibility("default")))

namespace
{
enum : int
{
    Success = 0,
    InvalidValue = 1,
    OutOfMemory = 2,
    InvalidDevice = 101,
    InvalidImage = 200,
    InvalidContext = 201,
    InvalidHandle = 400,
    NotFound = 500,
    NotReady = 600,
    IllegalAddress = 700,
    LaunchFailed = 719,
    IllegalState = 401, // CUDA_ERROR_ILLEGAL_STATE: here, the host wrote memory a queued copy reads
    NotSupported = 801,
    CaptureUnsupported = 900, // CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
    CaptureInvalidated = 901, // CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
};

constexpr uint64_t TotalMemory = 16ull << 30;
constexpr size_t Page = 4096;
constexpr int MaxThreads = 1024;
constexpr size_t StackBytes = 64 * 1024;
constexpr size_t Alignment = 256; // what cuMemAlloc guarantees, so float4 and cp.async 16 data is aligned
constexpr unsigned char Canary = 0xFF; // the slack after a buffer: NaN when read, checked after each launch

struct Allocation
{
    void* base;
    size_t mapped, bytes, slack; // slack: the bytes between the buffer's end and the guard page
};

struct Module
{
    void* handle;
    int (*launch)(void (*)(void**), const unsigned*, const unsigned*, void**, char*, size_t);
    const char* (*error)();
    void (*where)(char*, int);
};

struct Function
{
    Module* module;
    void (*wrapper)(void**);
    int (*params)(unsigned*, int); // its parameters' sizes (nvrtc.cpp's emu_params_), for capture
    std::string name;
};
// A captured graph: launches (arguments copied) and memsets, replayed in the order captured.
struct Node
{
    Function* function; // null: a memset of `count` words of `value` at `destination`
    unsigned grid[3], block[3], shared;
    std::vector<std::vector<char>> args;
    uint64_t destination;
    unsigned value;
    size_t count;
};
struct Graph
{
    std::vector<Node> nodes;
};
// Work queued on a stream, run when the host waits for it: a launch or a memset (a graph node,
// the launch's arguments copied as the driver copies them), a graph's nodes, a copy between the
// device and the host, or a wait for another stream to reach one of its points.
struct Stream;
struct Op
{
    enum Kind
    {
        Run,     // node
        Replay,  // nodes
        HtoD,    // device <- from (page-locked: read when the copy runs; bytes: what it held when queued) or bytes (pageable)
        DtoH,    // host <- device, count bytes
        Wait,    // stream's op number upto has run
    } kind = Run;
    Node node{};
    std::vector<Node> nodes;
    uint64_t device = 0;
    const char* from = nullptr;
    char* host = nullptr;
    std::vector<char> bytes;
    size_t count = 0;
    Stream* stream = nullptr;
    uint64_t stream_id = 0; // the stream's number: its address may be reused once it is destroyed
    uint64_t upto = 0;
};
// A stream is a capture state: not capturing (graph null), capturing, or capturing but invalidated
// by a call capture refuses (cuStreamEndCapture then fails and gives no graph); and its queue:
// ops numbered from 1, `done` of the `queued` run so far.
struct Stream
{
    Graph* graph = nullptr;
    bool invalidated = false;
    std::deque<Op> pending;
    uint64_t queued = 0, done = 0;
    uint64_t id = 0; // unique for the process: events and waits name a stream by it
};
// An event is the time it was recorded and the op number its stream had queued then; `asked`
// once cuEventQuery has found it pending (the next query runs the work, so a host that polls
// does not spin forever on an emulator that runs nothing on its own).
struct Event
{
    double ms = 0;
    Stream* stream = nullptr;
    uint64_t stream_id = 0;
    uint64_t queued = 0;
    bool asked = false;
};
int capturing_streams; // the context's: a cuCtxSynchronize during any capture invalidates it

std::mutex lock;
// Every stream's queue and the stream list, and the running of queued work: taken before `lock`
// (run_grid takes that), recursive because a wait runs another stream's work.
std::recursive_mutex queues;
uint64_t next_stream_id = 1;
// An error of work a free ran (cuMemFree and the like wait for the device but report nothing):
// kept for the next wait to return, as a GPU's error stays until someone synchronises.
int deferred_error = Success;
std::map<uint64_t, Allocation> allocations;
std::map<const char*, size_t> pinned; // cuMemAllocHost's blocks: start -> bytes
std::vector<Stream*> streams;
uint64_t used;
int primary_context_marker;
thread_local void* current_context;
// The driver's current context is per thread: a call that needs one, made on a thread where none
// is current (a backend called from a thread it never made its context current on), fails as the
// driver's does, with CUDA_ERROR_INVALID_CONTEXT.
#define NEED_CONTEXT() \
    if (!current_context) return InvalidContext

thread_local sigjmp_buf* fault_jump;
struct sigaction previous_segv, previous_bus;

void on_fault(int sig, siginfo_t* info, void* context)
{
    if (fault_jump) siglongjmp(*fault_jump, sig);
    const struct sigaction& prev = sig == SIGSEGV ? previous_segv : previous_bus; // not ours: chain
    if (prev.sa_flags & SA_SIGINFO) prev.sa_sigaction(sig, info, context);
    else if (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN)
    {
        sigaction(sig, &prev, nullptr);
        raise(sig);
    }
    else prev.sa_handler(sig);
}

void install_fault_handler()
{
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction action{};
        action.sa_sigaction = on_fault;
        action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        sigemptyset(&action.sa_mask);
        sigaction(SIGSEGV, &action, &previous_segv);
        sigaction(SIGBUS, &action, &previous_bus);
    });
}

// One stack per thread of a block, shared by every module (launches are serialised), each with a
// PROT_NONE bottom page so an overflow faults instead of corrupting the neighbouring fiber.
char* fiber_stacks()
{
    static char* stacks = [] {
        void* p = mmap(nullptr, StackBytes * MaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) return static_cast<char*>(nullptr);
        for (int t = 0; t < MaxThreads; t++) mprotect(static_cast<char*>(p) + t * StackBytes, Page, PROT_NONE);
        return static_cast<char*>(p);
    }();
    return stacks;
}

double now_ms()
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
} // namespace

EXPORT int cuInit(unsigned) { return Success; }
EXPORT int cuDriverGetVersion(int* version) { return *version = 13000, Success; }

EXPORT int cuGetErrorName(int result, const char** name)
{
    switch (result)
    {
    case Success: *name = "CUDA_SUCCESS"; break;
    case InvalidValue: *name = "CUDA_ERROR_INVALID_VALUE"; break;
    case OutOfMemory: *name = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case IllegalAddress: *name = "CUDA_ERROR_ILLEGAL_ADDRESS"; break;
    case LaunchFailed: *name = "CUDA_ERROR_LAUNCH_FAILED"; break;
    case NotSupported: *name = "CUDA_ERROR_NOT_SUPPORTED"; break;
    case IllegalState: *name = "CUDA_ERROR_ILLEGAL_STATE"; break;
    case CaptureUnsupported: *name = "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"; break;
    case CaptureInvalidated: *name = "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"; break;
    default: *name = "CUDA_ERROR_UNKNOWN"; return InvalidValue;
    }
    return Success;
}
EXPORT int cuGetErrorString(int result, const char** text) { return cuGetErrorName(result, text); }

EXPORT int cuDeviceGetCount(int* count) { return *count = 1, Success; }
EXPORT int cuDeviceGet(int* device, int ordinal) { return ordinal == 0 ? (*device = 0, Success) : InvalidDevice; }

EXPORT int cuDeviceGetName(char* name, int length, int device)
{
    if (device != 0) return InvalidDevice;
    snprintf(name, length, "GhostNet CUDA emulator (host CPU)");
    return Success;
}

EXPORT int cuDeviceGetAttribute(int* value, int attribute, int device)
{
    if (device != 0) return InvalidDevice;
    switch (attribute)
    {
    case 16: *value = 4; break;  // multiprocessors: few, so grid-stride loops take several turns
    case 75: *value = 9; break;  // compute capability 9.0
    case 76: *value = 0; break;
    default: *value = 0; break;
    }
    return Success;
}

EXPORT int cuDeviceTotalMem_v2(size_t* bytes, int device) { return device == 0 ? (*bytes = TotalMemory, Success) : InvalidDevice; }
EXPORT int cuDevicePrimaryCtxRetain(void** context, int device) { return device == 0 ? (*context = &primary_context_marker, Success) : InvalidDevice; }
EXPORT int cuDevicePrimaryCtxRelease_v2(int device) { return device == 0 ? Success : InvalidDevice; }
EXPORT int cuCtxSetCurrent(void* context) { return current_context = context, Success; }
EXPORT int cuCtxGetCurrent(void** context) { return *context = current_context, Success; }
int run_grid(Function* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, void** params);

bool alive(Stream* s, uint64_t id) { return s && std::find(streams.begin(), streams.end(), s) != streams.end() && s->id == id; }

// A wait's result: its own error, else one a free's run left.
int reported(int result)
{
    if (result == Success && deferred_error != Success) result = deferred_error;
    deferred_error = Success;
    return result;
}

// Runs every stream's work for a call that waits for the device but reports no kernel's error.
void run_all_for_free();

// A graph node: a launch with its copied arguments, or a memset.
int run_node(const Node& node)
{
    if (!node.function)
    {
        auto* p = reinterpret_cast<unsigned*>(node.destination);
        for (size_t i = 0; i < node.count; i++) p[i] = node.value;
        return Success;
    }
    std::vector<void*> params;
    for (auto& a : node.args) params.push_back(const_cast<char*>(a.data()));
    return run_grid(node.function, node.grid[0], node.grid[1], node.grid[2], node.block[0], node.block[1], node.block[2], params.data());
}

int run(Stream* s, uint64_t upto);

int execute(Op& op)
{
    switch (op.kind)
    {
    case Op::Run: return run_node(op.node);
    case Op::Replay:
        for (auto& node : op.nodes)
            if (int result = run_node(node)) return result; // the first failing launch stops the replay
        return Success;
    case Op::HtoD:
        if (!op.from)
        {
            memcpy(reinterpret_cast<void*>(op.device), op.bytes.data(), op.bytes.size());
            return Success;
        }
        // A GPU reads page-locked memory when the copy runs: bytes the host changed since it was
        // queued are a race (either version may arrive), CUDA_ERROR_ILLEGAL_STATE at this wait.
        memcpy(reinterpret_cast<void*>(op.device), op.from, op.bytes.size());
        if (memcmp(op.from, op.bytes.data(), op.bytes.size()) == 0) return Success;
        fprintf(stderr, "cuda emulator: the host wrote %zu bytes of page-locked memory at %p while a copy from them to the device was queued "
                        "(wait for the copy, an event after it, or its stream first)\n", op.bytes.size(), static_cast<const void*>(op.from));
        return IllegalState;
    case Op::DtoH: memcpy(op.host, reinterpret_cast<const void*>(op.device), op.count); return Success;
    case Op::Wait: return alive(op.stream, op.stream_id) ? run(op.stream, op.upto) : Success;
    }
    return Success;
}

// Runs `s`'s queued work up to op number `upto` (with `queues` held). The first failing op's error
// is this wait's; the ops after it run on (a GPU would lose the context instead).
int run(Stream* s, uint64_t upto)
{
    int result = Success;
    while (s->done < upto && !s->pending.empty())
    {
        Op op = std::move(s->pending.front());
        s->pending.pop_front();
        s->done++;
        if (int r = execute(op); r != Success && result == Success) result = r;
    }
    return result;
}

int run_all()
{
    int result = Success;
    for (size_t i = 0; i < streams.size(); i++) // by index: a wait does not change the list
        if (int r = run(streams[i], streams[i]->queued); r != Success && result == Success) result = r;
    return result;
}

void run_all_for_free()
{
    if (int r = run_all(); r != Success && deferred_error == Success) deferred_error = r;
}

void enqueue(Stream* s, Op op)
{
    s->pending.push_back(std::move(op));
    s->queued++;
}

// A launch or memset on a stream: recorded into its capture's graph, or queued (never on the legacy stream).
int capture_or_queue(Stream* s, Node node)
{
    if (s->graph)
    {
        s->graph->nodes.push_back(std::move(node));
        return Success;
    }
    std::lock_guard q(queues);
    Op op;
    op.kind = Op::Run;
    op.node = std::move(node);
    enqueue(s, std::move(op));
    return Success;
}

EXPORT int cuCtxSynchronize()
{
    NEED_CONTEXT();
    if (capturing_streams > 0) return CaptureUnsupported;
    std::lock_guard q(queues);
    return reported(run_all());
}

EXPORT int cuMemGetInfo_v2(size_t* free, size_t* total)
{
    NEED_CONTEXT();
    std::lock_guard g(lock);
    *free = TotalMemory - used;
    *total = TotalMemory;
    return Success;
}

// The buffer starts 256-byte aligned and ends as close to a PROT_NONE guard page as that allows:
// bytes % 256 == 0 ends at the page, otherwise up to 255 bytes of slack lie between. An access
// beyond the slack faults at once; a write into the slack (which reads as NaN) is found after the
// launch by the canary check below. A read of the slack, or a write of 0xFF bytes into it, goes
// unnoticed: sizes that are multiples of 256 bytes have no slack.
EXPORT int cuMemAlloc_v2(uint64_t* pointer, size_t bytes)
{
    NEED_CONTEXT();
    if (bytes == 0) return InvalidValue;
    size_t slack = (Alignment - bytes % Alignment) % Alignment;
    size_t span = bytes + slack;
    size_t mapped = (span + Page - 1) / Page * Page + Page;
    std::lock_guard g(lock);
    if (used + bytes > TotalMemory) return OutOfMemory;
    void* base = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return OutOfMemory;
    char* guard = static_cast<char*>(base) + mapped - Page;
    mprotect(guard, Page, PROT_NONE);
    char* start = guard - span;
    memset(start, 0xFF, bytes); // NaN in every float and double
    memset(start + bytes, Canary, slack);
    *pointer = reinterpret_cast<uint64_t>(start);
    allocations[*pointer] = {base, mapped, bytes, slack};
    used += bytes;
    return Success;
}

// After a launch (under the lock): the first allocation whose slack a kernel wrote, reported and
// its canary restored. False when every canary is intact.
bool slack_was_written(const std::string& kernel)
{
    for (auto& [start, a] : allocations)
    {
        auto* tail = reinterpret_cast<unsigned char*>(start + a.bytes);
        for (size_t i = 0; i < a.slack; i++)
            if (tail[i] != Canary)
            {
                fprintf(stderr, "cuda emulator: %s wrote past the end of a %zu-byte allocation (at byte %zu after its end): an access outside device memory\n",
                        kernel.c_str(), a.bytes, i);
                memset(tail, Canary, a.slack);
                return true;
            }
    }
    return false;
}

// A host copy or memset must stay inside one allocation (the driver refuses the rest too), so the
// canaries only ever catch kernels.
bool inside_allocation(uint64_t pointer, size_t bytes, const char* call)
{
    if (bytes == 0) return true;
    std::lock_guard g(lock);
    auto it = allocations.upper_bound(pointer);
    if (it != allocations.begin())
    {
        --it;
        if (pointer >= it->first && pointer - it->first <= it->second.bytes && bytes <= it->second.bytes - (pointer - it->first)) return true;
    }
    fprintf(stderr, "cuda emulator: %s of %zu bytes at 0x%llx is not inside one allocation\n", call, bytes, static_cast<unsigned long long>(pointer));
    return false;
}

EXPORT int cuMemFree_v2(uint64_t pointer)
{
    NEED_CONTEXT();
    std::lock_guard q(queues);
    run_all_for_free(); // the driver's free waits for the device's work, which may still use the memory
    std::lock_guard g(lock);
    auto it = allocations.find(pointer);
    if (it == allocations.end()) return InvalidValue;
    munmap(it->second.base, it->second.mapped);
    used -= it->second.bytes;
    allocations.erase(it);
    return Success;
}

// A call a capture refuses: the capture is invalidated (its end gives no graph), as on a GPU,
// where copies from pageable host memory and synchronisations cannot be captured.
int refuse_in_capture(void* stream)
{
    auto* s = static_cast<Stream*>(stream);
    if (!s || !s->graph) return Success;
    s->invalidated = true;
    return CaptureUnsupported;
}



// Page-locked host memory. A GPU copies into it while the host runs on, so a copy from the device
// into it on a stream lands only when the host waits (for the stream, the context, or an event
// recorded after the copy): a host that reads it without waiting sees what it held before. Into
// pageable memory the copy is synchronous, as the driver's is.
EXPORT int cuMemAllocHost_v2(void** pointer, size_t bytes)
{
    NEED_CONTEXT();
    if (bytes == 0) return InvalidValue;
    void* p = malloc(bytes);
    if (!p) return OutOfMemory;
    memset(p, 0xFF, bytes); // NaN, as device memory starts
    std::lock_guard g(lock);
    pinned[static_cast<const char*>(p)] = bytes;
    return *pointer = p, Success;
}

bool is_pinned(const void* pointer, size_t bytes)
{
    std::lock_guard g(lock);
    auto* p = static_cast<const char*>(pointer);
    auto it = pinned.upper_bound(p);
    if (it == pinned.begin()) return false;
    --it;
    return p >= it->first && p + bytes <= it->first + it->second;
}

EXPORT int cuMemFreeHost(void* pointer)
{
    NEED_CONTEXT();
    auto* p = static_cast<char*>(pointer);
    {
        std::lock_guard q(queues);
        run_all_for_free(); // as cuMemFree: the copies still queued to or from it run first
        std::lock_guard g(lock);
        auto it = pinned.find(p);
        if (it == pinned.end()) return InvalidValue;
        pinned.erase(it);
    }
    free(p);
    return Success;
}

// On a stream a copy is queued. From page-locked memory it reads the host memory when it runs;
// from pageable memory the driver has taken the bytes before it returns. Into page-locked memory
// it writes when it runs, so a host that reads before waiting sees the old bytes; into pageable
// memory it returns when done (the stream's earlier work run first). On the legacy stream it is
// done at once.
EXPORT int cuMemcpyHtoDAsync_v2(uint64_t destination, const void* source, size_t bytes, void* stream)
{
    NEED_CONTEXT();
    if (int refused = refuse_in_capture(stream)) return refused;
    if (!inside_allocation(destination, bytes, "cuMemcpyHtoD")) return InvalidValue;
    auto* s = static_cast<Stream*>(stream);
    if (!s)
    {
        memcpy(reinterpret_cast<void*>(destination), source, bytes);
        return Success;
    }
    auto* from = static_cast<const char*>(source);
    Op op;
    op.kind = Op::HtoD;
    op.device = destination;
    op.from = is_pinned(source, bytes) ? from : nullptr;
    op.bytes.assign(from, from + bytes);
    std::lock_guard q(queues);
    enqueue(s, std::move(op));
    return Success;
}

EXPORT int cuMemcpyDtoHAsync_v2(void* destination, uint64_t source, size_t bytes, void* stream)
{
    NEED_CONTEXT();
    if (int refused = refuse_in_capture(stream)) return refused;
    if (!inside_allocation(source, bytes, "cuMemcpyDtoH")) return InvalidValue;
    auto* s = static_cast<Stream*>(stream);
    if (!s)
    {
        memcpy(destination, reinterpret_cast<const void*>(source), bytes);
        return Success;
    }
    std::lock_guard q(queues);
    if (is_pinned(destination, bytes))
    {
        Op op;
        op.kind = Op::DtoH;
        op.host = static_cast<char*>(destination), op.device = source, op.count = bytes;
        enqueue(s, std::move(op));
        return Success;
    }
    int ran = reported(run(s, s->queued));
    memcpy(destination, reinterpret_cast<const void*>(source), bytes);
    return ran;
}

EXPORT int cuMemsetD32Async(uint64_t destination, unsigned value, size_t count, void* stream)
{
    NEED_CONTEXT();
    if (count > SIZE_MAX / 4 || !inside_allocation(destination, count * 4, "cuMemsetD32")) return InvalidValue;
    Node node{};
    node.destination = destination, node.value = value, node.count = count;
    auto* s = static_cast<Stream*>(stream);
    return s ? capture_or_queue(s, std::move(node)) : run_node(node);
}

EXPORT int cuStreamCreate(void** stream, unsigned)
{
    NEED_CONTEXT();
    auto* s = new Stream;
    std::lock_guard q(queues);
    s->id = next_stream_id++;
    streams.push_back(s);
    return *stream = s, Success;
}
EXPORT int cuStreamDestroy_v2(void* stream)
{
    NEED_CONTEXT();
    auto* s = static_cast<Stream*>(stream);
    if (!s) return InvalidHandle;
    if (s->graph) delete s->graph, capturing_streams--;
    {
        std::lock_guard q(queues);
        if (int r = run(s, s->queued); r != Success && deferred_error == Success) deferred_error = r; // the driver finishes a destroyed stream's work
        streams.erase(std::remove(streams.begin(), streams.end(), s), streams.end());
    }
    return delete s, Success;
}
EXPORT int cuStreamSynchronize(void* stream)
{
    NEED_CONTEXT();
    if (int refused = refuse_in_capture(stream)) return refused;
    if (auto* s = static_cast<Stream*>(stream))
    {
        std::lock_guard q(queues);
        return reported(run(s, s->queued));
    }
    return cuCtxSynchronize(); // the legacy stream waits for every stream
}

EXPORT int cuEventCreate(void** event, unsigned) { NEED_CONTEXT(); return *event = new Event, Success; }
EXPORT int cuEventDestroy_v2(void* event) { NEED_CONTEXT(); return delete static_cast<Event*>(event), Success; }
EXPORT int cuEventRecord(void* event, void* stream)
{
    NEED_CONTEXT();
    auto* e = static_cast<Event*>(event);
    auto* s = static_cast<Stream*>(stream);
    std::lock_guard q(queues);
    *e = {now_ms(), s, s ? s->id : 0, s ? s->queued : 0, false};
    return Success;
}
EXPORT int cuEventSynchronize(void* event)
{
    NEED_CONTEXT();
    auto* e = static_cast<Event*>(event);
    std::lock_guard q(queues);
    return reported(alive(e->stream, e->stream_id) ? run(e->stream, e->queued) : Success);
}
// Pending work is reported as CUDA_ERROR_NOT_READY the first time an event is asked about, as a
// GPU still busy with it would; asked again, the emulator runs it (it runs nothing on its own).
EXPORT int cuEventQuery(void* event)
{
    NEED_CONTEXT();
    auto* e = static_cast<Event*>(event);
    std::lock_guard q(queues);
    if (!alive(e->stream, e->stream_id) || e->stream->done >= e->queued) return reported(Success);
    if (!e->asked) return e->asked = true, NotReady;
    return reported(run(e->stream, e->queued));
}
// The stream's later work waits until the event's stream has run what it had queued when the
// event was recorded (the event may be recorded again or destroyed meanwhile: the point is kept).
EXPORT int cuStreamWaitEvent(void* stream, void* event, unsigned)
{
    NEED_CONTEXT();
    if (int refused = refuse_in_capture(stream)) return refused; // cross-stream capture is not emulated
    auto* e = static_cast<Event*>(event);
    auto* s = static_cast<Stream*>(stream);
    std::lock_guard q(queues);
    if (!alive(e->stream, e->stream_id) || e->stream == s) return Success;
    if (!s) return reported(run(e->stream, e->queued));
    Op op;
    op.kind = Op::Wait;
    op.stream = e->stream, op.stream_id = e->stream_id, op.upto = e->queued;
    enqueue(s, std::move(op));
    return Success;
}
EXPORT int cuEventElapsedTime(float* ms, void* start, void* end)
{
    NEED_CONTEXT();
    *ms = static_cast<float>(static_cast<Event*>(end)->ms - static_cast<Event*>(start)->ms);
    return Success;
}

EXPORT int cuModuleLoadData(void** module, const void* image)
{
    NEED_CONTEXT();
    auto* header = static_cast<const emu_image::Header*>(image);
    if (memcmp(header->magic, emu_image::Magic, sizeof header->magic) != 0) return InvalidImage; // a real cubin, or garbage
    std::string path = "/tmp/ghostnet-emu-XXXXXX";
    int fd = mkstemp(path.data());
    if (fd < 0) return InvalidImage;
    bool written = write(fd, header + 1, header->bytes) == static_cast<ssize_t>(header->bytes);
    close(fd);
    void* handle = written ? dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL) : nullptr;
    unlink(path.c_str());
    if (!handle)
    {
        fprintf(stderr, "cuda emulator: cannot load module: %s\n", dlerror());
        return InvalidImage;
    }
    auto* m = new Module{handle, nullptr, nullptr, nullptr};
    m->launch = reinterpret_cast<decltype(m->launch)>(dlsym(handle, "emu_launch"));
    m->error = reinterpret_cast<decltype(m->error)>(dlsym(handle, "emu_error"));
    m->where = reinterpret_cast<decltype(m->where)>(dlsym(handle, "emu_where"));
    if (!m->launch || !m->error || !m->where)
    {
        dlclose(handle);
        delete m;
        return InvalidImage;
    }
    *module = m;
    return Success;
}

EXPORT int cuModuleUnload(void* module)
{
    NEED_CONTEXT();
    auto* m = static_cast<Module*>(module);
    if (!m) return InvalidHandle;
    {
        std::lock_guard q(queues);
        run_all_for_free(); // queued launches of its kernels run first
    }
    dlclose(m->handle);
    delete m;
    return Success;
}

EXPORT int cuModuleGetFunction(void** function, void* module, const char* name)
{
    NEED_CONTEXT();
    auto* m = static_cast<Module*>(module);
    std::string symbol = std::string(emu_image::WrapperPrefix) + name, params = std::string(emu_image::ParamsPrefix) + name;
    void* wrapper = dlsym(m->handle, symbol.c_str());
    if (!wrapper) return NotFound;
    auto* sizes = reinterpret_cast<int (*)(unsigned*, int)>(dlsym(m->handle, params.c_str()));
    *function = new Function{m, reinterpret_cast<void (*)(void**)>(wrapper), sizes, name}; // lives as long as the process, like a CUfunction
    return Success;
}

EXPORT int cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                          unsigned shared, void* stream, void** params, void** extra)
{
    NEED_CONTEXT();
    auto* f = static_cast<Function*>(function);
    if (!f) return InvalidHandle;
    // The hardware's limits, so a launch the GPU would refuse is refused here too.
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0) return InvalidValue;
    if (gx > 2147483647u || gy > 65535u || gz > 65535u || bx > 1024u || by > 1024u || bz > 64u) return InvalidValue;
    if (static_cast<uint64_t>(bx) * by * bz > 1024u || shared > 48u * 1024u || extra) return InvalidValue;
    auto* s = static_cast<Stream*>(stream);
    if (!s) return run_grid(f, gx, gy, gz, bx, by, bz, params); // the legacy stream: run now
    // Captured or queued: the arguments' values are copied now; the caller's may be gone when it runs.
    unsigned sizes[64];
    int count = f->params ? f->params(sizes, 64) : -1;
    if (count < 0 || count > 64)
    {
        if (s->graph) return s->invalidated = true, CaptureUnsupported;
        std::lock_guard q(queues);
        if (int ran = run(s, s->queued)) return ran; // no sizes to copy them by: run in order, now
        return run_grid(f, gx, gy, gz, bx, by, bz, params);
    }
    Node node{f, {gx, gy, gz}, {bx, by, bz}, shared, {}, 0, 0, 0};
    for (int i = 0; i < count; i++)
    {
        auto* value = static_cast<const char*>(params[i]);
        node.args.emplace_back(value, value + sizes[i]);
    }
    return capture_or_queue(s, std::move(node));
}

int run_grid(Function* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, void** params)
{
    install_fault_handler();
    char* stacks = fiber_stacks();
    if (!stacks) return OutOfMemory;
    std::lock_guard g(lock); // one grid at a time: a module's scheduler state is global
    const unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
    sigjmp_buf jump;
    if (int sig = sigsetjmp(jump, 1))
    {
        fault_jump = nullptr;
        char where[128];
        f->module->where(where, sizeof where);
        fprintf(stderr, "cuda emulator: %s faulted (signal %d) in %s: an access outside device memory\n", f->name.c_str(), sig, where);
        slack_was_written(f->name); // restores the canaries, so a later launch is not blamed
        return IllegalAddress;
    }
    fault_jump = &jump;
    int result = f->module->launch(f->wrapper, grid, block, params, stacks, StackBytes);
    fault_jump = nullptr;
    if (result != Success) fprintf(stderr, "cuda emulator: %s failed: %s\n", f->name.c_str(), f->module->error());
    if (slack_was_written(f->name) && result == Success) result = IllegalAddress;
    return result;
}

EXPORT int cuStreamBeginCapture_v2(void* stream, int mode)
{
    NEED_CONTEXT();
    auto* s = static_cast<Stream*>(stream);
    if (!s) return InvalidValue; // the legacy default stream cannot capture
    if (s->graph) return InvalidValue;
    s->graph = new Graph, s->invalidated = false;
    capturing_streams++;
    return Success;
}

EXPORT int cuStreamEndCapture(void* stream, void** graph)
{
    NEED_CONTEXT();
    auto* s = static_cast<Stream*>(stream);
    if (!s || !s->graph) return InvalidValue;
    capturing_streams--;
    bool invalidated = s->invalidated;
    if (invalidated) delete s->graph, *graph = nullptr;
    else *graph = s->graph;
    s->graph = nullptr, s->invalidated = false;
    return invalidated ? CaptureInvalidated : Success;
}

EXPORT int cuGraphInstantiateWithFlags(void** exec, void* graph, unsigned long long)
{
    NEED_CONTEXT();
    if (!graph) return InvalidValue;
    *exec = new Graph(*static_cast<Graph*>(graph)); // the executable graph is a copy: the graph may be destroyed
    return Success;
}

// Queues the nodes, in the order captured (on the legacy stream: runs them now); the first failing
// launch stops the replay with its error.
EXPORT int cuGraphLaunch(void* exec, void* stream)
{
    NEED_CONTEXT();
    auto* g = static_cast<Graph*>(exec);
    if (!g) return InvalidValue;
    auto* s = static_cast<Stream*>(stream);
    if (s && s->graph) return s->invalidated = true, CaptureUnsupported;
    if (!s)
    {
        for (auto& node : g->nodes)
            if (int result = run_node(node)) return result;
        return Success;
    }
    std::lock_guard q(queues);
    Op op;
    op.kind = Op::Replay;
    op.nodes = g->nodes; // the executable graph may be destroyed before the replay runs
    enqueue(s, std::move(op));
    return Success;
}

EXPORT int cuGraphExecDestroy(void* exec) { NEED_CONTEXT(); return delete static_cast<Graph*>(exec), Success; }
EXPORT int cuGraphDestroy(void* graph) { NEED_CONTEXT(); return delete static_cast<Graph*>(graph), Success; }

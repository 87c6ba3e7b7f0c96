using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using GhostNet.Cuda;
using GhostNet.Cuda.Interop;
using NUnit.Framework;
using static GhostNet.Tests.Cuda.GpuHarness;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// The CUDA emulator's shared-memory race detector (tools/cuda-emulator/emu_racecheck.h) and its
/// thread orders: small kernels with a race that must be reported (the kind, both threads and the
/// variable, from the message the emulator prints), correct kernels that must not be, and the
/// seeded random order. The module is built with -DEMU_RACECHECK=1, which turns the detector on
/// for it alone, so these run in every emulator pass, racecheck or not. Emulator only: on a GPU a
/// race is undefined behaviour, not an error (compute-sanitizer's racecheck is the tool there).
/// </summary>
[Category("Gpu")]
public unsafe partial class EmulatorRaceTests
{
    private const string Source = """
        #include "common.cuh"
        // Warp 0 writes; warp 1 reads in a later pass (it waits at a barrier of its own first),
        // so the write comes first whatever the thread order.
        KERNEL void raw(float* p, int barrier)
        {
            __shared__ float v[32];
            int t = threadIdx.x, lane = t & 31;
            if (t < 32) v[lane] = lane;
            if (barrier) __syncthreads();
            else if (t >= 32) __syncwarp();
            if (t >= 32) p[lane] = v[lane];
        }
        // Warp 0 reads; warp 1 overwrites in a later pass.
        KERNEL void war(float* p, int barrier)
        {
            __shared__ float v[32];
            int t = threadIdx.x, lane = t & 31;
            if (t < 32) v[lane] = lane;
            __syncthreads();
            if (t < 32) p[lane] = v[lane];
            if (barrier) __syncthreads();
            else if (t >= 32) __syncwarp();
            if (t >= 32) v[lane] = -1.f;
        }
        KERNEL void waw(float* p, int barrier)
        {
            __shared__ float v[1];
            int t = threadIdx.x;
            if (t == 3) v[0] = 3.f;
            if (barrier) __syncthreads();
            if (t == 40) v[0] = 40.f;
            if (barrier) __syncthreads();
            if (barrier && t == 0) p[0] = v[0];
        }
        // block_sum without its leading barrier: the second call's lane 0 writes sums[warp] while
        // other warps may still read the first call's sums. A template, as block_sum is (GCC
        // ignores the section attribute of a template's static; the emulator must not).
        template <typename T>
        __device__ T sum_no_lead(T v)
        {
            __shared__ T sums[32];
            v = warp_sum(v);
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
            if (lane == 0) sums[warp] = v;
            __syncthreads();
            T total = 0;
            for (int w = 0; w < (int)(blockDim.x + 31) >> 5; w++) total += sums[w];
            return total;
        }
        KERNEL void reuse(float* p, int lead)
        {
            float a = lead ? block_sum<float>(1.f) : sum_no_lead<float>(1.f);
            float b = lead ? block_sum<float>(2.f) : sum_no_lead<float>(2.f);
            if (threadIdx.x == 0) p[0] = a + b;
        }
        // Every lane reads another lane's slot: a race within one warp unless __syncwarp orders it.
        KERNEL void warp_exchange(float* p, int sync)
        {
            __shared__ float v[32];
            int lane = threadIdx.x & 31;
            v[lane] = lane;
            if (sync) __syncwarp();
            p[lane] = v[31 - lane];
        }
        // Warp-synchronous tree sum in shared memory; `trailing` 0 drops the barrier after each write.
        KERNEL void warp_tree(float* p, int trailing)
        {
            __shared__ float s[32];
            int lane = threadIdx.x & 31;
            s[lane] = lane;
            __syncwarp();
            for (int o = 16; o > 0; o >>= 1)
            {
                float x = lane < o ? s[lane + o] : 0.f;
                __syncwarp();
                if (lane < o) s[lane] += x;
                if (trailing) __syncwarp();
            }
            if (lane == 0) p[0] = s[0];
        }
        KERNEL void own_slot(float* p)
        {
            __shared__ float v[64];
            int t = threadIdx.x;
            v[t] = t;
            v[t] += 1.f;
            double d = v[t];
            v[t] = (float)(d * 2);
            p[t] = v[t];
        }
        KERNEL void reductions(float* p)
        {
            float a = block_sum<float>(1.f);
            float b = block_sum<float>((float)threadIdx.x);
            double c = block_sum<double>(2.0);
            float m = block_max((float)threadIdx.x);
            if (threadIdx.x == 0) p[0] = a, p[1] = b, p[2] = (float)c, p[3] = m;
        }
        // The value crosses lanes through a shuffle, which this emulator counts as a barrier of the lanes it names.
        KERNEL void after_shuffle(float* p)
        {
            __shared__ float v[32];
            int lane = threadIdx.x & 31;
            v[lane] = lane;
            float x = __shfl_xor_sync(0xffffffffu, 1.f, 1);
            p[lane] = v[31 - lane] * x;
        }
        // Lanes 0-15 and 16-31 synchronise separately: each half is ordered within itself only.
        KERNEL void half_warps(float* p, int across)
        {
            __shared__ float v[32];
            int lane = threadIdx.x & 31;
            v[lane] = lane;
            __syncwarp(lane < 16 ? 0x0000ffffu : 0xffff0000u);
            p[lane] = v[lane ^ (across ? 16 : 1)];
        }
        // Two threads per 4-byte word, a half each: racecheck tracks bytes, not words, where it must.
        KERNEL void halves(float* p, int other)
        {
            __shared__ unsigned short h[64];
            int t = threadIdx.x;
            h[t] = (unsigned short)t;
            p[t] = h[other ? t ^ 1 : t];
            __syncthreads();
            if (t == 0) p[64] = (float)((const unsigned*)h)[1];
        }
        KERNEL void atomics(float* p, int barrier)
        {
            __shared__ int count;
            if (threadIdx.x == 0) count = 0;
            __syncthreads();
            atomicAdd(&count, 1);
            if (barrier) __syncthreads();
            if (threadIdx.x == 0) p[0] = (float)count;
        }
        """;

    // The launch order of threads and blocks, seen by a global counter (not shared memory, so no race).
    private const string OrderSource = """
        #include "common.cuh"
        KERNEL void sequence(float* p, int* counter)
        {
            int first = atomicAdd(counter, 1);
            __syncthreads();
            int second = atomicAdd(counter, 1);
            int at = blockIdx.x * 2 * blockDim.x + threadIdx.x;
            p[at] = (float)first;
            p[at + blockDim.x] = (float)second;
        }
        KERNEL void racy(float* p)
        {
            __shared__ float v[64];
            v[threadIdx.x] = 1.f;
            p[threadIdx.x] = v[63 - threadIdx.x];
        }
        """;

    private CudaBackend _backend = null!;
    private CudaModule _races = null!;
    private readonly Dictionary<string, CudaModule> _orders = [];

    [OneTimeSetUp]
    public void Load()
    {
        GpuHarness.RequireGpu();
        if (!CudaProbe.Status.Devices[0].Name.Contains("emulator")) Assert.Ignore("not the CUDA emulator");
        _backend = new CudaBackend(0);
        var arch = CudaProbe.Status.Devices[0].Architecture;
        _races = new CudaModule("races.cu", RuntimeCompiler.Compile("races.cu", Source, KernelSources.Headers, arch, ["-DEMU_RACECHECK=1"]));
        foreach (var order in new[] { "forward", "random:42", "random:43" })
            _orders[order] = new CudaModule("order.cu", RuntimeCompiler.Compile("order.cu", OrderSource, KernelSources.Headers, arch, [$"-DEMU_ORDER=\"{order}\""]));
    }

    // NUnit may run a test on another thread than the fixture's set-up; these tests call the
    // driver directly, so they make the backend's context current on theirs, as its own calls do.
    [SetUp]
    public void MakeContextCurrent() => _backend.MakeCurrent();

    [OneTimeTearDown]
    public void Unload()
    {
        _races?.Dispose();
        foreach (var m in _orders.Values) m.Dispose();
        _backend?.Dispose();
    }

    private static (int Result, string Stderr) Launch(CudaModule module, string kernel, uint blocks, uint threads, params ulong[] args)
    {
        void** pointers = stackalloc void*[args.Length];
        fixed (ulong* values = args)
        {
            for (int i = 0; i < args.Length; i++) pointers[i] = values + i;
            int result = 0;
            IntPtr function = module.Function(kernel);
            string stderr = NativeStderr.Capture(() => result = Driver.cuLaunchKernel(function, blocks, 1, 1, threads, 1, 1, 0, IntPtr.Zero, pointers, null));
            return (result, stderr);
        }
    }

    private (int Result, string Stderr) Race(string kernel, uint threads, params ulong[] args) => Launch(_races, kernel, 1, threads, args);

    /// <summary>The report's hazard, the two threads (x only: the launches are 1-D) and the variable.</summary>
    private static (string Hazard, int Thread, int Other, string Variable) Report(string stderr)
    {
        var m = ReportPattern().Match(stderr);
        Assert.That(m.Success, Is.True, $"a racecheck report on stderr, got: {stderr}");
        return (m.Groups[1].Value, int.Parse(m.Groups[4].Value), int.Parse(m.Groups[5].Value), m.Groups[3].Value);
    }

    [GeneratedRegex(@"racecheck: (\S+) hazard at shared byte (\d+) \((.+) \+ \d+, of \d+ bytes\) in block \(0, 0, 0\): thread \((\d+), 0, 0\) \S+(?: \(atomic\))? it after thread \((\d+), 0, 0\)")]
    private static partial Regex ReportPattern();

    private static void AssertClean((int Result, string Stderr) run, string what)
    {
        Assert.That(run.Stderr, Does.Not.Contain("racecheck"), what);
        Assert.That(run.Result, Is.Zero, what);
    }

    [Test]
    public void A_read_of_another_warps_write_with_no_barrier_between_is_reported()
    {
        ulong p = Allocate(32);
        AssertClean(Race("raw", 64, p, 1), "with __syncthreads");
        Assert.That(Read(p, 32), Is.EqualTo(Enumerable.Range(0, 32).Select(i => (float)i)));
        var run = Race("raw", 64, p, 0);
        Assert.That(run.Result, Is.EqualTo(719), "CUDA_ERROR_LAUNCH_FAILED");
        var r = Report(run.Stderr);
        Assert.That(r.Hazard, Is.EqualTo("read-after-write"));
        Assert.That(r.Variable, Is.EqualTo("raw::v"));
        Assert.That(r.Thread, Is.EqualTo(r.Other + 32), "warp 1's lane reads what the same lane of warp 0 wrote");
        Assert.That(run.Stderr, Does.Contain("cuda emulator: raw failed"), "the kernel is named");
        Driver.cuMemFree(p);
    }

    [Test]
    public void Overwriting_what_another_warp_read_with_no_barrier_between_is_reported()
    {
        ulong p = Allocate(32);
        AssertClean(Race("war", 64, p, 1), "with __syncthreads");
        var run = Race("war", 64, p, 0);
        Assert.That(run.Result, Is.EqualTo(719));
        var r = Report(run.Stderr);
        Assert.That((r.Hazard, r.Variable), Is.EqualTo(("write-after-read", "war::v")));
        Assert.That(r.Thread, Is.EqualTo(r.Other + 32));
        Driver.cuMemFree(p);
    }

    [Test]
    public void Two_writes_of_one_word_with_no_barrier_between_are_reported()
    {
        ulong p = Allocate(1);
        AssertClean(Race("waw", 64, p, 1), "with __syncthreads");
        Assert.That(Read(p, 1)[0], Is.EqualTo(40f));
        var run = Race("waw", 64, p, 0);
        Assert.That(run.Result, Is.EqualTo(719));
        var r = Report(run.Stderr);
        Assert.That((r.Hazard, r.Variable), Is.EqualTo(("write-after-write", "waw::v")));
        Assert.That(new[] { r.Thread, r.Other }, Is.EquivalentTo(new[] { 3, 40 }));
        Driver.cuMemFree(p);
    }

    [Test]
    public void Reusing_a_reduction_buffer_without_a_leading_barrier_is_reported()
    {
        // The race of block_sum without its first __syncthreads: the values come out right in
        // every thread order (the reads all happen before the writes), so only racecheck sees it.
        ulong p = Allocate(1);
        AssertClean(Race("reuse", 256, p, 1), "block_sum, twice");
        Assert.That(Read(p, 1)[0], Is.EqualTo(768f));
        var run = Race("reuse", 256, p, 0);
        Assert.That(run.Result, Is.EqualTo(719));
        var r = Report(run.Stderr);
        Assert.That((r.Hazard, r.Variable), Is.EqualTo(("write-after-read", "sum_no_lead<float>(float)::sums")));
        Assert.That(r.Thread % 32, Is.Zero, "a lane 0 writes");
        Assert.That(r.Other / 32, Is.Not.EqualTo(r.Thread / 32), "over a read of another warp");
    }

    [Test]
    public void A_race_within_one_warp_is_reported_and_syncwarp_orders_it()
    {
        ulong p = Allocate(32);
        AssertClean(Race("warp_exchange", 32, p, 1), "with __syncwarp");
        Assert.That(Read(p, 32), Is.EqualTo(Enumerable.Range(0, 32).Select(i => (float)(31 - i))));
        var run = Race("warp_exchange", 32, p, 0);
        Assert.That(run.Result, Is.EqualTo(719));
        var r = Report(run.Stderr);
        Assert.That(r.Hazard, Is.AnyOf("read-after-write", "write-after-read"), "which, depends on the thread order");
        Assert.That(r.Variable, Is.EqualTo("warp_exchange::v"));
        Assert.That(r.Thread, Is.EqualTo(31 - r.Other), "the lanes that swap slots");
        Driver.cuMemFree(p);
    }

    [Test]
    public void A_warp_synchronous_tree_sum_is_clean_with_its_syncwarps_and_reported_without()
    {
        ulong p = Allocate(1);
        AssertClean(Race("warp_tree", 32, p, 1), "every step ordered by __syncwarp");
        Assert.That(Read(p, 1)[0], Is.EqualTo(496f));
        var run = Race("warp_tree", 32, p, 0);
        Assert.That(run.Result, Is.EqualTo(719));
        Assert.That(Report(run.Stderr).Variable, Is.EqualTo("warp_tree::s"));
        Driver.cuMemFree(p);
    }

    [Test]
    public void A_thread_that_reads_and_writes_only_its_own_slot_is_clean()
    {
        ulong p = Allocate(64);
        AssertClean(Race("own_slot", 64, p), "one thread per word");
        Assert.That(Read(p, 64), Is.EqualTo(Enumerable.Range(0, 64).Select(i => (float)(2 * (i + 1)))));
        Driver.cuMemFree(p);
    }

    [TestCase(256u)]
    [TestCase(96u)]
    public void Consecutive_block_reductions_are_clean(uint threads)
    {
        // block_sum's leading __syncthreads is what lets a second call reuse warp_sums.
        ulong p = Allocate(4);
        AssertClean(Race("reductions", threads, p), "block_sum three times (float twice, double), block_max");
        Assert.That(Read(p, 4), Is.EqualTo(new[] { threads, threads * (threads - 1) / 2f, 2f * threads, threads - 1f }));
        Driver.cuMemFree(p);
    }

    [Test]
    public void A_full_warp_shuffle_orders_the_lanes_it_names()
    {
        ulong p = Allocate(32);
        AssertClean(Race("after_shuffle", 32, p), "a shuffle between the write and the read");
        Assert.That(Read(p, 32), Is.EqualTo(Enumerable.Range(0, 32).Select(i => (float)(31 - i))));
        Driver.cuMemFree(p);
    }

    [Test]
    public void A_syncwarp_with_a_partial_mask_orders_only_the_lanes_in_it()
    {
        ulong p = Allocate(32);
        AssertClean(Race("half_warps", 32, p, 0), "neighbours within each half");
        Assert.That(Read(p, 32), Is.EqualTo(Enumerable.Range(0, 32).Select(i => (float)(i ^ 1))));
        var run = Race("half_warps", 32, p, 1);
        Assert.That(run.Result, Is.EqualTo(719), "a read across the halves");
        var r = Report(run.Stderr);
        Assert.That(r.Thread, Is.EqualTo(r.Other ^ 16));
        Driver.cuMemFree(p);
    }

    [Test]
    public void Halves_of_one_word_are_told_apart()
    {
        ulong p = Allocate(65);
        AssertClean(Race("halves", 64, p, 0), "each thread its own half, then a whole-word read after a barrier");
        Assert.That(Read(p, 65), Is.EqualTo(Enumerable.Range(0, 64).Select(i => (float)i).Append(2 + 3 * 65536f)));
        var run = Race("halves", 64, p, 1);
        Assert.That(run.Result, Is.EqualTo(719), "a read of the other half of the word");
        var r = Report(run.Stderr);
        Assert.That((r.Variable, r.Thread), Is.EqualTo(("halves::h", r.Other ^ 1)));
        Driver.cuMemFree(p);
    }

    [Test]
    public void Atomics_do_not_race_with_each_other_but_do_with_a_plain_read()
    {
        ulong p = Allocate(1);
        AssertClean(Race("atomics", 64, p, 1), "atomicAdd from every thread, then a barrier");
        Assert.That(Read(p, 1)[0], Is.EqualTo(64f));
        var run = Race("atomics", 64, p, 0);
        Assert.That(run.Result, Is.EqualTo(719), "thread 0 reads the counter while other warps may still add");
        Assert.That(Report(run.Stderr).Variable, Is.EqualTo("atomics::count"));
        Assert.That(run.Stderr, Does.Contain("(atomic)"));
        Driver.cuMemFree(p);
    }

    private float[] Sequence(string order, uint blocks, uint threads)
    {
        int n = (int)(2 * blocks * threads);
        ulong p = Allocate(n), counter = Allocate(1);
        CudaException.Check(Driver.cuMemsetD32Async(counter, 0, 1, IntPtr.Zero), "cuMemsetD32");
        var run = Launch(_orders[order], "sequence", blocks, threads, p, counter);
        Assert.That(run.Result, Is.Zero, run.Stderr);
        var v = Read(p, n);
        Driver.cuMemFree(p);
        Driver.cuMemFree(counter);
        return v;
    }

    [Test]
    public void A_random_order_replays_from_its_seed_and_differs_from_forward()
    {
        const uint Blocks = 6, Threads = 64;
        var forward = Sequence("forward", Blocks, Threads);
        Assert.That(forward.Take((int)Threads), Is.EqualTo(Enumerable.Range(0, (int)Threads).Select(i => (float)i)), "forward: thread t runs t-th");
        var a = Sequence("random:42", Blocks, Threads);
        Assert.That(Sequence("random:42", Blocks, Threads), Is.EqualTo(a), "the same seed, the same order");
        Assert.That(a, Is.Not.EqualTo(forward));
        Assert.That(Sequence("random:43", Blocks, Threads), Is.Not.EqualTo(a), "another seed, another order");
        Assert.That(a.Order(), Is.EqualTo(forward.Order()), "every thread of every block ran, each pass once");

        // Threads in a new order at every pass, and the blocks too: block b's first pass is
        // entries [2bT, 2bT + T), its sequence numbers tell when the block ran.
        var firstPass = a.Take((int)Threads).ToArray();
        var secondPass = a.Skip((int)Threads).Take((int)Threads).ToArray();
        Assert.That(secondPass.Select(v => v - secondPass.Min()), Is.Not.EqualTo(firstPass.Select(v => v - firstPass.Min())), "a new permutation after the barrier");
        var blockOrder = Enumerable.Range(0, (int)Blocks).OrderBy(b => a[b * 2 * Threads]).ToArray();
        Assert.That(blockOrder, Is.Not.EqualTo(Enumerable.Range(0, (int)Blocks)), "blocks in a random order");
    }

    [Test]
    public void A_launch_error_names_the_order_to_replay()
    {
        using var racy = new CudaModule("racy.cu", RuntimeCompiler.Compile("racy.cu", OrderSource, KernelSources.Headers,
            CudaProbe.Status.Devices[0].Architecture, ["-DEMU_RACECHECK=1", "-DEMU_ORDER=\"random:42\""]));
        ulong p = Allocate(64);
        var run = Launch(racy, "racy", 1, 64, p);
        Assert.That(run.Result, Is.EqualTo(719));
        Assert.That(run.Stderr, Does.Contain("[GHOSTNET_EMU_ORDER=random:42]"));
        Driver.cuMemFree(p);
    }

    /// <summary>What native code writes to file descriptor 2 while an action runs (the emulator reports there).</summary>
    private static partial class NativeStderr
    {
        public static string Capture(Action action)
        {
            string path = Path.GetTempFileName();
            fflush(IntPtr.Zero);
            int saved = dup(2), fd = open(path, 0x241 /* O_WRONLY | O_CREAT | O_TRUNC */, 0x180);
            if (saved < 0 || fd < 0) throw new IOException("cannot redirect stderr");
            dup2(fd, 2);
            close(fd);
            try
            {
                action();
            }
            finally
            {
                fflush(IntPtr.Zero);
                dup2(saved, 2);
                close(saved);
            }
            string text = File.ReadAllText(path);
            File.Delete(path);
            if (text.Length > 0) TestContext.Out.Write(text);
            return text;
        }

        [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)] private static partial int open(string path, int flags, int mode);
        [LibraryImport("libc")] private static partial int dup(int fd);
        [LibraryImport("libc")] private static partial int dup2(int from, int to);
        [LibraryImport("libc")] private static partial int close(int fd);
        [LibraryImport("libc")] private static partial int fflush(IntPtr stream);
    }
}

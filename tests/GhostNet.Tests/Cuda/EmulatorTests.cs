using GhostNet.Cuda;
using GhostNet.Cuda.Interop;
using NUnit.Framework;
using static GhostNet.Tests.Cuda.GpuHarness;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// The CUDA emulator (tools/cuda-emulator) catches the kernel faults it promises to: small faulty
/// kernels launched through the same driver calls as the backend's. Runs only on the emulator;
/// on a real GPU these faults would be undefined behaviour, not errors.
/// </summary>
[Category("Gpu")]
public unsafe class EmulatorTests
{
    private const string Source = """
        #include "common.cuh"
        KERNEL void write_at(float* p, int offset) { if (threadIdx.x == 0) p[offset] = 1.f; }
        KERNEL void copy(const float* x, float* y, int n) { int i = threadIdx.x; if (i < n) y[i] = x[i]; }
        KERNEL void split_warp(float* p)
        {
            if (threadIdx.x < 16) __syncthreads();
            else p[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.f, 1);
        }
        KERNEL void shuffle_after_exit(float* p)
        {
            if (threadIdx.x == 5) return;
            float v = __shfl_down_sync(0xffffffffu, 1.f, 1);
            p[threadIdx.x] = v;
        }
        KERNEL void rounded_apart(float* p) { if (threadIdx.x == 0) { p[2] = __fadd_rn(__fmul_rn(p[0], p[0]), p[1]); p[3] = fmaf(p[0], p[0], p[1]); } }
        KERNEL void block_total(float* p) { float s = block_sum<float>(1.f); if (threadIdx.x == 0) p[0] = s; }
        KERNEL void neighbours(float* p, int barrier)
        {
            __shared__ float v[256];
            int t = threadIdx.x;
            v[t] = t;
            if (barrier) __syncthreads();
            p[t] = t > 0 && t < 255 ? v[t - 1] + v[t + 1] : 0.f;
        }
        """;

    private CudaBackend _backend = null!;
    private CudaModule _module = null!;

    [OneTimeSetUp]
    public void Load()
    {
        GpuHarness.RequireGpu();
        if (!CudaProbe.Status.Devices[0].Name.Contains("emulator")) Assert.Ignore("not the CUDA emulator");
        _backend = new CudaBackend(0); // makes the context current
        // Without the race detector (GHOSTNET_EMU_RACECHECK=1 would report the missing barrier of
        // `neighbours` before it could show as NaN; EmulatorRaceTests checks that).
        var image = RuntimeCompiler.Compile("faults.cu", Source, KernelSources.Headers, CudaProbe.Status.Devices[0].Architecture, ["-DEMU_RACECHECK=0"]);
        _module = new CudaModule("faults.cu", image);
    }

    // NUnit may run a test on another thread than the fixture's set-up; these tests call the
    // driver directly, so they make the backend's context current on theirs, as its own calls do.
    [SetUp]
    public void MakeContextCurrent() => _backend.MakeCurrent();

    [OneTimeTearDown]
    public void Unload()
    {
        _module?.Dispose();
        _backend?.Dispose();
    }

    private int Launch(string kernel, uint threads, params ulong[] args) => Launch(kernel, threads, IntPtr.Zero, args);

    private int Launch(string kernel, uint threads, IntPtr stream, params ulong[] args)
    {
        void** pointers = stackalloc void*[args.Length];
        fixed (ulong* values = args)
        {
            for (int i = 0; i < args.Length; i++) pointers[i] = values + i;
            return Driver.cuLaunchKernel(_module.Function(kernel), 1, 1, 1, threads, 1, 1, 0, stream, pointers, null);
        }
    }

    [Test]
    public void A_write_past_the_end_of_a_buffer_is_an_illegal_address()
    {
        ulong p = Allocate(1000);
        Assert.That(Launch("write_at", 32, p, 999), Is.Zero, "the last element is in bounds");
        Assert.That(Launch("write_at", 32, p, 1000 + 16), Is.EqualTo(700), "CUDA_ERROR_ILLEGAL_ADDRESS (the guard page covers 4 KiB past the end)");
        Driver.cuMemFree(p);
    }

    [Test]
    public void A_call_on_a_thread_with_no_current_context_is_an_invalid_context()
    {
        // The current context is the calling thread's: a backend called from a thread it never made
        // its context current on would fail so on a GPU, so it fails so here.
        Assert.That(Driver.cuCtxGetCurrent(out IntPtr context), Is.Zero);
        Assert.That(context, Is.Not.EqualTo(IntPtr.Zero), "the set-up made it current here");
        var results = new List<int>();
        var thread = new Thread(() =>
        {
            results.Add(Driver.cuMemAlloc(out ulong _, 256));
            results.Add(Driver.cuStreamSynchronize(IntPtr.Zero));
            results.Add(Driver.cuCtxSetCurrent(context));
            results.Add(Driver.cuMemAlloc(out ulong p, 256));
            results.Add(Driver.cuMemFree(p));
        });
        thread.Start();
        thread.Join();
        Assert.That(results, Is.EqualTo(new[] { 201, 201, 0, 0, 0 }), "CUDA_ERROR_INVALID_CONTEXT until the thread makes it current");
    }

    [Test]
    public void Its_fault_handler_leaves_managed_null_references_to_dotnet()
    {
        // The emulator's SIGSEGV handler, installed by the first launch, must pass faults that
        // are not a kernel's on to the runtime's, which turns this one into an exception.
        ulong p = Allocate(1);
        Assert.That(Launch("write_at", 32, p, 0), Is.Zero);
        Driver.cuMemFree(p);
        string? nothing = Environment.GetEnvironmentVariable("GHOSTNET_NO_SUCH_VARIABLE");
        Assert.Throws<NullReferenceException>(() => _ = nothing!.Length);
    }

    [Test]
    public void A_copy_into_page_locked_memory_lands_only_when_the_host_waits_for_it()
    {
        // On a GPU the copy lands some time after cuMemcpyDtoHAsync returns: a host that reads
        // without waiting may see the old words. The emulator always shows them, so the bug fails.
        ulong device = Allocate(4);
        GpuHarness.Write(device, [1f, 2f, 3f, 4f]);
        Assert.That(Driver.cuStreamCreate(out IntPtr stream, 1), Is.Zero);
        Assert.That(Driver.cuEventCreate(out IntPtr before, 2), Is.Zero);
        Assert.That(Driver.cuEventCreate(out IntPtr after, 2), Is.Zero);
        Assert.That(Driver.cuMemAllocHost(out IntPtr host, 16), Is.Zero);
        var words = new Span<float>((void*)host, 4);
        words.Fill(-1f);
        Assert.That(Driver.cuEventRecord(before, stream), Is.Zero);
        Assert.That(Driver.cuMemcpyDtoHAsync((void*)host, device, 16, stream), Is.Zero);
        Assert.That(Driver.cuEventRecord(after, stream), Is.Zero);
        Assert.That(words.ToArray(), Has.All.EqualTo(-1f), "not waited for");
        Assert.That(Driver.cuEventSynchronize(before), Is.Zero);
        Assert.That(words.ToArray(), Has.All.EqualTo(-1f), "an event recorded before the copy does not wait for it");
        Assert.That(Driver.cuEventSynchronize(after), Is.Zero);
        Assert.That(words.ToArray(), Is.EqualTo(new[] { 1f, 2f, 3f, 4f }), "landed at the wait");
        // Into pageable memory the copy is synchronous.
        GpuHarness.Write(device, [5f, 6f, 7f, 8f]);
        var pageable = new float[4];
        fixed (float* p = pageable) Assert.That(Driver.cuMemcpyDtoHAsync(p, device, 16, stream), Is.Zero);
        Assert.That(pageable, Is.EqualTo(new[] { 5f, 6f, 7f, 8f }));
        Driver.cuMemFreeHost(host);
        Driver.cuEventDestroy(before);
        Driver.cuEventDestroy(after);
        Driver.cuStreamDestroy(stream);
        Driver.cuMemFree(device);
    }

    [Test]
    public void Work_on_a_stream_runs_when_waited_for_and_a_wait_for_another_streams_event_orders_it([Values] bool waits)
    {
        // A copy stream uploads, the compute stream launches a kernel that reads the upload. With
        // cuStreamWaitEvent the kernel reads the new bytes; without it the kernel runs (at its
        // stream's synchronisation) before the copy stream ran, as a GPU may run it, and reads the
        // old ones: the missing wait gives a wrong result, not a lucky right one.
        ulong x = Allocate(4), y = Allocate(4);
        GpuHarness.Write(x, [1f, 1f, 1f, 1f]);
        Assert.That(Driver.cuStreamCreate(out IntPtr compute, 1), Is.Zero);
        Assert.That(Driver.cuStreamCreate(out IntPtr copy, 1), Is.Zero);
        Assert.That(Driver.cuEventCreate(out IntPtr uploaded, 2), Is.Zero);
        var fresh = new[] { 7f, 7f, 7f, 7f };
        fixed (float* h = fresh) Assert.That(Driver.cuMemcpyHtoDAsync(x, h, 16, copy), Is.Zero);
        Assert.That(Driver.cuEventRecord(uploaded, copy), Is.Zero);
        if (waits) Assert.That(Driver.cuStreamWaitEvent(compute, uploaded, 0), Is.Zero);
        Assert.That(Launch("copy", 32, compute, x, y, 4), Is.Zero);
        Assert.That(GpuHarness.Read(y, 4), Has.All.NaN, "the launch is queued until its stream is waited for");
        Assert.That(Driver.cuStreamSynchronize(compute), Is.Zero);
        Assert.That(GpuHarness.Read(y, 4), Has.All.EqualTo(waits ? 7f : 1f));
        Driver.cuStreamSynchronize(copy);
        Driver.cuEventDestroy(uploaded);
        Driver.cuStreamDestroy(copy);
        Driver.cuStreamDestroy(compute);
        Driver.cuMemFree(x);
        Driver.cuMemFree(y);
    }

    [Test]
    public void A_kernel_error_that_a_free_ran_is_returned_by_the_next_wait()
    {
        // cuMemFree waits for the device, so it runs the queued work, but reports no kernel's
        // error: a GPU's error stays until the host synchronises, and so does the emulator's.
        ulong p = Allocate(1000), other = Allocate(4);
        Assert.That(Driver.cuStreamCreate(out IntPtr stream, 1), Is.Zero);
        Assert.That(Launch("write_at", 32, stream, p, 1000 + 16), Is.Zero, "queued: nothing has run yet");
        Assert.That(Driver.cuMemFree(other), Is.Zero, "the free itself succeeds");
        Assert.That(Driver.cuStreamSynchronize(stream), Is.EqualTo(700), "CUDA_ERROR_ILLEGAL_ADDRESS, from the launch the free ran");
        Assert.That(Driver.cuStreamSynchronize(stream), Is.Zero, "reported once");
        Driver.cuStreamDestroy(stream);
        Driver.cuMemFree(p);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void A_host_write_to_page_locked_memory_a_queued_copy_reads_is_reported(bool waitFirst)
    {
        // On a GPU the copy reads the host memory when the stream reaches it, so a write before
        // the host has waited for it races the copy. The emulator fails the wait that finds it.
        ulong device = Allocate(4);
        Assert.That(Driver.cuStreamCreate(out IntPtr stream, 1), Is.Zero);
        Assert.That(Driver.cuEventCreate(out IntPtr copied, 2), Is.Zero);
        Assert.That(Driver.cuMemAllocHost(out IntPtr host, 16), Is.Zero);
        var words = new Span<float>((void*)host, 4);
        words.Fill(1f);
        Assert.That(Driver.cuMemcpyHtoDAsync(device, (void*)host, 16, stream), Is.Zero);
        Assert.That(Driver.cuEventRecord(copied, stream), Is.Zero);
        Assert.That(GpuHarness.Read(device, 4), Has.All.NaN, "queued, not run: nothing waited for it");
        if (waitFirst)
        {
            Assert.That(Driver.cuEventQuery(copied), Is.EqualTo(600), "CUDA_ERROR_NOT_READY: the copy is still queued");
            Assert.That(Driver.cuEventQuery(copied), Is.Zero, "asked again, the emulator runs it");
        }
        words.Fill(2f);
        Assert.That(Driver.cuEventSynchronize(copied), Is.EqualTo(waitFirst ? 0 : 401), "CUDA_ERROR_ILLEGAL_STATE for the race");
        Assert.That(GpuHarness.Read(device, 4), Has.All.EqualTo(waitFirst ? 1f : 2f), "the bytes the host memory held when the copy ran");
        Driver.cuMemFreeHost(host);
        Driver.cuEventDestroy(copied);
        Driver.cuStreamDestroy(stream);
        Driver.cuMemFree(device);
    }

    [Test]
    public void Fmul_rn_and_fadd_rn_round_apart_where_a_fused_multiply_add_would_not()
    {
        // a = 1 + 2^-12: a * a = 1 + 2^-11 + 2^-24 rounds (a tie, to even) to 1 + 2^-11, so the
        // product rounded, plus -(1 + 2^-11), is 0; fused, the 2^-24 survives.
        float a = 1f + MathF.Pow(2, -12), c = -(1f + MathF.Pow(2, -11));
        ulong p = Allocate(4);
        GpuHarness.Write(p, [a, c, float.NaN, float.NaN]);
        Assert.That(Launch("rounded_apart", 32, p), Is.Zero);
        var r = Read(p, 4);
        Assert.That(r[2], Is.EqualTo(a * a + c), "the scalar reference, rounded apart in C#");
        Assert.That(r[2], Is.Zero);
        Assert.That(r[3], Is.EqualTo(MathF.Pow(2, -24)), "fmaf keeps the low bits");
        Driver.cuMemFree(p);
    }

    [Test]
    public void Memory_nobody_wrote_reads_as_nan()
    {
        ulong x = Allocate(64), y = Allocate(64);
        Assert.That(Launch("copy", 64, x, y, 64), Is.Zero);
        Assert.That(Read(y, 64), Has.All.NaN);
        Driver.cuMemFree(x);
        Driver.cuMemFree(y);
    }

    [Test]
    public void A_warp_split_between_a_barrier_and_a_shuffle_fails_the_launch()
    {
        ulong p = Allocate(256);
        Assert.That(Launch("split_warp", 64, p), Is.EqualTo(719), "CUDA_ERROR_LAUNCH_FAILED, not a hang");
        Driver.cuMemFree(p);
    }

    [Test]
    public void A_full_mask_shuffle_with_an_exited_lane_fails_the_launch()
    {
        ulong p = Allocate(32);
        Assert.That(Launch("shuffle_after_exit", 32, p), Is.EqualTo(719));
        Driver.cuMemFree(p);
    }

    [Test]
    public void A_missing_barrier_before_a_shared_memory_read_gives_nan()
    {
        // Each block starts with NaN in shared memory; forward or reverse, one of the two
        // neighbours is unwritten without the barrier (GHOSTNET_EMU_ORDER=reverse: the left). In a
        // random order at least the thread that runs first among 1..254 reads one.
        ulong p = Allocate(256);
        Assert.That(Launch("neighbours", 256, p, 1), Is.Zero);
        var with = Read(p, 256);
        Assert.That(with.Skip(1).Take(254).Select((v, i) => v - 2f * (i + 1)), Has.All.EqualTo(0f), "with the barrier");
        Assert.That(Launch("neighbours", 256, p, 0), Is.Zero);
        bool random = Environment.GetEnvironmentVariable("GHOSTNET_EMU_ORDER")?.StartsWith("random") == true;
        Assert.That(Read(p, 256).Skip(1).Take(254), random ? Has.Some.NaN : Has.All.NaN, "without it");
        Driver.cuMemFree(p);
    }

    [TestCase(256u)]
    [TestCase(96u)]
    public void Block_reductions_see_every_thread(uint threads)
    {
        ulong p = Allocate(1);
        Assert.That(Launch("block_total", threads, p), Is.Zero);
        Assert.That(Read(p, 1)[0], Is.EqualTo((float)threads));
        Driver.cuMemFree(p);
    }

    [Test]
    public void A_full_mask_shuffle_in_a_partial_warp_fails_the_launch()
    {
        // 33 threads: the second warp has one lane, so the shuffles name lanes that do not exist
        // (undefined on a GPU; block_sum assumes whole warps, as every launch of ours has).
        ulong p = Allocate(1);
        Assert.That(Launch("block_total", 33, p), Is.EqualTo(719));
        Driver.cuMemFree(p);
    }
}

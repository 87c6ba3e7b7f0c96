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

    [OneTimeTearDown]
    public void Unload()
    {
        _module?.Dispose();
        _backend?.Dispose();
    }

    private int Launch(string kernel, uint threads, params ulong[] args)
    {
        void** pointers = stackalloc void*[args.Length];
        fixed (ulong* values = args)
        {
            for (int i = 0; i < args.Length; i++) pointers[i] = values + i;
            return Driver.cuLaunchKernel(_module.Function(kernel), 1, 1, 1, threads, 1, 1, 0, IntPtr.Zero, pointers, null);
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

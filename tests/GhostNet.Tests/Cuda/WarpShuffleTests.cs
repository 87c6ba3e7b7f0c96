using GhostNet.Cuda;
using GhostNet.Cuda.Interop;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// Each warp-level instruction the kernels may use (__shfl_sync, __shfl_up_sync,
/// __shfl_down_sync, __shfl_xor_sync at widths 32, 16 and 8, and __syncwarp) against a scalar
/// reference of the PTX ISA's shfl.sync semantics. On the emulator this proves its
/// implementation; on a GPU the same test proves the reference, so the two cannot drift apart.
/// </summary>
[Category("Gpu")]
public unsafe class WarpShuffleTests
{
    private const uint Threads = 64; // two warps: a lane's source must stay inside its own warp
    private const string Source = """
        #include "common.cuh"
        KERNEL void shuffle(float* out, int kind, int arg, int width)
        {
            float v = threadIdx.x + 0.5f;
            float r = kind == 0 ? __shfl_sync(0xffffffffu, v, arg, width)
                    : kind == 1 ? __shfl_up_sync(0xffffffffu, v, (unsigned)arg, width)
                    : kind == 2 ? __shfl_down_sync(0xffffffffu, v, (unsigned)arg, width)
                    : __shfl_xor_sync(0xffffffffu, v, arg, width);
            out[threadIdx.x] = r;
        }
        KERNEL void warp_neighbours(float* out, int sync)
        {
            __shared__ float v[64];
            int t = threadIdx.x;
            v[t] = t;
            if (sync) __syncwarp();
            int lane = t & 31, base = t - lane;
            out[t] = v[base + ((lane + 1) & 31)];
        }
        """;

    private CudaBackend _backend = null!;
    private CudaModule _module = null!;

    [OneTimeSetUp]
    public void Load()
    {
        GpuHarness.RequireGpu();
        _backend = new CudaBackend(0);
        // Not race-checked on the emulator: warp_neighbours' missing __syncwarp must show as NaN
        // here (EmulatorRaceTests has the race report); a GPU ignores the macro.
        var image = RuntimeCompiler.Compile("warp.cu", Source, KernelSources.Headers, CudaProbe.Status.Devices[0].Architecture, ["-DEMU_RACECHECK=0"]);
        _module = new CudaModule("warp.cu", image);
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

    /// <summary>The lane whose value lane <paramref name="lane"/> receives, from the PTX ISA (shfl.sync idx / up / down / bfly).</summary>
    private static int Reference(int kind, int lane, int arg, int width)
    {
        int segment = lane & ~(width - 1);
        int source = kind switch
        {
            0 => segment + (arg & (width - 1)),
            1 => lane - arg >= segment ? lane - arg : lane,
            2 => lane + arg < segment + width ? lane + arg : lane,
            _ => (lane ^ arg) < segment + width ? lane ^ arg : lane,
        };
        return source;
    }

    private float[] Run(string kernel, params ulong[] args)
    {
        CudaException.Check(Driver.cuMemAlloc(out ulong p, Threads * 4), "cuMemAlloc");
        try
        {
            var all = new ulong[args.Length + 1];
            all[0] = p;
            args.CopyTo(all, 1);
            void** pointers = stackalloc void*[all.Length];
            fixed (ulong* values = all)
            {
                for (int i = 0; i < all.Length; i++) pointers[i] = values + i;
                CudaException.Check(Driver.cuLaunchKernel(_module.Function(kernel), 1, 1, 1, Threads, 1, 1, 0, IntPtr.Zero, pointers, null), "cuLaunchKernel", kernel);
            }
            var result = new float[Threads];
            fixed (float* h = result) CudaException.Check(Driver.cuMemcpyDtoHAsync(h, p, Threads * 4, IntPtr.Zero), "cuMemcpyDtoH");
            CudaException.Check(Driver.cuCtxSynchronize(), "cuCtxSynchronize");
            return result;
        }
        finally
        {
            Driver.cuMemFree(p);
        }
    }

    [Test]
    public void Every_shuffle_matches_the_scalar_reference_at_every_lane()
    {
        var failures = new List<string>();
        string[] names = ["__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync"];
        for (int kind = 0; kind < 4; kind++)
        foreach (int width in new[] { 32, 16, 8 })
        foreach (int arg in new[] { 0, 1, 3, 5, 16, 31 })
        {
            // The int arguments travel as 64-bit slots; the kernel reads their low 32 bits.
            var got = Run("shuffle", (ulong)kind, (ulong)arg, (ulong)width);
            for (int t = 0; t < Threads; t++)
            {
                int warp = t & ~31, expected = warp + Reference(kind, t & 31, arg, width);
                if (got[t] != expected + 0.5f) failures.Add($"{names[kind]}(arg {arg}, width {width}) lane {t}: {got[t]}, expected {expected + 0.5f}");
            }
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(20)));
    }

    [Test]
    public void Syncwarp_orders_shared_memory_between_the_lanes_of_a_warp()
    {
        var with = Run("warp_neighbours", 1);
        for (int t = 0; t < Threads; t++) Assert.That(with[t], Is.EqualTo((t & ~31) + ((t + 1) & 31)), $"lane {t}");
        if (!CudaProbe.Status.Devices[0].Name.Contains("emulator")) return; // a GPU's lockstep may hide the missing barrier
        Assert.That(Run("warp_neighbours", 0), Has.Some.NaN, "without __syncwarp a lane reads its neighbour before it was written (NaN-poisoned shared memory)");
    }
}

using GhostNet.Backends;
using GhostNet.Cpu;
using GhostNet.Cuda;
using GhostNet.Cuda.Interop;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// The same tensors on the CPU backend (the reference) and the CUDA backend. GPU outputs are
/// poisoned with NaN before a kernel runs, so an element the kernel fails to write fails the
/// comparison. Without a GPU every test using this is skipped with the probe's reason, or fails
/// where a GPU is expected (RequireGpu).
/// </summary>
internal sealed class GpuHarness : IDisposable
{
    private readonly List<Storage> _storages = [];

    private GpuHarness(int seed)
    {
        Rng = new Random(seed);
        Cpu = new CpuBackend(2);
        Gpu = new CudaBackend(0);
        TestContext.Out.WriteLine($"seed {seed}, {Gpu.Name}");
    }

    public CpuBackend Cpu { get; }
    public CudaBackend Gpu { get; }
    public Random Rng { get; }

    /// <summary>A harness whose draws come from a fresh seed, printed; GHOSTNET_TEST_SEED replays one.</summary>
    public static GpuHarness Create()
    {
        RequireGpu();
        return new GpuHarness(int.TryParse(Environment.GetEnvironmentVariable("GHOSTNET_TEST_SEED"), out int seed) ? seed : TestContext.CurrentContext.Random.Next());
    }

    /// <summary>
    /// Where a CUDA device is expected: GHOSTNET_EXPECT_CUDA=1 (tools/test.sh's emulator runs), or
    /// CI=true unless GHOSTNET_EXPECT_CUDA=0 (tools/test.sh's first run, which has no device).
    /// </summary>
    public static bool CudaExpected =>
        Environment.GetEnvironmentVariable("GHOSTNET_EXPECT_CUDA") switch
        {
            "1" => true,
            "0" => false,
            _ => Environment.GetEnvironmentVariable("CI") == "true",
        };

    /// <summary>
    /// The one gate of every Gpu test. Without a device it skips with the probe's reason, but fails
    /// where a device is expected: a broken emulator must not turn every Gpu test into a passing skip.
    /// </summary>
    public static void RequireGpu()
    {
        var status = CudaProbe.Status;
        if (status.Available) return;
        if (CudaExpected)
            Assert.Fail($"no GPU where one is expected (GHOSTNET_EXPECT_CUDA=1, or CI=true): {status.Reason}");
        Assert.Ignore($"no GPU: {status.Reason}");
    }

    public readonly record struct Twin(Tensor C, Tensor G)
    {
        public Twin Grad => new(C.Grad, G.Grad);
        public Twin Channels(int start, int count) => new(C.Channels(start, count), G.Channels(start, count));
    }

    public Twin New(int n, int c, int h, int w)
    {
        var sc = Bind(new Storage($"cpu{_storages.Count}", (long)n * c * h * w).WithGradient(), Cpu);
        var sg = Bind(new Storage($"gpu{_storages.Count}", (long)n * c * h * w).WithGradient(), Gpu);
        var t = new Twin(new Tensor(sc, 0, n, c, h, w), new Tensor(sg, 0, n, c, h, w));
        Poison(t);
        Poison(t.Grad);
        return t;
    }

    public Twin Random(int n, int c, int h, int w, float scale = 1f, float offset = 0f)
    {
        var t = New(n, c, h, w);
        Set(t, Values(t.C.Count, scale, offset));
        return t;
    }

    public float[] Values(long count, float scale = 1f, float offset = 0f) =>
        Enumerable.Range(0, (int)count).Select(_ => (float)((Rng.NextDouble() * 2 - 1) * scale + offset)).ToArray();

    public void Set(in Twin t, float[] values)
    {
        Cpu.Upload(values, t.C);
        Gpu.Upload(values, t.G);
    }

    public void SetInts(in Twin t, int[] values)
    {
        Cpu.UploadInts(values, t.C);
        Gpu.UploadInts(values, t.G);
    }

    /// <summary>Fills the GPU side with NaN (outputs not yet written by the kernel under test).</summary>
    public void Poison(in Twin t) => Gpu.Fill(t.G, float.NaN);

    /// <summary>Makes the GPU side equal the CPU side again (for outputs that are accumulated into).</summary>
    public void Mirror(in Twin t) => Gpu.Upload(Get(Cpu, t.C), t.G);

    /// <summary>Raw device memory for a test kernel launched by hand (the emulator's fault and race tests).</summary>
    public static ulong Allocate(int floats)
    {
        CudaException.Check(Driver.cuMemAlloc(out ulong p, (nuint)floats * 4), "cuMemAlloc");
        return p;
    }

    /// <summary>The first <paramref name="floats"/> values at device address <paramref name="p"/>.</summary>
    public static unsafe float[] Read(ulong p, int floats)
    {
        var v = new float[floats];
        fixed (float* h = v) CudaException.Check(Driver.cuMemcpyDtoHAsync(h, p, (nuint)floats * 4, IntPtr.Zero), "cuMemcpyDtoH");
        return v;
    }

    /// <summary>Writes <paramref name="values"/> at device address <paramref name="p"/>.</summary>
    public static unsafe void Write(ulong p, float[] values)
    {
        fixed (float* h = values) CudaException.Check(Driver.cuMemcpyHtoDAsync(p, h, (nuint)values.Length * 4, IntPtr.Zero), "cuMemcpyHtoD");
    }

    public static float[] Get(IBackend b, in Tensor t)
    {
        var v = new float[t.Count];
        b.Download(t, v);
        return v;
    }

    public double Compare(string what, in Twin t, double tolerance = 1e-5)
    {
        var cpu = Get(Cpu, t.C);
        var gpu = Get(Gpu, t.G);
        Assert.That(gpu.Count(float.IsNaN), Is.LessThanOrEqualTo(cpu.Count(float.IsNaN)), $"{what}: GPU left elements unwritten (NaN)");
        double error = RelativeError(gpu, cpu);
        TestContext.Out.WriteLine($"{what}: relative error {error:E2}");
        Assert.That(error, Is.LessThanOrEqualTo(tolerance), $"{what}: relative error {error:E2}");
        return error;
    }

    /// <summary>CUDA against CPU class for class: NaN where NaN, the same infinity, finite values within tolerance.</summary>
    public void CompareClasses(string what, in Twin t, double tolerance = 1e-5) =>
        NonFinite.AssertSameClasses(what, Get(Gpu, t.G), Get(Cpu, t.C), tolerance);

    /// <summary>Random values with NaN, +Inf and -Inf at seeded positions (NonFinite.Inject), on both sides.</summary>
    public Twin RandomNonFinite(int n, int c, int h, int w, int count, float scale = 1f)
    {
        var t = New(n, c, h, w);
        var v = Values(t.C.Count, scale);
        NonFinite.Inject(v, Rng, count, c * h * w);
        Set(t, v);
        return t;
    }

    public static double RelativeError(float[] ours, float[] reference, double floor = 0) =>
        GhostNet.Tests.Shared.Comparison.RelativeError(ours, reference, floor);

    private Storage Bind(Storage s, IBackend b)
    {
        s.Bind(b);
        _storages.Add(s);
        return s;
    }

    public void Dispose()
    {
        foreach (var s in _storages) s.Release();
        Gpu.Dispose();
        Cpu.Dispose();
    }
}

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

    private GpuHarness(int seed, ElementType activations)
    {
        Rng = new Random(seed);
        Cpu = new CpuBackend(2);
        Gpu = new CudaBackend(0) { ActivationType = activations };
        TestContext.Out.WriteLine($"seed {seed}, {Gpu.Name}, {activations.Name()} activations");
    }

    public CpuBackend Cpu { get; }
    public CudaBackend Gpu { get; }
    public Random Rng { get; }

    /// <summary>A harness whose draws come from a fresh seed, printed; GHOSTNET_TEST_SEED replays one.</summary>
    /// <summary>
    /// <paramref name="activations"/>: how the GPU side holds the tensors of <see cref="New"/> (the
    /// CPU side is always fp32); parameters and statistics come from <see cref="NewFp32"/>.
    /// </summary>
    public static GpuHarness Create(ElementType activations = ElementType.Float32)
    {
        RequireGpu();
        return new GpuHarness(int.TryParse(Environment.GetEnvironmentVariable("GHOSTNET_TEST_SEED"), out int seed) ? seed : TestContext.CurrentContext.Random.Next(), activations);
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

    /// <summary>An activation (and its gradient): of the GPU backend's activation type on its side.</summary>
    public Twin New(int n, int c, int h, int w) => New(n, c, h, w, Gpu.ActivationType);

    /// <summary>A parameter, a statistic or a label vector: fp32 on both sides whatever the activations are.</summary>
    public Twin NewFp32(int n, int c, int h, int w) => New(n, c, h, w, ElementType.Float32);

    public Twin RandomFp32(int n, int c, int h, int w, float scale = 1f, float offset = 0f)
    {
        var t = NewFp32(n, c, h, w);
        Set(t, Values(t.C.Count, scale, offset));
        return t;
    }

    private Twin New(int n, int c, int h, int w, ElementType gpuType)
    {
        var sc = Bind(new Storage($"cpu{_storages.Count}", (long)n * c * h * w).WithGradient(), Cpu);
        var sg = Bind(new Storage($"gpu{_storages.Count}", (long)n * c * h * w, gpuType).WithGradient(), Gpu);
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

    /// <summary>The same values on both sides: rounded to bf16 first where the GPU side holds bf16, so both start equal.</summary>
    public void Set(in Twin t, float[] values)
    {
        if (t.G.Storage.Type == ElementType.BFloat16) values = values.Select(BFloat16.Round).ToArray();
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
    public void Mirror(in Twin t) => Gpu.Upload(Get(Cpu, t.C), t.G); // rounded by the upload where the GPU holds bf16

    /// <summary>
    /// A bf16 GPU side against the fp32 CPU side computed from the same (bf16) inputs: every element
    /// the CPU's value rounded once to bf16, within <paramref name="ulps"/> units of |value| / 128
    /// (at least a bf16 ulp, so one rounding is at most 0.5 of it; 1 allows an fp32 result that
    /// differs from the CPU's in its last bits). 0: exactly the CPU's value rounded to nearest even,
    /// where both compute the same fp32 bits. NaN where NaN, and every GPU value a bf16 (so the
    /// kernel did store halves). Then the CPU side takes the GPU's values, so that an op reading
    /// them next starts from the same inputs on both sides.
    /// </summary>
    public void CompareBf16(string what, in Twin t, double ulps = 1, double floor = 1e-3)
    {
        var cpu = Get(Cpu, t.C);
        var gpu = Get(Gpu, t.G);
        // Values under floor x the largest are held to that floor's units: an fp32 sum whose last
        // bits differ between the backends is not a bf16 error where it cancels to near zero.
        double small = floor * cpu.Where(float.IsFinite).Select(v => Math.Abs((double)v)).DefaultIfEmpty(0).Max();
        int worst = -1;
        double worstUlps = 0;
        for (int i = 0; i < cpu.Length; i++)
        {
            Assert.That(BFloat16.Round(gpu[i]), Is.EqualTo(gpu[i]).Or.NaN, $"{what}[{i}] = {gpu[i]} is not a bf16 value");
            if (float.IsNaN(cpu[i]) || float.IsNaN(gpu[i]))
            {
                Assert.That(float.IsNaN(gpu[i]), Is.EqualTo(float.IsNaN(cpu[i])), $"{what}[{i}]: GPU {gpu[i]}, CPU {cpu[i]}");
                continue;
            }
            if (ulps == 0)
            {
                Assert.That(gpu[i], Is.EqualTo(BFloat16.Round(cpu[i])), $"{what}[{i}]: GPU {gpu[i]}, CPU {cpu[i]} rounds to {BFloat16.Round(cpu[i])}");
                continue;
            }
            if (gpu[i] == cpu[i]) continue;
            double unit = Math.Max(Math.Max(Math.Abs(cpu[i]), small), 1e-30) / 128; // one bf16 ulp is 2^-7 of the value's binade start, at most 2^-7 of it
            double e = Math.Abs(gpu[i] - (double)cpu[i]) / unit;
            if (e > worstUlps) (worst, worstUlps) = (i, e);
        }
        string at = worst >= 0 ? $" at [{worst}] (GPU {gpu[worst]}, CPU {cpu[worst]})" : "";
        TestContext.Out.WriteLine($"{what}: worst {worstUlps:F2} bf16 ulps{at}");
        Assert.That(worstUlps, Is.LessThanOrEqualTo(ulps), $"{what}: {worstUlps:F2} bf16 ulps{at}");
        Cpu.Upload(gpu, t.C);
    }

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

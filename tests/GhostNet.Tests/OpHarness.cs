using GhostNet.Backends;
using GhostNet.Cpu;
using NUnit.Framework;

namespace GhostNet.Tests;

/// <summary>
/// Tensors on a CPU backend for op tests, and a central finite-difference check whose loss is
/// L = sum(r * y) accumulated in double for a fixed random r.
/// </summary>
internal sealed unsafe class OpHarness : IDisposable
{
    private readonly List<Storage> _storages = [];

    public OpHarness(int seed, int threads = 2)
    {
        Seed = seed;
        Rng = new Random(seed);
        B = new CpuBackend(threads);
        TestContext.Out.WriteLine($"seed {seed}");
    }

    public int Seed { get; }
    public Random Rng { get; }
    public CpuBackend B { get; }

    public Tensor New(int n, int c, int h, int w, bool grad = true)
    {
        var s = new Storage($"t{_storages.Count}", (long)n * c * h * w);
        if (grad) s.WithGradient();
        s.Bind(B);
        _storages.Add(s);
        return new Tensor(s, 0, n, c, h, w);
    }

    public Tensor Random(int n, int c, int h, int w, float scale = 1f, bool grad = true)
    {
        var t = New(n, c, h, w, grad);
        Fill(t, scale);
        return t;
    }

    public void Fill(in Tensor t, float scale = 1f)
    {
        var s = Span(t);
        for (int i = 0; i < s.Length; i++) s[i] = (float)((Rng.NextDouble() * 2 - 1) * scale);
    }

    /// <summary>The whole storage region of a contiguous tensor, writable.</summary>
    public static Span<float> Span(in Tensor t) => new(CpuBackend.Ptr(t), checked((int)(t.N * (long)t.CTotal * t.Plane)));

    public static float[] Get(in Tensor t) => Span(t).ToArray();

    public static double Dot(in Tensor y, float[] r)
    {
        var s = Span(y);
        double acc = 0;
        for (int i = 0; i < r.Length; i++) acc += (double)s[i] * r[i];
        return acc;
    }

    public float[] RandomWeights(in Tensor like)
    {
        var r = new float[like.N * like.CTotal * like.Plane];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(Rng.NextDouble() * 2 - 1);
        return r;
    }

    /// <summary>
    /// Compares <paramref name="analytic"/> with central differences of <paramref name="loss"/> for
    /// up to <paramref name="samples"/> elements of <paramref name="x"/>. A sample whose perturbation
    /// flips <paramref name="regime"/> (a ReLU mask, say) is skipped, since the loss has a kink there.
    /// </summary>
    public void Check(string what, in Tensor x, float[] analytic, Func<double> loss, int samples = 24, float eps = 1e-3f, Func<long>? regime = null)
    {
        var xs = Span(x);
        Assert.That(analytic, Has.Length.EqualTo(xs.Length), what);
        int n = xs.Length;
        var picks = n <= samples ? Enumerable.Range(0, n).ToArray() : Enumerable.Range(0, samples).Select(_ => Rng.Next(n)).ToArray();
        double rms = Math.Sqrt(analytic.Sum(g => (double)g * g) / n);
        double worst = 0;
        int skipped = 0;
        string worstAt = "";
        foreach (int i in picks)
        {
            float orig = xs[i];
            long r0 = regime?.Invoke() ?? 0;
            xs[i] = orig + eps;
            double lp = loss();
            long rp = regime?.Invoke() ?? 0;
            xs[i] = orig - eps;
            double lm = loss();
            long rm = regime?.Invoke() ?? 0;
            xs[i] = orig;
            loss();
            if (rp != r0 || rm != r0) { skipped++; continue; }
            double numeric = (lp - lm) / (2.0 * eps);
            // fp32 forward: the loss carries ~1e-7 relative rounding, amplified by 1/eps.
            double tolerance = 2e-2 * Math.Abs(analytic[i]) + 2e-3 * rms + 1e-6 * Math.Abs(lp) / eps + 1e-6;
            double excess = Math.Abs(numeric - analytic[i]) / tolerance;
            if (excess > worst) { worst = excess; worstAt = $"element {i}: analytic {analytic[i]:G6}, numeric {numeric:G6}"; }
        }
        TestContext.Out.WriteLine($"{what}: worst error/tolerance {worst:F3} ({worstAt}), {skipped} kink samples skipped");
        Assert.That(skipped, Is.LessThanOrEqualTo(picks.Length / 2), $"{what}: too many samples cross a kink");
        Assert.That(worst, Is.LessThanOrEqualTo(1.0), $"{what}: gradient differs from finite differences at {worstAt}");
    }

    public void Dispose()
    {
        foreach (var s in _storages) s.Release();
        B.Dispose();
    }
}

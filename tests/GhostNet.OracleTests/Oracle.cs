using GhostNet.Backends;
using GhostNet.Cpu;
using NUnit.Framework;
using TorchSharp;

namespace GhostNet.OracleTests;

/// <summary>libtorch set-up and the comparison every oracle test uses: ||ours - ref|| / ||ref|| per tensor.</summary>
[SetUpFixture]
public sealed class Oracle
{
    public const double Tolerance = 1e-4;

    [OneTimeSetUp]
    public void OneThread() => torch.set_num_threads(1); // bitwise reproducible, and fast on a contended 2-core machine

    public static torch.Tensor ToTorch(float[] values, params long[] shape) => torch.tensor(values).reshape(shape);

    public static float[] FromTorch(torch.Tensor t) => t.detach().contiguous().to_type(torch.ScalarType.Float32).data<float>().ToArray();

    public static double RelativeError(float[] ours, float[] reference, double floor = 0) =>
        GhostNet.Tests.Shared.Comparison.RelativeError(ours, reference, floor);

    public static double AssertClose(string what, float[] ours, torch.Tensor reference, double tolerance = Tolerance, double floor = 0)
    {
        double error = RelativeError(ours, FromTorch(reference), floor);
        Assert.That(error, Is.LessThanOrEqualTo(tolerance), $"{what}: relative error {error:E2}");
        return error;
    }
}

/// <summary>Tensors on our CPU backend, moved in and out through the public backend API only.</summary>
internal sealed class OurTensors(int seed) : IDisposable
{
    private readonly List<Storage> _storages = [];
    public CpuBackend B { get; } = new(2);
    public Random Rng { get; } = new(seed);

    public float[] RandomValues(long count, float scale = 1f) =>
        Enumerable.Range(0, (int)count).Select(_ => (float)((Rng.NextDouble() * 2 - 1) * scale)).ToArray();

    public Tensor New(int n, int c, int h, int w)
    {
        var s = new Storage($"t{_storages.Count}", (long)n * c * h * w).WithGradient();
        s.Bind(B);
        _storages.Add(s);
        return new Tensor(s, 0, n, c, h, w);
    }

    public Tensor From(float[] values, int n, int c, int h, int w)
    {
        var t = New(n, c, h, w);
        B.Upload(values, t);
        return t;
    }

    public float[] Get(in Tensor t)
    {
        var v = new float[t.Count];
        B.Download(t, v);
        return v;
    }

    public void Dispose()
    {
        foreach (var s in _storages) s.Release();
        B.Dispose();
    }
}

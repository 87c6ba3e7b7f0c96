using BenchmarkDotNet.Attributes;
using GhostNet.Backends;
using GhostNet.Cpu;
using GhostNet.Models;

namespace GhostNet.Bench;

/// <summary>
/// A Ghost module (primary conv of kernel k to ceil(c_out / s) channels, cheap d x d depthwise
/// to the rest, each with BN + ReLU) against the standard conv + BN + ReLU with the same output
/// shape, forward and forward + backward, on layers of GhostNet (k = 1) and VGG-16 (k = 3). The
/// paper's theoretical speed-up is r_s = c k^2 / (c k^2 / s + (s - 1) / s d^2).
/// </summary>
[Config(typeof(InProcessConfig))]
public class GhostModuleBenchmarks
{
    /// <summary>name: in, out, spatial, k; batch; ratio s; cheap kernel d.</summary>
    public static IEnumerable<GhostCase> Cases()
    {
        var ghostnet = new[] { ("ghostnet 16-16@112", 16, 16, 112, 1), ("ghostnet 40-120@28", 40, 120, 28, 1), ("ghostnet 112-672@14", 112, 672, 14, 1), ("ghostnet 160-960@7", 160, 960, 7, 1) };
        var vgg = new[] { ("vgg 128-128@56", 128, 128, 56, 3), ("vgg 256-256@28", 256, 256, 28, 3), ("vgg 512-512@14", 512, 512, 14, 3) };
        foreach (var (name, cin, cout, hw, k) in ghostnet.Concat(vgg))
        foreach (int batch in new[] { 1, 32 })
        {
            yield return new GhostCase(name, cin, cout, hw, k, batch, 2, 3);
            if (batch == 32 && (name.StartsWith("ghostnet 40") || name.StartsWith("vgg 256")))
            {
                yield return new GhostCase(name, cin, cout, hw, k, batch, 3, 3);
                yield return new GhostCase(name, cin, cout, hw, k, batch, 4, 3);
                yield return new GhostCase(name, cin, cout, hw, k, batch, 2, 1);
                yield return new GhostCase(name, cin, cout, hw, k, batch, 2, 5);
            }
        }
    }

    [ParamsSource(nameof(Cases))]
    public GhostCase Case { get; set; } = null!;

    private CpuBackend _backend = null!;
    private ModuleFragment _ghost = null!, _standard = null!;

    [GlobalSetup]
    public void Setup()
    {
        _backend = new CpuBackend();
        var c = Case;
        _ghost = new ModuleFragment(_backend, c.Batch, c.In, c.Size, (pb, x) => new GhostModule(pb, "ghost", x, c.Out, c.Kernel, c.Ratio, c.Cheap, relu: true));
        _standard = new ModuleFragment(_backend, c.Batch, c.In, c.Size, (pb, x) => new ConvBnAct(pb, "standard", x, c.Out, c.Kernel));
    }

    [Benchmark(Description = "ghost fwd")] public void GhostForward() => _ghost.Forward();
    [Benchmark(Description = "ghost fwd+bwd")] public void GhostForwardBackward() => _ghost.ForwardBackward();
    [Benchmark(Description = "standard fwd")] public void StandardForward() => _standard.Forward();
    [Benchmark(Description = "standard fwd+bwd")] public void StandardForwardBackward() => _standard.ForwardBackward();

    [GlobalCleanup]
    public void Cleanup()
    {
        _ghost.Dispose();
        _standard.Dispose();
        _backend.Dispose();
    }
}

public sealed record GhostCase(string Name, int In, int Out, int Size, int Kernel, int Batch, int Ratio, int Cheap)
{
    /// <summary>The paper's r_s for this layer.</summary>
    public double TheoreticalSpeedup => (double)In * Kernel * Kernel / ((double)In * Kernel * Kernel / Ratio + (Ratio - 1.0) / Ratio * Cheap * Cheap);
    public override string ToString() => $"{Name} b{Batch} s{Ratio} d{Cheap}";
}

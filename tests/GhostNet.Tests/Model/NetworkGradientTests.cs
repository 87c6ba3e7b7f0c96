using GhostNet.Cpu;
using GhostNet.Graph;
using GhostNet.Models;
using NUnit.Framework;

namespace GhostNet.Tests.Model;

/// <summary>
/// The whole network's backward against central differences of its training-mode loss, for every
/// parameter tensor of a small GhostNet (width 0.25, 64x64, 10 classes, dropout on with a fixed
/// mask), and of a ResNet-8 and its Ghost twin. At 32x32 GhostNet's last stages are 1 x 1, batch norm there normalises over a handful of
/// values and the loss is too curved for fp32 differences; 64x64 keeps every stage at 2 x 2 or more.
/// Single elements of a deep network have gradients near the fp32 noise floor, so each
/// tensor is checked along two unit directions: the analytic gradient's own (a wrong gradient
/// cannot match its own norm) and a random one over a random sample of its elements. A step may
/// push a few ReLU inputs across zero; such a disagreement is retried with smaller steps.
/// </summary>
public unsafe class NetworkGradientTests
{
    [Test]
    public void Every_parameter_gradient_matches_finite_differences_in_train_mode() =>
        Check(new GhostNetConfig(Width: 0.25f, NumClasses: 10, DropRate: 0.2f), 64,
            "dense conv", "pointwise conv", "depthwise conv", "batch norm weight", "batch norm bias",
            "se conv_reduce", "se conv_expand", "conv_head", "classifier");

    /// <summary>ResNet-8 (one basic block a stage, so both kinds of shortcut) at 32x32: its last stage is 8 x 8.</summary>
    [Test]
    public void Every_resnet_parameter_gradient_matches_finite_differences_in_train_mode() =>
        Check(new ResNetCifarConfig(Depth: 8, NumClasses: 10, DropRate: 0.2f), 32,
            "dense conv", "batch norm weight", "batch norm bias", "classifier");

    /// <summary>Its Ghost twin with s = 3 (a depthwise channel multiplier of 2) and d = 3: a dense 3x3 primary conv, strided where the block is.</summary>
    [Test]
    public void Every_ghost_resnet_parameter_gradient_matches_finite_differences_in_train_mode() =>
        Check(new ResNetCifarConfig(Depth: 8, Ghost: true, GhostRatio: 3, NumClasses: 10), 32,
            "dense conv", "depthwise conv", "batch norm weight", "batch norm bias", "classifier");

    /// <summary>MobileNetV3-Small at 0.5x (stem fixed at 16), 64x64: hard-swish in batch norms and conv_head, the ds and ir blocks, SE on expanded maps.</summary>
    [Test]
    public void Every_mobilenetv3_parameter_gradient_matches_finite_differences_in_train_mode() =>
        Check(new MobileNetV3Config(Small: true, Width: 0.5f, NumClasses: 10, DropRate: 0.2f), 64,
            "dense conv", "pointwise conv", "depthwise conv", "batch norm weight", "batch norm bias",
            "se conv_reduce", "se conv_expand", "conv_head", "classifier");

    private static void Check(IModelConfig config, int size, params string[] expectedKinds)
    {
        int seed = TestContext.CurrentContext.Random.Next();
        TestContext.Out.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        using var backend = new CpuBackend(2);
        using var model = new GhostNetModel(config, backend, seed);
        using var plan = model.Compile(batch: 4, height: size, width: size);
        var images = Enumerable.Range(0, 4 * 3 * size * size).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        plan.SetBatch(images, [1, 7, 4, 9]);

        double Loss()
        {
            plan.Step = 0; // same dropout mask every time
            plan.Forward(training: true);
            return plan.Loss();
        }
        long ReluRegime()
        {
            var acts = new ReadOnlySpan<float>(CpuBackend.Ptr(new Backends.Tensor(plan.Activations, 0, 1, 1, 1, 1)), (int)plan.Activations.Length);
            long zeros = 0;
            foreach (float v in acts) if (v == 0) zeros++;
            return zeros;
        }

        double loss0 = Loss();
        plan.Backward();
        var kinds = new Dictionary<string, (int Checked, double Worst)>();
        int kinks = 0, retried = 0;
        var failures = new List<string>();
        foreach (var p in model.Parameters.Parameters)
        {
            var value = new Span<float>(CpuBackend.Ptr(p.Value), (int)p.Count);
            var grad = new ReadOnlySpan<float>(CpuBackend.Ptr(p.Grad), (int)p.Count).ToArray();
            var all = Enumerable.Range(0, (int)p.Count).ToArray();
            var sample = all.OrderBy(_ => rng.Next()).Take(16).ToArray();
            double gNorm = Math.Sqrt(grad.Sum(g => (double)g * g));
            var directions = new (int[] Subset, double[] Direction)[]
            {
                (all, grad.Select(g => (double)g).ToArray()),
                (sample, sample.Select(_ => rng.NextDouble() * 2 - 1).ToArray()),
            };
            foreach (var (subset, direction) in directions)
            {
                double dNorm = Math.Sqrt(direction.Sum(d => d * d));
                if (dNorm == 0) continue;
                var v = direction.Select(d => d / dNorm).ToArray();
                double analytic = subset.Select((i, j) => grad[i] * v[j]).Sum();
                // A step that pushes a ReLU input across zero adds an error that shrinks with the
                // step; a wrong gradient does not. So a disagreement is retried with smaller steps.
                double error = double.MaxValue, numeric = 0;
                foreach (float eps in Steps)
                {
                    long regime = ReluRegime();
                    Shift(value, subset, v, eps);
                    double lp = Loss(); long rp = ReluRegime();
                    Shift(value, subset, v, -2 * eps);
                    double lm = Loss(); long rm = ReluRegime();
                    Shift(value, subset, v, eps);
                    if (rp != regime || rm != regime) kinks++;
                    numeric = (lp - lm) / (2 * eps);
                    double noise = 1e-6 * loss0 / eps; // fp32 rounding of the loss, amplified by 1 / step
                    error = Math.Min(error, Math.Abs(numeric - analytic) / (0.05 * gNorm + noise));
                    if (error <= 1.0) break;
                    retried++;
                }
                string kind = KindOf(p);
                var (count, worst) = kinds.GetValueOrDefault(kind);
                kinds[kind] = (count + 1, Math.Max(worst, error));
                if (error > 1.0)
                    failures.Add($"{p.Name}: directional derivative analytic {analytic:G6}, numeric {numeric:G6} (|g| {gNorm:G4})");
            }
        }
        foreach (var (kind, (count, worst)) in kinds.OrderBy(k => k.Key))
            TestContext.Out.WriteLine($"{kind,-28} {count,4} directions, worst error/tolerance {worst:F3}");
        TestContext.Out.WriteLine($"{kinks} evaluations moved some ReLU input across zero; {retried} retried with a smaller step");
        Assert.That(failures, Is.Empty, $"{failures.Count} directions disagree");
        Assert.That(kinds.Keys, Is.SupersetOf(expectedKinds));
    }

    private static readonly float[] Steps = [1e-4f, 3e-5f, 1e-5f];

    private static void Shift(Span<float> value, int[] subset, double[] v, float by)
    {
        for (int j = 0; j < subset.Length; j++) value[subset[j]] += (float)(by * v[j]);
    }

    private static string KindOf(Parameter p) => p.Name switch
    {
        var n when n.Contains(".se.conv_reduce") => "se conv_reduce",
        var n when n.Contains(".se.conv_expand") => "se conv_expand",
        var n when n.StartsWith("conv_head") => "conv_head",
        var n when n.StartsWith("classifier") || n.StartsWith("fc.") => "classifier",
        _ when p.Shape.Length == 1 => p.Name.EndsWith(".weight") ? "batch norm weight" : "batch norm bias",
        _ when p.Shape[1] == 1 && p.Shape[2] > 1 => "depthwise conv",
        _ when p.Shape[2] == 1 => "pointwise conv",
        _ => "dense conv",
    };
}

using GhostNet.Cpu;
using GhostNet.Graph;
using GhostNet.Models;
using GhostNet.Training;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace GhostNet.OracleTests;

/// <summary>
/// Whole GhostNet, the seed's ghost_net, MobileNetV3, and the CIFAR ResNet and VGG-16 and their Ghost twins, against libtorch transcriptions loaded with the same weights: logits in
/// train and eval mode, the loss, every parameter gradient, the running statistics after a step,
/// and every parameter after 3 SGD steps (momentum 0.9, weight decay 4e-5). Dropout is 0.
/// libtorch runs in float64, so the errors measured are ours (fp32) against the exact function,
/// not the difference of two fp32 summation orders.
/// <para>
/// Every tensor must be within 1e-4 of float64, with one measured exception. A ReLU input within
/// fp32 rounding of zero can land on the other side of the kink; the gradient of every tensor
/// upstream of it then moves by a few 1e-3 (one value among the ~100 per channel of a 7x7 layer
/// at batch 2). With ~10^6 ReLU inputs per step this happens in about a third of the draws at
/// 224, to libtorch's own fp32 as much as to ours (conv_stem gradient 9.5e-3 off float64 for one
/// of five seeds tried). Such a draw is redrawn with new images, up to twenty times; a wrong
/// kernel fails every draw and is reported. A flip usually moves gradients by less than 5e-2, but
/// not always: seed 1942525513 (0.5x) puts blocks.0.0.ghost2.cheap_operation.1.weight 7.75e-2 off
/// in its first draw (a batch norm's gradient over 2 x 56 x 56 values), on the code of 2026-12-01
/// as on later code, and passes on its third. So a draw beyond 5e-2 is redrawn too, and the test
/// fails when three draws go beyond it: an error that large which is a bug repeats.
/// </para>
/// </summary>
public class NetworkOracleTests
{
    private const float Lr = 0.05f;
    private const int MaxDraws = 20;
    private const double FlipLimit = 5e-2;

    [TestCase(0.5f, 224, 2, false, 0f)]
    [TestCase(1.0f, 224, 2, true, 0.1f)]
    [TestCase(0.25f, 32, 8, true, 0f)]
    public void GhostNet_matches_libtorch(float width, int size, int batch, bool nesterov, float smoothing)
    {
        var config = new GhostNetConfig(width, NumClasses: 10, DropRate: 0f);
        MatchesLibtorch(config, new TorchGhostNet(config), size, batch, nesterov, smoothing);
    }

    /// <summary>ResNet-8 (both kinds of shortcut) and its Ghost twins: s = 2, and s = 3 with d = 5 (a channel multiplier of 2, a 5x5 cheap op).</summary>
    [TestCase(false, 2, 3, false, 0f)]
    [TestCase(true, 2, 3, true, 0.1f)]
    [TestCase(true, 3, 5, false, 0f)]
    public void A_cifar_resnet_matches_libtorch(bool ghost, int ratio, int dwSize, bool nesterov, float smoothing)
    {
        var config = new ResNetCifarConfig(Depth: 8, Ghost: ghost, GhostRatio: ratio, GhostDwSize: dwSize, NumClasses: 10);
        MatchesLibtorch(config, new TorchResNetCifar(config), 32, 4, nesterov, smoothing);
    }

    /// <summary>VGG-16 and its Ghost twin at 32x32 (the 2x2 max pools take the last stage to 2 x 2), batch 4.</summary>
    [TestCase(false, 2, 3, true, 0.1f)]
    [TestCase(true, 2, 3, false, 0f)]
    [TestCase(true, 4, 1, false, 0f)]
    public void A_cifar_vgg16_matches_libtorch(bool ghost, int ratio, int dwSize, bool nesterov, float smoothing)
    {
        var config = new VggCifarConfig(ghost, ratio, dwSize, NumClasses: 10);
        MatchesLibtorch(config, new TorchVggCifar(config), 32, 4, nesterov, smoothing);
    }

    /// <summary>The seed's ghost_net (0.5x at 64, batch 4; 1.0x at 224, batch 2), dropout 0 (the mask is ours alone).</summary>
    [TestCase(0.5f, 64, 4, false, 0f)]
    [TestCase(1.0f, 224, 2, true, 0.1f)]
    public void The_seeds_ghost_net_matches_libtorch(float width, int size, int batch, bool nesterov, float smoothing)
    {
        var config = new SeedGhostNetConfig(width, NumClasses: 10, DropRate: 0f);
        MatchesLibtorch(config, new TorchSeedGhostNet(config), size, batch, nesterov, smoothing);
    }

    /// <summary>timm's MobileNetV3 (hard-swish in batch norms and conv_head, hard-sigmoid SE): Large 1.0x at 96, batch 2; Small 0.75x at 64, batch 4.</summary>
    [TestCase(false, 1.0f, 96, 2, true, 0.1f)]
    [TestCase(true, 0.75f, 64, 4, false, 0f)]
    public void MobileNetV3_matches_libtorch(bool small, float width, int size, int batch, bool nesterov, float smoothing)
    {
        var config = new MobileNetV3Config(small, width, NumClasses: 10);
        MatchesLibtorch(config, new TorchMobileNetV3(config), size, batch, nesterov, smoothing);
    }

    private static void MatchesLibtorch(IModelConfig config, Module<Tensor, Tensor> net, int size, int batch, bool nesterov, float smoothing)
    {
        int seed = TestContext.CurrentContext.Random.Next();
        TestContext.Out.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        using var backend = new CpuBackend(2);
        using var model = new GhostNetModel(config, backend, seed);
        using var plan = model.Compile(batch, size, size);
        plan.LabelSmoothing = smoothing;
        using var scope = NewDisposeScope();
        net.to(float64);
        var state = net.state_dict();
        // TorchSharp lists all parameters before all buffers, PyTorch interleaves them per module:
        // compare the sets here (the order is pinned against timm's in the unit tests).
        Assert.That(state.Keys, Is.EquivalentTo(model.Parameters.Entries.Select(e => e.Name)), "state-dict keys");
        foreach (var e in model.Parameters.Entries) Assert.That(state[e.Name].shape, Is.EqualTo(e.Shape.Select(d => (long)d)), e.Name);
        Load(net, StateDict.Read(model.Parameters, backend));

        var worst = new Dictionary<string, double>();
        float[] images = [];
        int[] labels = [];
        var flips = new List<string>();
        var beyond = new List<string>(); // draws with an error above FlipLimit
        for (int draw = 0; ; draw++)
        {
            images = Enumerable.Range(0, batch * 3 * size * size).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            labels = Enumerable.Range(0, batch).Select(_ => rng.Next(10)).ToArray();
            worst.Clear();
            Load(net, StateDict.Read(model.Parameters, backend));
            var gradientErrors = CompareStep(model, plan, net, images, labels, smoothing, worst);
            var above = gradientErrors.Where(e => e.Error > Oracle.Tolerance).ToList();
            if (above.Count == 0) break;
            if (above.Max(e => e.Error) > FlipLimit) beyond.Add($"draw {draw}: " + Describe(above));
            Assert.That(beyond, Has.Count.LessThan(3), "gradient errors beyond what a flipped ReLU decision explains, in three draws: " + string.Join("; ", beyond));
            flips.Add($"draw {draw}: {above.Count} tensors from {above[0].Name} to {above[^1].Name} off by up to {above.Max(e => e.Error):E1}");
            Assert.That(draw + 1, Is.LessThan(MaxDraws), $"every one of {MaxDraws} draws had gradients above 1e-4: " + string.Join("; ", flips));
        }
        foreach (var f in flips) TestContext.Out.WriteLine("redrawn (a ReLU input within fp32 rounding of zero): " + f);

        // The optimiser over the whole parameter set: torch.optim.SGD is handed our gradients, so
        // this isolates momentum, weight decay and Nesterov from the forward's rounding.
        var ourSgd = new SgdOptimizer(model.Parameters, backend, new SgdOptions(0.9f, 4e-5f, nesterov));
        var torchSgd = torch.optim.SGD(net.parameters(), Lr, momentum: 0.9, weight_decay: 4e-5, nesterov: nesterov);
        Load(net, StateDict.Read(model.Parameters, backend));
        var torchParams = net.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        for (int step = 0; step < 3; step++)
        {
            if (step > 0)
            {
                plan.SetBatch(images.Select(v => -v).ToArray(), labels);
                plan.Forward(training: true);
                plan.Backward();
            }
            foreach (var p in model.Parameters.Parameters)
                torchParams[p.Name].grad = Oracle.ToTorch(Download(backend, p.Grad), torchParams[p.Name].shape).to(float64);
            ourSgd.Step(Lr);
            torchSgd.step();
        }
        CompareState(model, backend, net, worst, "parameters after 3 SGD steps", e => e is Parameter, tolerance: 1e-5);
        foreach (var (family, error) in worst.OrderBy(w => w.Key)) TestContext.Out.WriteLine($"{family,-40} worst relative error {error:E2}");
    }

    /// <summary>
    /// One training forward and backward on both sides from identical state: logits, loss,
    /// running statistics and eval logits are asserted; the gradient errors, in state-dict order,
    /// are returned for the caller to judge.
    /// </summary>
    private static List<(string Name, double Error)> CompareStep(GhostNetModel model, Plan plan, Module<Tensor, Tensor> net, float[] images, int[] labels,
        float smoothing, Dictionary<string, double> worst)
    {
        var backend = (CpuBackend)model.Backend;
        int batch = plan.Batch, size = plan.Height;
        plan.SetBatch(images, labels);
        plan.Forward(training: true);
        float ourLoss = plan.Loss();
        plan.Backward();
        net.train();
        net.zero_grad();
        var logits = net.call(Oracle.ToTorch(images, batch, 3, size, size).to(float64));
        var loss = F.cross_entropy(logits, torch.tensor(labels.Select(l => (long)l).ToArray()), label_smoothing: smoothing);
        loss.backward();
        Track(worst, "logits (train)", Oracle.AssertClose("train logits", Download(backend, plan.Logits), logits));
        Assert.That(ourLoss, Is.EqualTo(loss.item<double>()).Within(1e-5 * loss.item<double>()), "loss");
        var errors = GradientErrors(model, net, worst);
        CompareState(model, backend, net, worst, "running stats after a step", e => e is StatBuffer);
        foreach (var counter in model.Parameters.Entries.OfType<Counter>())
            Assert.That(counter.Value, Is.EqualTo(net.state_dict()[counter.Name].item<long>()), counter.Name);
        using var eval = model.Compile(batch, size, size, withGradients: false);
        eval.SetBatch(images, labels);
        eval.Forward(training: false);
        net.eval();
        using var _ = no_grad();
        Track(worst, "logits (eval)", Oracle.AssertClose("eval logits", Download(backend, eval.Logits), net.call(Oracle.ToTorch(images, batch, 3, size, size).to(float64))));
        return errors;
    }

    private static string Describe(List<(string Name, double Error)> errors) =>
        string.Join("; ", errors.OrderByDescending(e => e.Error).Take(5).Select(e => $"{e.Name} {e.Error:E2}"));

    private static List<(string Name, double Error)> GradientErrors(GhostNetModel model, Module<Tensor, Tensor> net, Dictionary<string, double> worst)
    {
        var errors = new List<(string, double)>();
        var reference = net.named_parameters().ToDictionary(p => p.name, p => Oracle.FromTorch(p.parameter.grad!));
        // Biases of a batch norm followed (through no nonlinearity) by conv + train-mode batch norm
        // have a zero gradient in exact arithmetic; measure those against the global gradient scale.
        double scale = Math.Sqrt(reference.Values.Sum(g => g.Sum(v => (double)v * v)) / reference.Count);
        foreach (var p in model.Parameters.Parameters)
        {
            var ours = new float[p.Count];
            model.Backend.Download(p.Grad, ours);
            double error = Oracle.RelativeError(ours, reference[p.Name], floor: 1e-2 * scale);
            Track(worst, "gradient of " + Family(p.Name, p.Shape), error);
            errors.Add((p.Name, error));
        }
        return errors;
    }

    private static void CompareState(GhostNetModel model, CpuBackend backend, Module<Tensor, Tensor> net, Dictionary<string, double> worst, string what,
        Func<StateEntry, bool> which, double tolerance = Oracle.Tolerance)
    {
        var state = net.state_dict();
        var ours = StateDict.Read(model.Parameters, backend).Where(t => which(model.Parameters[t.Name])).ToList();
        var reference = ours.ToDictionary(t => t.Name, t => Oracle.FromTorch(state[t.Name]));
        // A running mean behind a zero-bias batch norm and a conv is zero in exact arithmetic: use the family's scale.
        double scale = Math.Sqrt(reference.Values.Sum(r => r.Sum(v => (double)v * v)) / reference.Count);
        foreach (var t in ours)
        {
            double error = Oracle.RelativeError(t.AsFloats(), reference[t.Name], floor: 1e-2 * scale);
            Track(worst, what, error);
            Assert.That(error, Is.LessThanOrEqualTo(tolerance), $"{what}: {t.Name}");
        }
    }

    private static string Family(string name, int[] shape) => shape.Length switch
    {
        1 => name.Contains(".se.") || name.Contains(".fc.") || name.StartsWith("conv_head") || name.StartsWith("classifier") || name.StartsWith("fc.") ? "bias" : "batch norm " + name[(name.LastIndexOf('.') + 1)..],
        2 => "classifier",
        _ => shape[1] == 1 && shape[2] > 1 ? "depthwise conv" : shape[2] == 1 ? "1x1 conv" : "dense conv",
    };

    private static void Track(Dictionary<string, double> worst, string family, double error) =>
        worst[family] = Math.Max(worst.GetValueOrDefault(family), error);

    private static float[] Download(CpuBackend backend, in Backends.Tensor t)
    {
        var v = new float[t.Count];
        backend.Download(t, v);
        return v;
    }

    internal static void Load(Module<Tensor, Tensor> net, IEnumerable<SafetensorsTensor> tensors)
    {
        var state = net.state_dict();
        using var _ = no_grad();
        foreach (var t in tensors)
        {
            var target = state[t.Name];
            if (t.DType == "I64") target.fill_(t.AsInt64Scalar());
            else target.copy_(Oracle.ToTorch(t.AsFloats(), target.shape));
        }
    }
}

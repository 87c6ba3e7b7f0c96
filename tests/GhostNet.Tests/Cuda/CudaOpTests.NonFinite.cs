using GhostNet.Backends;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// NaN and infinities through every kernel, against the CPU twin class for class (NaN where
/// NaN, the same infinity, finite values within tolerance); the CPU's semantics are checked
/// against PyTorch's in Ops/NonFinite*Tests (docs/reliability.md).
/// </summary>
public partial class CudaOpTests
{
    [Test]
    public void Activations_carry_NaN_and_Inf_as_the_cpu()
    {
        using var t = GpuHarness.Create();
        var x = t.RandomNonFinite(3, 5, 7, 9, 40, 5f);
        var y = t.New(3, 5, 7, 9);
        t.Cpu.Relu(x.C, y.C); t.Gpu.Relu(x.G, y.G);
        t.CompareClasses("relu", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.ReluBackward(y.C, y.Grad.C, x.Grad.C, false); t.Gpu.ReluBackward(y.G, y.Grad.G, x.Grad.G, false);
        t.CompareClasses("relu dx", x.Grad);
        t.Cpu.HardSigmoid(x.C, y.C); t.Gpu.HardSigmoid(x.G, y.G);
        t.CompareClasses("hard sigmoid", y);
        t.Cpu.HardSigmoidBackward(x.C, y.Grad.C, x.Grad.C, false); t.Gpu.HardSigmoidBackward(x.G, y.Grad.G, x.Grad.G, false);
        t.CompareClasses("hard sigmoid dx", x.Grad);
        t.Cpu.HardSwish(x.C, y.C); t.Gpu.HardSwish(x.G, y.G);
        t.CompareClasses("hard swish", y);
        t.Cpu.HardSwishBackward(x.C, y.Grad.C, x.Grad.C, true); t.Gpu.HardSwishBackward(x.G, y.Grad.G, x.Grad.G, true);
        t.CompareClasses("hard swish dx (added)", x.Grad);
        t.Cpu.DropoutForward(x.C, y.C, 0.3f, 12345UL); t.Gpu.DropoutForward(x.G, y.G, 0.3f, 12345UL);
        t.CompareClasses("dropout", y, 0);
        t.Cpu.DropoutBackward(x.C, y.Grad.C, false, 0.3f, 12345UL); t.Gpu.DropoutBackward(x.G, y.Grad.G, false, 0.3f, 12345UL);
        t.CompareClasses("dropout dx", y.Grad, 0);
    }

    // (4, 3 or 4, 64, 64) split each channel over blocks (see Batch_norm_matches_cpu).
    [TestCase(2, 6, 5, 5, Activation.Relu)]
    [TestCase(2, 6, 5, 5, Activation.None)]
    [TestCase(4, 3, 64, 64, Activation.Relu)]
    [TestCase(4, 4, 64, 64, Activation.Relu)] // split, channel 3 holds +Inf alone, in its first chunk
    [TestCase(2, 6, 5, 5, Activation.HardSwish)]
    public void Batch_norm_carries_NaN_and_Inf_as_the_cpu(int n, int c, int h, int w, Activation act)
    {
        using var t = GpuHarness.Create();
        var x = t.Random(n, c, h, w, 2f);
        var v = GpuHarness.Get(t.Cpu, x.C);
        int plane = h * w;
        for (int ch = 0; ch < 3; ch++) v[(n - 1) * c * plane + ch * plane + 3 * ch] = NonFinite.Kinds[ch]; // last image, channels 0..2
        // Channel c - 1 starts with +Inf: the first value of a chunk (the one-pass statistics
        // shift by it) and, split, in the first chunk, not the last.
        v[(c - 1) * plane] = float.PositiveInfinity;
        t.Set(x, v);
        var y = t.New(n, c, h, w);
        var bn = BatchNormTwins.Create(t, c);
        var (gamma, beta, mean, rv) = (bn.Gamma, bn.Beta, bn.Mean, bn.RunningVar);
        BatchNormTensors P(bool gpu) => bn.On(gpu);
        var o = new BatchNormOptions(Activation: act);
        t.Poison(y);
        t.Cpu.BatchNormEvalForward(x.C, y.C, P(false), o); t.Gpu.BatchNormEvalForward(x.G, y.G, P(true), o);
        t.CompareClasses("eval y", y);
        t.Cpu.BatchNormTrainForward(x.C, y.C, P(false), o); t.Gpu.BatchNormTrainForward(x.G, y.G, P(true), o);
        t.CompareClasses("y", y);
        t.CompareClasses("saved mean", mean);
        t.CompareClasses("running var", rv);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.BatchNormBackward(x.C, y.Grad.C, x.Grad.C, false, P(false), o); t.Gpu.BatchNormBackward(x.G, y.Grad.G, x.Grad.G, false, P(true), o);
        t.CompareClasses("dx", x.Grad);
        t.CompareClasses("dgamma", gamma.Grad, WeightGradTolerance);
        t.CompareClasses("dbeta", beta.Grad, WeightGradTolerance);
    }

    // The fused pointwise conv + batch norm pairs (v2.9, v2.10): the GEMM's statistics epilogue and
    // its batch-norm operand. A non-finite input reaches every output channel at its pixel (the
    // GEMM sums all input channels). "inf": one +Inf, so the means are +-Inf and the variances NaN
    // (as on the CPU); "all": NaN, +Inf and -Inf at three pixels. 16x112x112 splits the merge.
    [TestCase(2, 5, 7, 9, 6, Activation.Relu, "inf")]
    [TestCase(2, 5, 7, 9, 6, Activation.None, "all")]
    [TestCase(1, 16, 112, 112, 24, Activation.Relu, "inf")]
    public void Pointwise_conv_with_batch_norm_carries_NaN_and_Inf_as_the_cpu(int n, int cin, int h, int w, int cout, Activation act, string kinds)
    {
        using var t = GpuHarness.Create();
        var x = t.Random(n, cin, h, w, 2f);
        var v = GpuHarness.Get(t.Cpu, x.C);
        int plane = h * w;
        if (kinds == "inf") v[plane + 5] = float.PositiveInfinity; // image 0, channel 1
        else for (int ch = 0; ch < 3; ch++) v[(n - 1) * cin * plane + ch * plane + 3 * ch] = NonFinite.Kinds[ch];
        t.Set(x, v);
        var filters = t.Random(cout, cin, 1, 1, 0.3f, 0.4f); // no zero weight: 0 x Inf would make NaN of every +-Inf
        var z = t.New(n, cout, h, w);
        var y = t.New(n, cout, h, w);
        var bn = BatchNormTwins.Create(t, cout);
        var o = new BatchNormOptions(Activation: act);
        t.Cpu.PointwiseConvBatchNormForward(x.C, filters.C, z.C, y.C, bn.Cpu, o); t.Gpu.PointwiseConvBatchNormForward(x.G, filters.G, z.G, y.G, bn.Gpu, o);
        t.CompareClasses("z", z);
        t.CompareClasses("y", y);
        t.CompareClasses("saved mean", bn.Mean);
        t.CompareClasses("saved invstd", bn.InvStd);
        t.CompareClasses("running mean", bn.RunningMean);
        t.CompareClasses("running var", bn.RunningVar);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.PointwiseConvBatchNormBackward(x.C, filters.C, z.C, y.Grad.C, x.Grad.C, false, filters.Grad.C, bn.Cpu, o);
        t.Gpu.PointwiseConvBatchNormBackward(x.G, filters.G, z.G, y.Grad.G, x.Grad.G, false, filters.Grad.G, bn.Gpu, o);
        t.CompareClasses("dx", x.Grad);
        t.CompareClasses("dW", filters.Grad, WeightGradTolerance);
        t.CompareClasses("dgamma", bn.Gamma.Grad, WeightGradTolerance);
        t.CompareClasses("dbeta", bn.Beta.Grad, WeightGradTolerance);
    }

    // The Ghost module's forward chain (v2.11): the primary pair computes its statistics and defers
    // its output, which the cheap depthwise conv writes as it applies the batch norm to its taps.
    // NaN, +Inf and -Inf in the primary's input reach the primary's output, z and y as on the CPU.
    [TestCase(2, 5, 7, 9, 6, 3, Activation.Relu)]
    [TestCase(1, 4, 40, 40, 8, 5, Activation.None)]
    public void The_ghost_forward_chain_carries_NaN_and_Inf_as_the_cpu(int n, int cin, int h, int w, int init, int k, Activation act)
    {
        using var t = GpuHarness.Create();
        var x = t.RandomNonFinite(n, cin, h, w, 3, 2f);
        var filters = t.Random(init, cin, 1, 1, 0.3f, 0.4f); // no zero weight: 0 x Inf would make NaN of every +-Inf
        var z0 = t.New(n, init, h, w);
        var concat = t.New(n, 2 * init, h, w);
        var bn0 = BatchNormTwins.Create(t, init);
        var o = new BatchNormOptions(Activation: act);
        var dw = t.Random(init, 1, k, k, 0.3f, 0.4f);
        var g = new ConvGeometry(k, 1, k / 2);
        var z = t.New(n, init, h, w);
        var bn = BatchNormTwins.Create(t, init);
        var (y0, y) = (concat.Channels(0, init), concat.Channels(init, init));
        foreach (bool gpu in new[] { false, true })
        {
            IBackend b = gpu ? t.Gpu : t.Cpu;
            Tensor On(in GpuHarness.Twin v) => gpu ? v.G : v.C;
            b.PointwiseConvBatchNormForward(On(x), On(filters), On(z0), On(y0), bn0.On(gpu), o, deferApply: true);
            b.DepthwiseConvBatchNormForward(new NormalizedInput(On(z0), On(y0), bn0.On(gpu), o), On(dw), On(z), g, On(y), bn.On(gpu), o);
        }
        t.CompareClasses("the primary's z", z0);
        t.CompareClasses("the concat (the primary's output and the cheap one's)", concat);
        t.CompareClasses("the cheap conv's z", z);
        t.CompareClasses("saved mean", bn.Mean);
        t.CompareClasses("running var", bn.RunningVar);
    }

    [Test]
    public void Pool_and_channel_scale_carry_NaN_and_Inf_as_the_cpu()
    {
        using var t = GpuHarness.Create();
        var x = t.RandomNonFinite(3, 40, 7, 7, 30);
        var pooled = t.New(3, 40, 1, 1);
        t.Cpu.GlobalAvgPool(x.C, pooled.C); t.Gpu.GlobalAvgPool(x.G, pooled.G);
        t.CompareClasses("pool", pooled);
        var gate = t.RandomNonFinite(3, 40, 1, 1, 6);
        var y = t.New(3, 40, 7, 7);
        t.Cpu.ChannelScale(x.C, gate.C, y.C); t.Gpu.ChannelScale(x.G, gate.G, y.G);
        t.CompareClasses("scale", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.ChannelScaleBackward(x.C, gate.C, y.Grad.C, x.Grad.C, false, gate.Grad.C);
        t.Gpu.ChannelScaleBackward(x.G, gate.G, y.Grad.G, x.Grad.G, false, gate.Grad.G);
        t.CompareClasses("scale dx", x.Grad);
        t.CompareClasses("scale dgate", gate.Grad, WeightGradTolerance);
        var dp = t.RandomNonFinite(3, 40, 1, 1, 6);
        t.Cpu.GlobalAvgPoolBackward(dp.C, x.Grad.C, false); t.Gpu.GlobalAvgPoolBackward(dp.G, x.Grad.G, false);
        t.CompareClasses("pool dx", x.Grad);
    }

    [Test]
    public void Convolutions_and_linear_carry_NaN_and_Inf_as_the_cpu()
    {
        using var t = GpuHarness.Create();
        var x = t.RandomNonFinite(2, 6, 9, 9, 4);
        var g = new ConvGeometry(3, 1, 1);
        var pw = t.Random(5, 6, 1, 1, 0.3f);
        var yp = t.New(2, 5, 9, 9);
        t.Cpu.PointwiseConvForward(x.C, pw.C, yp.C); t.Gpu.PointwiseConvForward(x.G, pw.G, yp.G);
        t.CompareClasses("pointwise conv", yp);
        var dw = t.Random(6, 1, 3, 3);
        var yd = t.New(2, 6, 9, 9);
        t.Cpu.DepthwiseConvForward(x.C, dw.C, yd.C, g); t.Gpu.DepthwiseConvForward(x.G, dw.G, yd.G, g);
        t.CompareClasses("depthwise conv", yd);
        var cw = t.Random(5, 6, 3, 3, 0.3f);
        var yc = t.New(2, 5, 9, 9);
        t.Cpu.ConvForward(x.C, cw.C, yc.C, g); t.Gpu.ConvForward(x.G, cw.G, yc.G, g);
        t.CompareClasses("dense conv", yc);
        var xl = t.RandomNonFinite(4, 37, 1, 1, 3);
        var lw = t.Random(10, 37, 1, 1, 0.1f);
        var lb = t.Random(10, 1, 1, 1);
        var yl = t.New(4, 10, 1, 1);
        t.Cpu.LinearForward(xl.C, lw.C, lb.C, yl.C); t.Gpu.LinearForward(xl.G, lw.G, lb.G, yl.G);
        t.CompareClasses("linear", yl);
    }

    // Rows with NaN, +Inf and -Inf logits at seeded positions, some at the label; K = 3 < 5 too,
    // where a NaN row given rank K would pass as top-5.
    [TestCase(16, 1000, 0.1f)]
    [TestCase(16, 1000, 0f)]
    [TestCase(9, 3, 0f)]
    public void Cross_entropy_and_top_k_treat_NaN_and_Inf_as_the_cpu(int n, int k, float smoothing)
    {
        using var t = GpuHarness.Create();
        var labels = t.New(n, 1, 1, 1);
        var label = Enumerable.Range(0, n).Select(_ => t.Rng.Next(k)).ToArray();
        t.SetInts(labels, label);
        var v = t.Values((long)n * k, 4f);
        for (int row = 0; row < n - 1; row++) // the last row stays finite
            v[row * k + (row % 2 == 0 ? label[row] : t.Rng.Next(k))] = NonFinite.Kinds[row / 2 % 3];
        var z = t.New(n, k, 1, 1);
        t.Set(z, v);
        var losses = t.New(n, 1, 1, 1);
        t.Cpu.SoftmaxCrossEntropy(z.C, labels.C, losses.C, z.Grad.C, smoothing);
        t.Gpu.SoftmaxCrossEntropy(z.G, labels.G, losses.G, z.Grad.G, smoothing);
        t.CompareClasses("losses", losses);
        t.CompareClasses("dz", z.Grad);
        var ranks = t.New(n, 1, 1, 1);
        t.Cpu.TopKRank(z.C, labels.C, ranks.C); t.Gpu.TopKRank(z.G, labels.G, ranks.G);
        var rc = new int[n]; var rg = new int[n];
        t.Cpu.DownloadInts(ranks.C, rc); t.Gpu.DownloadInts(ranks.G, rg);
        Assert.That(rg, Is.EqualTo(rc));
        Assert.That(rc.Where((_, row) => row < n - 1 && row / 2 % 3 == 0), Is.All.EqualTo(int.MaxValue), "NaN rows never correct");
    }

    [Test]
    public void Sgd_carries_NaN_and_Inf_as_the_cpu()
    {
        using var t = GpuHarness.Create();
        var p = t.Random(1, 1, 1, 10_007);
        var m = t.Random(1, 1, 1, 10_007, 0.1f);
        var gv = t.Values(p.C.Count);
        NonFinite.Inject(gv, t.Rng, 30, gv.Length);
        t.Set(p.Grad, gv);
        t.Cpu.SgdStep(p.C, p.Grad.C, m.C, new SgdHyper(0.05f, 0.9f, 4e-5f, true));
        t.Gpu.SgdStep(p.G, p.Grad.G, m.G, new SgdHyper(0.05f, 0.9f, 4e-5f, true));
        t.CompareClasses("parameters", p);
        t.CompareClasses("momentum", m);
    }
}

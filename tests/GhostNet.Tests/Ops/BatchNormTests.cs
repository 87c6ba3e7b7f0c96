using GhostNet.Backends;
using NUnit.Framework;

namespace GhostNet.Tests.Ops;

public class BatchNormTests
{
    private static int FreshSeed() => TestContext.CurrentContext.Random.Next();

    private sealed class Bn
    {
        public Tensor Weight, Bias, RunningMean, RunningVar, SaveMean, SaveInvStd;
        public BatchNormTensors P => new(Weight, Bias, RunningMean, RunningVar, SaveMean, SaveInvStd);

        public Bn(OpHarness t, int c)
        {
            Weight = t.Random(c, 1, 1, 1);
            Bias = t.Random(c, 1, 1, 1);
            RunningMean = t.Random(c, 1, 1, 1, grad: false);
            RunningVar = t.New(c, 1, 1, 1, grad: false);
            OpHarness.Span(RunningVar).Fill(1.5f);
            SaveMean = t.New(c, 1, 1, 1, grad: false);
            SaveInvStd = t.New(c, 1, 1, 1, grad: false);
        }
    }

    [TestCase(2, 3, 5, 5, Activation.None)]
    [TestCase(1, 5, 7, 3, Activation.Relu)]
    [TestCase(4, 6, 3, 3, Activation.Relu)]
    [TestCase(3, 7, 1, 1, Activation.None)]
    [TestCase(2, 4, 5, 3, Activation.HardSwish)]
    public void Backward_matches_finite_differences(int n, int c, int h, int w, Activation act)
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(n, c, h, w, 2f);
        SpreadNarrowChannels(x, minStd: 0.25);
        var y = t.New(n, c, h, w);
        var pre = t.New(n, c, h, w);
        var bn = new Bn(t, c);
        // gamma 2.5 spreads the pre-activations over hard-swish's three pieces (-3, 3).
        if (act == Activation.HardSwish) OpHarness.Span(bn.Weight).Fill(2.5f);
        var o = new BatchNormOptions(Activation: act);
        var r = t.RandomWeights(y);
        double Loss() { t.B.BatchNormTrainForward(x, y, bn.P, o); return OpHarness.Dot(y, r); }
        // The pieces of the activation each pre-activation lies in: a step that moves one across
        // a kink makes the difference quotient meaningless there.
        long Regime()
        {
            if (act == Activation.None) return 0;
            t.B.BatchNormTrainForward(x, pre, bn.P, new BatchNormOptions());
            return OpHarness.Get(pre).Sum(v => v > 3 ? 1L : v > 0 ? 1L << 20 : v > -3 ? 1L << 40 : 0);
        }
        Loss();
        if (act == Activation.HardSwish)
        {
            t.B.BatchNormTrainForward(x, pre, bn.P, new BatchNormOptions());
            var pv = OpHarness.Get(pre);
            Assert.That(pv.Count(v => v < -3) > 0 && pv.Count(v => v > 3) > 0 && pv.Count(v => v is > -3 and < 3) > 0, "pre-activations in all three pieces");
            Loss();
        }
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.BatchNormBackward(x, y.Grad, x.Grad, false, bn.P, o);
        t.Check("bn dx", x, OpHarness.Get(x.Grad), Loss, regime: Regime);
        t.Check("bn dgamma", bn.Weight, OpHarness.Get(bn.Weight.Grad), Loss, regime: Regime);
        t.Check("bn dbeta", bn.Bias, OpHarness.Get(bn.Bias.Grad), Loss, regime: Regime);
    }

    // A conv's kernel fuses a batch norm with no activation or ReLU only; BatchNorm2d runs one
    // with hard-swish as its own calls (ConvBn). Both backends refuse it with the op's name.
    [Test]
    public void A_conv_fused_batch_norm_refuses_hard_swish()
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(2, 3, 4, 4);
        var w = t.Random(5, 3, 1, 1);
        var z = t.New(2, 5, 4, 4);
        var y = t.New(2, 5, 4, 4);
        var bn = new Bn(t, 5);
        var ex = Assert.Throws<ArgumentException>(() => t.B.PointwiseConvBatchNormForward(x, w, z, y, bn.P, new BatchNormOptions(Activation: Activation.HardSwish)));
        Assert.That(ex!.Message, Does.StartWith("pointwise_conv_bn_fwd:").And.Contain("hard_swish"));
        var dw = t.Random(5, 1, 3, 3);
        var zd = t.New(2, 5, 4, 4);
        ex = Assert.Throws<ArgumentException>(() => t.B.DepthwiseConvBatchNormBackward(y, dw, zd, new ConvGeometry(3, 1, 1), zd, y, false, dw, bn.P, new BatchNormOptions(Activation: Activation.HardSwish)));
        Assert.That(ex!.Message, Does.StartWith("depthwise_conv_bn_bwd:"));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new BatchNormOptions(Activation: Activation.HardSigmoid), "a gate never follows a batch norm");
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new BatchNormOptions() with { Activation = Activation.Clamp01 }, "nor through with");
    }

    // The fused ReLU's backward recomputes the mask from x (no read of y). It must be the
    // forward's mask bit for bit: the unfused path (ReLU backward on the forward's y, then batch
    // norm without ReLU) gives the same numbers exactly. Planes of 21 and 9 reach the scalar tails.
    [TestCase(2, 5, 7, 3)]
    [TestCase(3, 4, 1, 9)]
    public void Fused_relu_backward_equals_relu_backward_then_plain_batch_norm_backward(int n, int c, int h, int w)
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(n, c, h, w, 2f);
        var y = t.New(n, c, h, w);
        var masked = t.New(n, c, h, w);
        var bn = new Bn(t, c);
        t.B.BatchNormTrainForward(x, y, bn.P, new BatchNormOptions(Activation: Activation.Relu));
        int zeros = OpHarness.Get(y).Count(v => v == 0);
        Assert.That(zeros, Is.InRange(1, y.Count - 1), "the mask should cut some values and pass others");
        t.RandomWeights(y).CopyTo(OpHarness.Span(y.Grad));

        t.B.BatchNormBackward(x, y.Grad, x.Grad, false, bn.P, new BatchNormOptions(Activation: Activation.Relu));
        var fused = (Dx: OpHarness.Get(x.Grad), Dgamma: OpHarness.Get(bn.Weight.Grad), Dbeta: OpHarness.Get(bn.Bias.Grad));
        t.B.ReluBackward(y, y.Grad, masked, false);
        t.B.BatchNormBackward(x, masked, x.Grad, false, bn.P, new BatchNormOptions(Activation: Activation.None));

        Assert.That(fused.Dx, Is.EqualTo(OpHarness.Get(x.Grad)), "dx");
        Assert.That(fused.Dgamma, Is.EqualTo(OpHarness.Get(bn.Weight.Grad)), "dgamma");
        Assert.That(fused.Dbeta, Is.EqualTo(OpHarness.Get(bn.Bias.Grad)), "dbeta");
    }

    // Where the recomputed mask could go wrong: one element per channel within rounding of y = 0,
    // where a multiply-then-add would decide the sign differently from the forward's fma
    // (ReluBoundary). The fused backward must still equal the unfused one exactly.
    [Test]
    public void Fused_relu_mask_is_the_forwards_where_y_is_within_rounding_of_zero()
    {
        int n = 2, c = 4, h = 5, w = 3, plane = h * w;
        using var t = new OpHarness(20261201);
        var x = t.Random(n, c, h, w, 2f);
        var y = t.New(n, c, h, w);
        var masked = t.New(n, c, h, w);
        var bn = new Bn(t, c);
        var on = new BatchNormOptions(Activation: Activation.Relu);
        t.B.BatchNormTrainForward(x, y, bn.P, on); // the statistics, which do not depend on beta
        var xs = OpHarness.Get(x);
        var candidates = Enumerable.Range(0, c).Select(ch => xs.AsSpan(plane * (c + ch), plane).ToArray()).ToArray(); // image 1's plane
        var (beta, splits) = ReluBoundary.Biases(candidates, OpHarness.Get(bn.Weight), OpHarness.Get(bn.SaveMean), OpHarness.Get(bn.SaveInvStd));
        Assert.That(splits, Is.All.True, "a bias that splits fma from multiply-add in every channel");
        beta.CopyTo(OpHarness.Span(bn.Bias));
        t.B.BatchNormTrainForward(x, y, bn.P, on);
        t.RandomWeights(y).CopyTo(OpHarness.Span(y.Grad));

        t.B.BatchNormBackward(x, y.Grad, x.Grad, false, bn.P, on);
        var fused = (Dx: OpHarness.Get(x.Grad), Dbeta: OpHarness.Get(bn.Bias.Grad));
        t.B.ReluBackward(y, y.Grad, masked, false);
        t.B.BatchNormBackward(x, masked, x.Grad, false, bn.P, new BatchNormOptions(Activation: Activation.None));
        Assert.That(fused.Dx, Is.EqualTo(OpHarness.Get(x.Grad)), "dx");
        Assert.That(fused.Dbeta, Is.EqualTo(OpHarness.Get(bn.Bias.Grad)), "dbeta");
    }

    /// <summary>
    /// Central differences with eps 1e-3 need each channel's values spread far wider than eps. A
    /// batch norm over three values 0.007 apart (seed 1624143753: 1.562, 1.570, 1.579) is so curved
    /// at that scale that the difference quotient was off by 2.5%, a failure of the check, not of
    /// the gradient. Such channels get their values pulled apart, in order, by a fixed step.
    /// </summary>
    private static void SpreadNarrowChannels(in Tensor x, double minStd)
    {
        var v = OpHarness.Span(x);
        int plane = x.Plane, m = x.N * plane, channels = x.C;
        for (int ch = 0; ch < channels; ch++)
        {
            int At(int k) => (k / plane * channels + ch) * plane + k % plane;
            double mean = 0, sq = 0;
            for (int k = 0; k < m; k++) mean += v[At(k)] / m;
            for (int k = 0; k < m; k++) sq += (v[At(k)] - mean) * (v[At(k)] - mean) / m;
            if (Math.Sqrt(sq) >= minStd) continue;
            for (int k = 0; k < m; k++) v[At(k)] += (float)((k - (m - 1) / 2.0) * 4 * minStd / m);
        }
    }

    [Test]
    public void Training_forward_normalises_and_updates_running_statistics_like_pytorch()
    {
        using var t = new OpHarness(FreshSeed());
        int n = 3, c = 4, h = 5, w = 2, m = n * h * w;
        var x = t.Random(n, c, h, w, 3f);
        var y = t.New(n, c, h, w);
        var bn = new Bn(t, c);
        var rm0 = OpHarness.Get(bn.RunningMean);
        t.B.BatchNormTrainForward(x, y, bn.P, new BatchNormOptions());
        var xs = OpHarness.Get(x); var ys = OpHarness.Get(y);
        var gamma = OpHarness.Get(bn.Weight); var beta = OpHarness.Get(bn.Bias);
        for (int ch = 0; ch < c; ch++)
        {
            var vals = Enumerable.Range(0, n).SelectMany(i => Enumerable.Range(0, h * w).Select(j => (double)xs[(i * c + ch) * h * w + j])).ToArray();
            double mean = vals.Average(), var = vals.Sum(v => (v - mean) * (v - mean)) / m;
            Assert.That(OpHarness.Span(bn.RunningMean)[ch], Is.EqualTo(0.9 * rm0[ch] + 0.1 * mean).Within(1e-5));
            Assert.That(OpHarness.Span(bn.RunningVar)[ch], Is.EqualTo(0.9 * 1.5 + 0.1 * var * m / (m - 1)).Within(1e-5));
            for (int i = 0; i < n; i++)
            for (int j = 0; j < h * w; j++)
            {
                int at = (i * c + ch) * h * w + j;
                double want = (xs[at] - mean) / Math.Sqrt(var + 1e-5) * gamma[ch] + beta[ch];
                Assert.That(ys[at], Is.EqualTo(want).Within(1e-4));
            }
        }
    }

    [Test]
    public void Eval_forward_uses_running_statistics_and_relu()
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(2, 3, 4, 4, 3f);
        var y = t.New(2, 3, 4, 4);
        var bn = new Bn(t, 3);
        t.B.BatchNormEvalForward(x, y, bn.P, new BatchNormOptions(Activation: Activation.Relu));
        var xs = OpHarness.Get(x); var ys = OpHarness.Get(y);
        var rm = OpHarness.Get(bn.RunningMean); var gamma = OpHarness.Get(bn.Weight); var beta = OpHarness.Get(bn.Bias);
        for (int i = 0; i < xs.Length; i++)
        {
            int ch = i / 16 % 3;
            double want = Math.Max(0, (xs[i] - rm[ch]) / Math.Sqrt(1.5 + 1e-5) * gamma[ch] + beta[ch]);
            Assert.That(ys[i], Is.EqualTo(want).Within(1e-5), $"element {i}");
        }
    }

    [Test]
    public void Training_on_a_single_value_per_channel_is_a_clear_error()
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(1, 3, 1, 1);
        var y = t.New(1, 3, 1, 1);
        var ex = Assert.Throws<ArgumentException>(() => t.B.BatchNormTrainForward(x, y, new Bn(t, 3).P, new BatchNormOptions()));
        Assert.That(ex!.Message, Does.Contain("more than one value per channel"));
    }
}

using GhostNet.Backends;
using NUnit.Framework;

namespace GhostNet.Tests.Ops;

/// <summary>Backward of the small ops of squeeze-excite, the residual sum and the head.</summary>
public class ElementwiseGradientTests
{
    private static int FreshSeed() => TestContext.CurrentContext.Random.Next();

    [TestCase(2, 5, 3, 3)]
    [TestCase(1, 7, 1, 1)]
    public void Relu_backward_matches_finite_differences(int n, int c, int h, int w)
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(n, c, h, w);
        var y = t.New(n, c, h, w);
        var r = t.RandomWeights(y);
        double Loss() { t.B.Relu(x, y); return OpHarness.Dot(y, r); }
        long Mask() => OpHarness.Span(y).ToArray().Count(v => v > 0);
        Loss();
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.ReluBackward(y, y.Grad, x.Grad, false);
        t.Check("relu dx", x, OpHarness.Get(x.Grad), Loss, regime: Mask);
    }

    [Test]
    public void Hard_sigmoid_is_relu6_of_x_plus_3_over_6_and_its_backward_matches()
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(3, 11, 1, 1, 5f);
        var y = t.New(3, 11, 1, 1);
        var r = t.RandomWeights(y);
        double Loss() { t.B.HardSigmoid(x, y); return OpHarness.Dot(y, r); }
        long Regime() => OpHarness.Span(x).ToArray().Sum(v => v <= -3 ? 1L : v >= 3 ? 1000L : 0);
        Loss();
        var xs = OpHarness.Get(x); var ys = OpHarness.Get(y);
        for (int i = 0; i < xs.Length; i++)
            Assert.That(ys[i], Is.EqualTo(Math.Min(6, Math.Max(0, xs[i] + 3)) / 6).Within(1e-6));
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.HardSigmoidBackward(x, y.Grad, x.Grad, false);
        t.Check("hard_sigmoid dx", x, OpHarness.Get(x.Grad), Loss, regime: Regime);
    }

    /// <summary>The seed's gate: clamp to [0, 1], NaN kept; its gradient passes on [0, 1], ends included (PyTorch's), NaN at NaN.</summary>
    [Test]
    public void Clamp01_is_clamp_to_0_1_and_its_backward_matches()
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(3, 11, 1, 1, 2f);
        var y = t.New(3, 11, 1, 1);
        var r = t.RandomWeights(y);
        double Loss() { t.B.Clamp01(x, y); return OpHarness.Dot(y, r); }
        long Regime() => OpHarness.Span(x).ToArray().Sum(v => v < 0 ? 1L : v > 1 ? 1000L : 0);
        Loss();
        var xs = OpHarness.Get(x); var ys = OpHarness.Get(y);
        for (int i = 0; i < xs.Length; i++) Assert.That(ys[i], Is.EqualTo(Math.Clamp(xs[i], 0f, 1f)));
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.Clamp01Backward(x, y.Grad, x.Grad, false);
        t.Check("clamp01 dx", x, OpHarness.Get(x.Grad), Loss, regime: Regime);

        var edges = t.New(1, 5, 1, 1);
        t.B.Upload([0f, 1f, float.NaN, -0.5f, 1.5f], edges);
        var clamped = t.New(1, 5, 1, 1);
        t.B.Clamp01(edges, clamped);
        Assert.That(OpHarness.Get(clamped), Is.EqualTo(new[] { 0f, 1f, float.NaN, 0f, 1f }));
        t.B.Upload([2f, 2f, 2f, 2f, 2f], clamped.Grad);
        t.B.Clamp01Backward(edges, clamped.Grad, edges.Grad, false);
        Assert.That(OpHarness.Get(edges.Grad), Is.EqualTo(new[] { 2f, 2f, float.NaN, 0f, 0f }));
    }

    /// <summary>MobileNetV3's hard-swish x relu6(x + 3) / 6; its gradient 0 below -3, x / 3 + 1/2 on [-3, 3], 1 above (PyTorch's hardswish_backward), NaN at NaN.</summary>
    [Test]
    public void Hard_swish_is_x_relu6_of_x_plus_3_over_6_and_its_backward_matches()
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(3, 11, 1, 1, 5f);
        var y = t.New(3, 11, 1, 1);
        var r = t.RandomWeights(y);
        double Loss() { t.B.HardSwish(x, y); return OpHarness.Dot(y, r); }
        long Regime() => OpHarness.Span(x).ToArray().Sum(v => v < -3 ? 1L : v > 3 ? 1000L : 0);
        Loss();
        var xs = OpHarness.Get(x); var ys = OpHarness.Get(y);
        for (int i = 0; i < xs.Length; i++)
            Assert.That(ys[i], Is.EqualTo(xs[i] * Math.Min(6, Math.Max(0, xs[i] + 3.0)) / 6).Within(1e-5), $"hardswish({xs[i]})");
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.HardSwishBackward(x, y.Grad, x.Grad, false);
        t.Check("hard_swish dx", x, OpHarness.Get(x.Grad), Loss, regime: Regime);

        var edges = t.New(1, 7, 1, 1);
        t.B.Upload([-3f, 3f, float.NaN, -4f, 4f, float.NegativeInfinity, float.PositiveInfinity], edges);
        var swished = t.New(1, 7, 1, 1);
        t.B.HardSwish(edges, swished);
        // -Inf * relu6(-Inf) = -Inf * 0 = NaN, as PyTorch's hardswish.
        Assert.That(OpHarness.Get(swished), Is.EqualTo(new[] { 0f, 3f, float.NaN, 0f, 4f, float.NaN, float.PositiveInfinity }));
        t.B.Upload([2f, 2f, 2f, 2f, 2f, 2f, 2f], swished.Grad);
        t.B.HardSwishBackward(edges, swished.Grad, edges.Grad, false);
        Assert.That(OpHarness.Get(edges.Grad), Is.EqualTo(new[] { -1f, 3f, float.NaN, 0f, 2f, 0f, 2f }));
    }

    [TestCase(2, 6, 5, 3)]
    [TestCase(1, 3, 7, 7)]
    public void Channel_scale_backward_matches_finite_differences(int n, int c, int h, int w)
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(n, c, h, w);
        var s = t.Random(n, c, 1, 1);
        var y = t.New(n, c, h, w);
        var r = t.RandomWeights(y);
        double Loss() { t.B.ChannelScale(x, s, y); return OpHarness.Dot(y, r); }
        Loss();
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.ChannelScaleBackward(x, s, y.Grad, x.Grad, false, s.Grad);
        t.Check("channel_scale dx", x, OpHarness.Get(x.Grad), Loss);
        t.Check("channel_scale ds", s, OpHarness.Get(s.Grad), Loss);
    }

    [TestCase(2, 5, 3, 7)]
    [TestCase(1, 4, 1, 1)]
    public void Global_average_pool_backward_matches_finite_differences(int n, int c, int h, int w)
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(n, c, h, w);
        var y = t.New(n, c, 1, 1);
        var r = t.RandomWeights(y);
        double Loss() { t.B.GlobalAvgPool(x, y); return OpHarness.Dot(y, r); }
        Loss();
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.GlobalAvgPoolBackward(y.Grad, x.Grad, false);
        t.Check("global_avg_pool dx", x, OpHarness.Get(x.Grad), Loss);
    }

    /// <summary>VGG's 2x2 stride 2; overlapping 3x3 stride-2 windows with padding; stride 1 (an input in up to nine windows).</summary>
    [TestCase(2, 3, 8, 8, 2, 2, 0)]
    [TestCase(1, 4, 7, 9, 3, 2, 1)]
    [TestCase(2, 2, 5, 5, 3, 1, 1)]
    public unsafe void Max_pool_backward_matches_finite_differences(int n, int c, int h, int w, int k, int stride, int pad)
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(n, c, h, w);
        var g = new ConvGeometry(k, stride, pad);
        var y = t.New(n, c, g.OutputSize(h), g.OutputSize(w));
        var r = t.RandomWeights(y);
        double Loss() { t.B.MaxPool(x, y, g); return OpHarness.Dot(y, r); }
        // The windows' choices: a step that changes one is retried smaller.
        long Choices()
        {
            long hash = 17;
            for (int i = 0; i < n * c; i++)
                for (int oh = 0; oh < y.H; oh++)
                    for (int ow = 0; ow < y.W; ow++)
                        hash = hash * 31 + Cpu.CpuBackend.MaxPoolArgmax(Cpu.CpuBackend.PlanePtr(x, i / c, i % c), h, w, oh, ow, g, out _);
            return hash;
        }
        Loss();
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.MaxPoolBackward(x, y.Grad, x.Grad, false, g);
        t.Check("max_pool dx", x, OpHarness.Get(x.Grad), Loss, regime: Choices);
    }

    /// <summary>PyTorch's choices: the first of equal values, a NaN over everything, a window of -inf still passes on its first input.</summary>
    [Test]
    public void Max_pool_passes_ties_to_the_first_and_propagates_NaN()
    {
        using var t = new OpHarness(FreshSeed());
        float inf = float.PositiveInfinity, nan = float.NaN;
        var x = t.New(1, 1, 2, 6);
        t.B.Upload([1, 5, 5, 2, -inf, -inf, 5, 0, nan, 3, -inf, -inf], x);
        var y = t.New(1, 1, 1, 3);
        var g = new ConvGeometry(2, 2, 0);
        t.B.MaxPool(x, y, g);
        Assert.That(OpHarness.Get(y), Is.EqualTo(new[] { 5, nan, -inf }));
        t.B.Upload([10f, 20f, 30f], y.Grad);
        t.B.Upload(Enumerable.Repeat(1f, 12).ToArray(), x.Grad);
        t.B.MaxPoolBackward(x, y.Grad, x.Grad, accumulate: true, g);
        Assert.That(OpHarness.Get(x.Grad), Is.EqualTo(new[] { 1, 11, 1, 1, 31, 1, 1, 1, 21, 1, 1, 1 }));
    }

    [TestCase(3, 2, 2, "is not a max pool window")]
    [TestCase(2, 0, 0, "is not a max pool window")]
    [TestCase(9, 1, 0, "is smaller than the window")]
    [TestCase(9, 2, 0, "is smaller than the window")]
    public void Max_pool_refuses_a_window_pytorch_refuses(int k, int stride, int pad, string message)
    {
        using var t = new OpHarness(FreshSeed());
        var g = new ConvGeometry(k, stride, pad);
        var x = t.New(1, 1, 8, 8);
        var y = t.New(1, 1, 1, 1);
        Assert.That(() => t.B.MaxPool(x, y, g), Throws.ArgumentException.With.Message.Contains(message));
    }

    [Test]
    public void Add_backward_is_the_output_gradient_for_both_inputs()
    {
        using var t = new OpHarness(FreshSeed());
        var a = t.Random(2, 3, 4, 5);
        var b = t.Random(2, 3, 4, 5);
        var y = t.New(2, 3, 4, 5);
        var r = t.RandomWeights(y);
        double Loss() { t.B.Add(a, b, y); return OpHarness.Dot(y, r); }
        Loss();
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.CopyOrAccumulate(y.Grad, a.Grad, false);
        t.B.CopyOrAccumulate(y.Grad, b.Grad, false);
        t.Check("add da", a, OpHarness.Get(a.Grad), Loss);
        t.Check("add db", b, OpHarness.Get(b.Grad), Loss);
    }

    [TestCase(0.2f)]
    [TestCase(0.5f)]
    public void Dropout_backward_matches_finite_differences_and_drops_about_p(float p)
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(8, 200, 1, 1);
        var y = t.New(8, 200, 1, 1);
        var r = t.RandomWeights(y);
        const ulong seed = 12345;
        double Loss() { t.B.DropoutForward(x, y, p, seed); return OpHarness.Dot(y, r); }
        Loss();
        double dropped = OpHarness.Get(y).Count(v => v == 0) / 1600.0;
        Assert.That(dropped, Is.EqualTo(p).Within(0.05));
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.DropoutBackward(y.Grad, x.Grad, false, p, seed);
        t.Check("dropout dx", x, OpHarness.Get(x.Grad), Loss);
    }

    [TestCase(3, 7, 5, true)]
    [TestCase(1, 130, 70, true)]
    [TestCase(4, 9, 66, false)]
    public void Linear_backward_matches_finite_differences(int n, int k, int m, bool bias)
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(n, k, 1, 1);
        var w = t.Random(m, k, 1, 1, 0.5f);
        var b = bias ? t.Random(m, 1, 1, 1) : default;
        var y = t.New(n, m, 1, 1);
        var r = t.RandomWeights(y);
        double Loss() { t.B.LinearForward(x, w, b, y); return OpHarness.Dot(y, r); }
        Loss();
        var xs = OpHarness.Get(x); var ws = OpHarness.Get(w); var ys = OpHarness.Get(y);
        var bs = bias ? OpHarness.Get(b) : new float[m];
        for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++)
        {
            double want = bs[j];
            for (int q = 0; q < k; q++) want += xs[i * k + q] * ws[j * k + q];
            Assert.That(ys[i * m + j], Is.EqualTo(want).Within(1e-4), "forward");
        }
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.LinearBackward(x, w, y.Grad, x.Grad, false, w.Grad, bias ? b.Grad : default);
        t.Check("linear dx", x, OpHarness.Get(x.Grad), Loss);
        t.Check("linear dw", w, OpHarness.Get(w.Grad), Loss);
        if (bias) t.Check("linear db", b, OpHarness.Get(b.Grad), Loss);
    }
}

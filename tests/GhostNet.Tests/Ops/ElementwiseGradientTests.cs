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

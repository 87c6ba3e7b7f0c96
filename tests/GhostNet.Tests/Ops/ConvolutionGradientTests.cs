using GhostNet.Backends;
using NUnit.Framework;

namespace GhostNet.Tests.Ops;

/// <summary>Backward of the three convolution forms against central finite differences.</summary>
public class ConvolutionGradientTests
{
    private static int FreshSeed() => TestContext.CurrentContext.Random.Next();

    // n, cin, h, w, cout, k, stride, pad
    [TestCase(1, 3, 9, 9, 4, 3, 2, 1)]
    [TestCase(2, 5, 7, 6, 6, 3, 1, 1)]
    [TestCase(2, 3, 8, 11, 5, 5, 2, 2)]
    [TestCase(3, 2, 5, 5, 3, 1, 2, 0)]
    public void Dense_conv_backward_matches_finite_differences(int n, int cin, int h, int w, int cout, int k, int s, int p)
    {
        using var t = new OpHarness(FreshSeed());
        var g = new ConvGeometry(k, s, p);
        var x = t.Random(n, cin, h, w);
        var wt = t.Random(cout, cin, k, k, 0.5f);
        var y = t.New(n, cout, g.OutputSize(h), g.OutputSize(w));
        var r = t.RandomWeights(y);
        double Loss() { t.B.ConvForward(x, wt, y, g); return OpHarness.Dot(y, r); }
        Loss();
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.ConvBackward(x, wt, y.Grad, x.Grad, false, wt.Grad, g);
        t.Check("conv dx", x, OpHarness.Get(x.Grad), Loss);
        t.Check("conv dw", wt, OpHarness.Get(wt.Grad), Loss);
    }

    [TestCase(1, 5, 5, 6, 7)]
    [TestCase(2, 13, 3, 7, 9)]
    [TestCase(3, 16, 9, 9, 24)]
    public void Pointwise_conv_backward_matches_finite_differences(int n, int cin, int h, int w, int cout)
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(n, cin, h, w);
        var wt = t.Random(cout, cin, 1, 1, 0.5f);
        var y = t.New(n, cout, h, w);
        var r = t.RandomWeights(y);
        double Loss() { t.B.PointwiseConvForward(x, wt, y); return OpHarness.Dot(y, r); }
        Loss();
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.PointwiseConvBackward(x, wt, y.Grad, x.Grad, false, wt.Grad);
        t.Check("pointwise dx", x, OpHarness.Get(x.Grad), Loss);
        t.Check("pointwise dw", wt, OpHarness.Get(wt.Grad), Loss);
    }

    // n, c, h, w, k, stride, multiplier
    [TestCase(1, 3, 7, 7, 3, 1, 1)]
    [TestCase(2, 5, 9, 8, 3, 2, 1)]
    [TestCase(2, 7, 11, 10, 5, 1, 1)]
    [TestCase(3, 6, 9, 13, 5, 2, 1)]
    [TestCase(2, 3, 6, 5, 3, 1, 2)]
    [TestCase(1, 4, 1, 1, 3, 1, 1)]
    public void Depthwise_conv_backward_matches_finite_differences(int n, int c, int h, int w, int k, int s, int m)
    {
        using var t = new OpHarness(FreshSeed());
        var g = new ConvGeometry(k, s, (k - 1) / 2);
        var x = t.Random(n, c, h, w);
        var wt = t.Random(c * m, 1, k, k, 0.5f);
        var y = t.New(n, c * m, g.OutputSize(h), g.OutputSize(w));
        var r = t.RandomWeights(y);
        double Loss() { t.B.DepthwiseConvForward(x, wt, y, g); return OpHarness.Dot(y, r); }
        Loss();
        r.CopyTo(OpHarness.Span(y.Grad));
        t.B.DepthwiseConvBackward(x, wt, y.Grad, x.Grad, false, wt.Grad, g);
        t.Check("depthwise dx", x, OpHarness.Get(x.Grad), Loss);
        t.Check("depthwise dw", wt, OpHarness.Get(wt.Grad), Loss);
    }

    [Test]
    public void Depthwise_forward_matches_a_direct_loop()
    {
        using var t = new OpHarness(FreshSeed());
        var g = new ConvGeometry(5, 2, 2);
        var x = t.Random(2, 3, 9, 8);
        var wt = t.Random(3, 1, 5, 5);
        var y = t.New(2, 3, g.OutputSize(9), g.OutputSize(8));
        t.B.DepthwiseConvForward(x, wt, y, g);
        var xs = OpHarness.Get(x); var ws = OpHarness.Get(wt); var ys = OpHarness.Get(y);
        double worst = 0;
        for (int n = 0; n < 2; n++) for (int c = 0; c < 3; c++)
        for (int oh = 0; oh < y.H; oh++) for (int ow = 0; ow < y.W; ow++)
        {
            double acc = 0;
            for (int kh = 0; kh < 5; kh++) for (int kw = 0; kw < 5; kw++)
            {
                int ih = oh * 2 - 2 + kh, iw = ow * 2 - 2 + kw;
                if (ih >= 0 && ih < 9 && iw >= 0 && iw < 8) acc += xs[((n * 3 + c) * 9 + ih) * 8 + iw] * ws[c * 25 + kh * 5 + kw];
            }
            worst = Math.Max(worst, Math.Abs(acc - ys[((n * 3 + c) * y.H + oh) * y.W + ow]));
        }
        Assert.That(worst, Is.LessThan(1e-5));
    }

    [Test]
    public void Backward_accumulates_into_the_input_gradient_when_asked()
    {
        using var t = new OpHarness(FreshSeed());
        var x = t.Random(2, 6, 5, 5);
        var wt = t.Random(4, 6, 1, 1);
        var y = t.New(2, 4, 5, 5);
        t.B.PointwiseConvForward(x, wt, y);
        t.Fill(y.Grad);
        t.B.PointwiseConvBackward(x, wt, y.Grad, x.Grad, false, wt.Grad);
        var fresh = OpHarness.Get(x.Grad);
        var prior = t.RandomWeights(x);
        prior.CopyTo(OpHarness.Span(x.Grad));
        t.B.PointwiseConvBackward(x, wt, y.Grad, x.Grad, true, wt.Grad);
        var summed = OpHarness.Get(x.Grad);
        for (int i = 0; i < fresh.Length; i++)
            Assert.That(summed[i], Is.EqualTo(prior[i] + fresh[i]).Within(1e-5), $"element {i}");
    }

    [Test]
    public void Ops_read_and_write_channel_windows_of_a_wider_buffer()
    {
        // The Ghost concat: y = pointwise(x[:, 2:7]) written into out[:, 3:7] must equal the contiguous computation.
        using var t = new OpHarness(FreshSeed());
        var wide = t.Random(2, 9, 4, 5);
        var window = wide.Channels(2, 5);
        var copy = t.New(2, 5, 4, 5);
        t.B.CopyOrAccumulate(window, copy, false);
        var wt = t.Random(4, 5, 1, 1);
        var outWide = t.Random(2, 8, 4, 5);
        var before = OpHarness.Get(outWide);
        var expected = t.New(2, 4, 4, 5);
        t.B.PointwiseConvForward(copy, wt, expected);
        t.B.PointwiseConvForward(window, wt, outWide.Channels(3, 4));
        var got = OpHarness.Get(outWide);
        var exp = OpHarness.Get(expected);
        for (int n = 0; n < 2; n++)
        for (int c = 0; c < 8; c++)
        for (int i = 0; i < 20; i++)
        {
            int at = (n * 8 + c) * 20 + i;
            float want = c is >= 3 and < 7 ? exp[(n * 4 + c - 3) * 20 + i] : before[at];
            Assert.That(got[at], Is.EqualTo(want).Within(1e-5), $"n={n} c={c} i={i}");
        }
    }
}

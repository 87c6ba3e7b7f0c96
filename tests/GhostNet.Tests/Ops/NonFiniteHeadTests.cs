using GhostNet.Backends;
using NUnit.Framework;

namespace GhostNet.Tests.Ops;

/// <summary>
/// NaN and infinities through the loss, top-k, the convolutions, the linear layer and SGD on
/// the CPU backend, against PyTorch's semantics (docs/reliability.md), except top-k: a row
/// holding a NaN is never counted correct.
/// </summary>
public class NonFiniteHeadTests
{
    private static OpHarness Fresh() => new(TestContext.CurrentContext.Random.Next());

    private static void SetLabels(OpHarness t, in Tensor labels, int[] values) => t.B.UploadInts(values, labels);

    // Rows: 0 NaN logit, 1 +Inf logit, 2 -Inf logit not the label's, 3 -Inf at the label, 4 finite.
    [TestCase(0f)]
    [TestCase(0.1f)]
    public void Cross_entropy_of_a_NaN_or_Inf_row_is_NaN_and_of_a_minus_Inf_logit_as_PyTorch(float smoothing)
    {
        using var t = Fresh();
        int n = 5, k = 10;
        var z = t.Random(n, k, 1, 1, 4f);
        var labels = t.New(n, 1, 1, 1, false);
        var label = Enumerable.Range(0, n).Select(_ => t.Rng.Next(k)).ToArray();
        SetLabels(t, labels, label);
        var zs = OpHarness.Span(z);
        zs[0 * k + (label[0] + 1) % k] = float.NaN;
        zs[1 * k + (label[1] + 2) % k] = float.PositiveInfinity;
        int dropped = (label[2] + 3) % k;
        zs[2 * k + dropped] = float.NegativeInfinity;
        zs[3 * k + label[3]] = float.NegativeInfinity;
        var losses = t.New(n, 1, 1, 1, false);
        t.B.SoftmaxCrossEntropy(z, labels, losses, z.Grad, smoothing);
        var loss = OpHarness.Get(losses);
        TestContext.Out.WriteLine($"losses {string.Join(" ", loss)}");
        Assert.That(loss[0], Is.NaN, "a NaN logit");
        Assert.That(loss[1], Is.NaN, "a +Inf logit (Inf - Inf in the softmax)");
        Assert.That(loss[3], Is.EqualTo(float.PositiveInfinity), "-Inf at the label");
        Assert.That(loss[4], Is.Not.NaN.And.Not.EqualTo(float.PositiveInfinity), "a finite row");
        if (smoothing > 0) Assert.That(loss[2], Is.EqualTo(float.PositiveInfinity), "-Inf elsewhere under label smoothing");
        else
        {
            // Without smoothing a -Inf logit only leaves the softmax: the loss of the other K - 1.
            var all = OpHarness.Get(z);
            var row = Enumerable.Range(0, k).Where(j => j != dropped).Select(j => (double)all[2 * k + j]).ToArray();
            double max = row.Max(), expected = max + Math.Log(row.Sum(v => Math.Exp(v - max))) - all[2 * k + label[2]];
            Assert.That(loss[2], Is.EqualTo(expected).Within(1e-5 * Math.Abs(expected) + 1e-6), "-Inf elsewhere, no smoothing");
        }
        var dz = OpHarness.Get(z.Grad);
        Assert.That(dz.Skip(0 * k).Take(k), Is.All.NaN, "dz of the NaN row");
        Assert.That(dz.Skip(1 * k).Take(k), Is.All.NaN, "dz of the +Inf row");
        Assert.That(dz.Skip(2 * k).Take(k).All(float.IsFinite), "dz of a row with a -Inf logit");
        Assert.That(dz.Skip(4 * k).Take(k).All(float.IsFinite), "dz of the finite row");
    }

    // Rows: 0 NaN at the label, 1 NaN elsewhere, 2 +Inf at the label, 3 -Inf at the label,
    // 4 label -1, 5 label K; K = 3 < 5, so a NaN row given rank K would still pass as top-5.
    [Test]
    public void Top_k_never_counts_a_row_with_a_NaN_or_an_invalid_label_as_correct()
    {
        using var t = Fresh();
        int n = 6, k = 3;
        var z = t.Random(n, k, 1, 1);
        var labels = t.New(n, 1, 1, 1, false);
        SetLabels(t, labels, [1, 1, 2, 0, -1, k]);
        var zs = OpHarness.Span(z);
        zs[0 * k + 1] = float.NaN;
        zs[1 * k + 2] = float.NaN;
        zs[2 * k + 2] = float.PositiveInfinity;
        zs[3 * k + 0] = float.NegativeInfinity;
        var ranks = t.New(n, 1, 1, 1, false);
        t.B.TopKRank(z, labels, ranks);
        var r = new int[n];
        t.B.DownloadInts(ranks, r);
        Assert.That(r, Is.EqualTo(new[] { int.MaxValue, int.MaxValue, 0, k - 1, int.MaxValue, int.MaxValue }));
    }

    [Test]
    public void Convolutions_and_the_linear_layer_carry_a_NaN_to_every_output_it_reaches_and_no_further()
    {
        using var t = Fresh();
        int n = 2, c = 4, h = 6, w = 6;
        var x = t.Random(n, c, h, w);
        OpHarness.Span(x)[c * h * w + 2 * h * w + 2 * w + 3] = float.NaN; // image 1, channel 2, (2, 3)
        void Reaches(string what, in Tensor y, Func<int, int, int, int, bool> reached)
        {
            var ys = OpHarness.Get(y);
            int per = y.C * y.Plane;
            for (int i = 0; i < ys.Length; i++)
            {
                int img = i / per, ch = i % per / y.Plane, p = i % y.Plane;
                Assert.That(float.IsNaN(ys[i]), Is.EqualTo(img == 1 && reached(ch, p / y.W, p % y.W, y.W)), $"{what} at image {img} channel {ch} ({p / y.W}, {p % y.W})");
            }
        }
        var pw = t.Random(5, c, 1, 1);
        var yp = t.New(n, 5, h, w);
        t.B.PointwiseConvForward(x, pw, yp);
        Reaches("pointwise conv", yp, (ch, i, j, _) => i == 2 && j == 3);
        var g = new ConvGeometry(3, 1, 1);
        var dw = t.Random(c, 1, 3, 3);
        var yd = t.New(n, c, h, w);
        t.B.DepthwiseConvForward(x, dw, yd, g);
        Reaches("depthwise conv", yd, (ch, i, j, _) => ch == 2 && Math.Abs(i - 2) <= 1 && Math.Abs(j - 3) <= 1);
        var cw = t.Random(5, c, 3, 3);
        var yc = t.New(n, 5, h, w);
        t.B.ConvForward(x, cw, yc, g);
        Reaches("dense conv", yc, (ch, i, j, _) => Math.Abs(i - 2) <= 1 && Math.Abs(j - 3) <= 1);
        var flat = new Tensor(x.Storage, 0, n, c * h * w, 1, 1);
        var lw = t.Random(7, c * h * w, 1, 1, 0.1f);
        var lb = t.Random(7, 1, 1, 1);
        var yl = t.New(n, 7, 1, 1);
        t.B.LinearForward(flat, lw, lb, yl);
        Reaches("linear", yl, (_, _, _, _) => true);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Sgd_makes_a_parameter_with_a_NaN_gradient_NaN_and_leaves_the_others_finite(bool nesterov)
    {
        using var t = Fresh();
        var p = t.Random(1, 1, 1, 37);
        var m = t.Random(1, 1, 1, 37, 0.1f, grad: false);
        t.Fill(p.Grad);
        OpHarness.Span(p.Grad)[11] = float.NaN;
        OpHarness.Span(p.Grad)[35] = float.PositiveInfinity;
        t.B.SgdStep(p, p.Grad, m, new SgdHyper(0.1f, 0.9f, 1e-4f, nesterov));
        var ps = OpHarness.Get(p);
        var ms = OpHarness.Get(m);
        Assert.That(ps.Select(NonFinite.Name).Where((_, i) => i != 11 && i != 35), Is.All.EqualTo("finite"));
        Assert.That((NonFinite.Name(ps[11]), NonFinite.Name(ms[11])), Is.EqualTo(("NaN", "NaN")));
        Assert.That((NonFinite.Name(ps[35]), NonFinite.Name(ms[35])), Is.EqualTo(("-Inf", "+Inf")));
    }
}

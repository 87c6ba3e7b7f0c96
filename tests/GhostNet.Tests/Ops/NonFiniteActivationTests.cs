using GhostNet.Backends;
using NUnit.Framework;

namespace GhostNet.Tests.Ops;

/// <summary>
/// NaN and infinities through the activations, batch norm, pooling, the squeeze-excite scale and
/// dropout on the CPU backend, against PyTorch's semantics (docs/reliability.md): no op turns a
/// NaN into a number. Planes of 45 and 25 values cover the 8-wide SIMD loops and their tails.
/// </summary>
public class NonFiniteActivationTests
{
    private static OpHarness Fresh() => new(TestContext.CurrentContext.Random.Next());

    private static float[] WithNonFinite(OpHarness t, in Tensor x, int count, int run)
    {
        var v = OpHarness.Get(x);
        NonFinite.Inject(v, t.Rng, count, run);
        v.CopyTo(OpHarness.Span(x));
        return v;
    }

    [Test]
    public void Relu_keeps_NaN_and_Inf_and_its_gradient_is_NaN_at_NaN()
    {
        using var t = Fresh();
        var x = t.Random(2, 5, 3, 3);
        var y = t.New(2, 5, 3, 3);
        var xs = WithNonFinite(t, x, 12, 45);
        t.B.Relu(x, y);
        var ys = OpHarness.Get(y);
        for (int i = 0; i < xs.Length; i++)
            Assert.That(ys[i], Is.EqualTo(float.IsNaN(xs[i]) ? float.NaN : Math.Max(xs[i], 0f)), $"relu({xs[i]}) at {i}");
        var dy = t.RandomWeights(y);
        dy.CopyTo(OpHarness.Span(y.Grad));
        t.B.ReluBackward(y, y.Grad, x.Grad, false);
        var dx = OpHarness.Get(x.Grad);
        for (int i = 0; i < xs.Length; i++)
            Assert.That(dx[i], Is.EqualTo(float.IsNaN(xs[i]) ? float.NaN : xs[i] > 0 ? dy[i] : 0f), $"relu'({xs[i]}) at {i}");
    }

    [Test]
    public void Hard_sigmoid_keeps_NaN_and_saturates_Inf_and_its_gradient_is_NaN_at_NaN()
    {
        using var t = Fresh();
        var x = t.Random(2, 5, 3, 3, 5f);
        var y = t.New(2, 5, 3, 3);
        var xs = WithNonFinite(t, x, 12, 45);
        t.B.HardSigmoid(x, y);
        var ys = OpHarness.Get(y);
        var dy = t.RandomWeights(y);
        dy.CopyTo(OpHarness.Span(y.Grad));
        t.B.HardSigmoidBackward(x, y.Grad, x.Grad, false);
        var dx = OpHarness.Get(x.Grad);
        for (int i = 0; i < xs.Length; i++)
        {
            float v = xs[i];
            Assert.That(ys[i], Is.EqualTo(float.IsNaN(v) ? float.NaN : Math.Clamp(v + 3f, 0f, 6f) / 6f).Within(1e-7), $"hardsigmoid({v}) at {i}");
            Assert.That(dx[i], Is.EqualTo(float.IsNaN(v) ? float.NaN : v > -3f && v < 3f ? dy[i] / 6f : 0f), $"hardsigmoid'({v}) at {i}");
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Batch_norm_spreads_a_NaN_or_Inf_over_its_channel_in_training_and_keeps_it_in_place_in_eval(bool relu)
    {
        using var t = Fresh();
        int n = 2, c = 4, plane = 25;
        var x = t.Random(n, c, 5, 5, 2f);
        var xs = OpHarness.Get(x);
        for (int ch = 0; ch < 3; ch++) xs[plane * (c + ch) + 7 * ch] = NonFinite.Kinds[ch]; // image 1, channels 0..2; channel 3 finite
        xs.CopyTo(OpHarness.Span(x));
        var y = t.New(n, c, 5, 5);
        var p = new BatchNormTensors(t.Random(c, 1, 1, 1, 0.5f), t.Random(c, 1, 1, 1), t.New(c, 1, 1, 1, false), t.New(c, 1, 1, 1, false),
            t.New(c, 1, 1, 1, false), t.New(c, 1, 1, 1, false));
        OpHarness.Span(p.Weight).Fill(1.5f); // gamma > 0: +Inf stays +Inf in eval
        OpHarness.Span(p.RunningVar).Fill(1f);
        var o = new BatchNormOptions(Activation: ActivationOps.ReluIf(relu));
        t.B.BatchNormTrainForward(x, y, p, o);
        var ys = OpHarness.Get(y);
        bool Channel(int i, int ch) => i % (c * plane) / plane == ch;
        for (int i = 0; i < ys.Length; i++)
            Assert.That(Channel(i, 3) ? float.IsFinite(ys[i]) : float.IsNaN(ys[i]), $"training y at {i}: {ys[i]}");
        Assert.That(OpHarness.Get(p.SaveMean), Is.EqualTo(new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, OpHarness.Get(p.SaveMean)[3] }));
        Assert.That(OpHarness.Get(p.RunningVar).Take(3), Is.All.NaN, "running var of the poisoned channels");
        var dy = t.RandomWeights(y);
        dy.CopyTo(OpHarness.Span(y.Grad));
        t.B.BatchNormBackward(x, y.Grad, x.Grad, false, p, o);
        var dx = OpHarness.Get(x.Grad);
        for (int i = 0; i < dx.Length; i++)
            Assert.That(Channel(i, 3) ? float.IsFinite(dx[i]) : float.IsNaN(dx[i]), $"dx at {i}: {dx[i]}");
        Assert.That(OpHarness.Get(p.Weight.Grad).Take(3), Is.All.NaN, "dgamma");
        // dbeta = sum of dy' reads x only through the fused ReLU's mask (as in PyTorch).
        Assert.That(OpHarness.Get(p.Bias.Grad).Take(3).Select(float.IsNaN), Is.All.EqualTo(relu), "dbeta");

        OpHarness.Span(p.RunningMean).Fill(0f);
        OpHarness.Span(p.RunningVar).Fill(1f);
        t.B.BatchNormEvalForward(x, y, p, o);
        ys = OpHarness.Get(y);
        for (int i = 0; i < ys.Length; i++)
        {
            // Running statistics are finite and gamma > 0: y has x's class, but relu(-Inf) = 0.
            string expected = relu && float.IsNegativeInfinity(xs[i]) ? "finite" : NonFinite.Name(xs[i]);
            Assert.That(NonFinite.Name(ys[i]), Is.EqualTo(expected), $"eval y({xs[i]}) at {i}: {ys[i]}");
        }
    }

    [Test]
    public void Global_average_pool_gives_NaN_or_the_Inf_of_its_plane()
    {
        using var t = Fresh();
        var x = t.Random(2, 3, 5, 5);
        var xs = OpHarness.Get(x);
        xs[3] = float.NaN;                                  // plane 0
        xs[25 + 4] = float.PositiveInfinity;                // plane 1
        xs[50 + 5] = float.NegativeInfinity;                // plane 2
        xs[75 + 1] = float.PositiveInfinity; xs[75 + 24] = float.NegativeInfinity; // plane 3: Inf - Inf
        xs.CopyTo(OpHarness.Span(x));
        var pooled = t.New(2, 3, 1, 1);
        t.B.GlobalAvgPool(x, pooled);
        var names = OpHarness.Get(pooled).Select(NonFinite.Name).ToArray();
        Assert.That(names, Is.EqualTo(new[] { "NaN", "+Inf", "-Inf", "NaN", "finite", "finite" }));
        var g = OpHarness.Span(pooled.Grad);
        g.Fill(1f);
        g[4] = float.NaN;
        t.B.GlobalAvgPoolBackward(pooled.Grad, x.Grad, false);
        var dx = OpHarness.Get(x.Grad);
        Assert.That(dx.Select((v, i) => float.IsNaN(v) == (i / 25 == 4)), Is.All.True, "dx NaN exactly on the plane of the NaN gradient");
    }

    [Test]
    public void Channel_scale_carries_NaN_from_the_input_and_from_the_gate()
    {
        using var t = Fresh();
        var x = t.Random(2, 3, 3, 3);
        var s = t.Random(2, 3, 1, 1);
        var xs = OpHarness.Get(x);
        xs[4] = float.NaN; // plane 0
        xs.CopyTo(OpHarness.Span(x));
        OpHarness.Span(s)[2] = float.NaN; // plane 2
        var y = t.New(2, 3, 3, 3);
        t.B.ChannelScale(x, s, y);
        var ys = OpHarness.Get(y);
        Assert.That(ys.Select((v, i) => float.IsNaN(v) == (i == 4 || i / 9 == 2)), Is.All.True, "y NaN at the NaN input and on the NaN gate's plane");
        OpHarness.Span(y.Grad).Fill(1f);
        t.B.ChannelScaleBackward(x, s, y.Grad, x.Grad, false, s.Grad);
        Assert.That(OpHarness.Get(s.Grad).Select(float.IsNaN), Is.EqualTo(new[] { true, false, false, false, false, false }), "dgate NaN where x held NaN");
        Assert.That(OpHarness.Get(x.Grad).Select((v, i) => float.IsNaN(v) == (i / 9 == 2)), Is.All.True, "dx NaN on the NaN gate's plane");
    }

    [Test]
    public void Dropout_keeps_NaN_and_Inf_whether_an_element_is_kept_or_dropped()
    {
        using var t = Fresh();
        const float p = 0.5f;
        ulong seed = (ulong)t.Seed;
        var x = t.New(1, 1, 1, 64);
        var y = t.New(1, 1, 1, 64);
        foreach (float v in NonFinite.Kinds)
        {
            OpHarness.Span(x).Fill(v);
            t.B.DropoutForward(x, y, p, seed);
            var ys = OpHarness.Get(y);
            for (int i = 0; i < ys.Length; i++)
            {
                bool kept = CounterRng.Uniform(seed, (ulong)i) >= p;
                Assert.That(NonFinite.Name(ys[i]), Is.EqualTo(kept ? NonFinite.Name(v) : "NaN"), $"dropout({v}) at {i}, kept {kept} (Inf * 0 is NaN)");
            }
        }
    }
}

using GhostNet.Backends;
using NUnit.Framework;

namespace GhostNet.Tests.Ops;

public class LossAndOptimizerTests
{
    private static int FreshSeed() => TestContext.CurrentContext.Random.Next();

    [TestCase(3, 10, 0f)]
    [TestCase(5, 7, 0.1f)]
    [TestCase(1, 1000, 0.1f)]
    public void Cross_entropy_matches_its_definition_and_its_gradient_matches_finite_differences(int n, int k, float smoothing)
    {
        using var t = new OpHarness(FreshSeed());
        var z = t.Random(n, k, 1, 1, 4f);
        var labels = t.New(n, 1, 1, 1, grad: false);
        var labelValues = Enumerable.Range(0, n).Select(_ => t.Rng.Next(k)).ToArray();
        t.B.UploadInts(labelValues, labels);
        var losses = t.New(n, 1, 1, 1, grad: false);
        double Loss()
        {
            t.B.SoftmaxCrossEntropy(z, labels, losses, default, smoothing);
            return OpHarness.Get(losses).Average(v => (double)v);
        }
        var zs = OpHarness.Get(z);
        Loss();
        for (int i = 0; i < n; i++)
        {
            var row = zs.Skip(i * k).Take(k).Select(v => (double)v).ToArray();
            double lse = Math.Log(row.Sum(v => Math.Exp(v)));
            double want = -(1 - smoothing) * (row[labelValues[i]] - lse) - smoothing / k * row.Sum(v => v - lse);
            Assert.That(OpHarness.Get(losses)[i], Is.EqualTo(want).Within(1e-4 * Math.Max(1, Math.Abs(want))));
        }
        t.B.SoftmaxCrossEntropy(z, labels, losses, z.Grad, smoothing);
        t.Check("cross_entropy dz", z, OpHarness.Get(z.Grad), Loss);
    }

    [Test]
    public void Cross_entropy_rejects_a_label_outside_the_classes()
    {
        using var t = new OpHarness(FreshSeed());
        var z = t.Random(2, 5, 1, 1);
        var labels = t.New(2, 1, 1, 1, grad: false);
        t.B.UploadInts([1, 5], labels);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => t.B.SoftmaxCrossEntropy(z, labels, t.New(2, 1, 1, 1), default, 0));
        Assert.That(ex!.Message, Does.Contain("label 5 of sample 1"));
    }

    [Test]
    public void Top_k_rank_counts_the_logits_above_the_true_class()
    {
        using var t = new OpHarness(FreshSeed());
        int n = 50, k = 20;
        var z = t.Random(n, k, 1, 1);
        var labels = t.New(n, 1, 1, 1, grad: false);
        var labelValues = Enumerable.Range(0, n).Select(_ => t.Rng.Next(k)).ToArray();
        t.B.UploadInts(labelValues, labels);
        var ranks = t.New(n, 1, 1, 1, grad: false);
        t.B.TopKRank(z, labels, ranks);
        var got = new int[n];
        t.B.DownloadInts(ranks, got);
        var zs = OpHarness.Get(z);
        for (int i = 0; i < n; i++)
        {
            var order = Enumerable.Range(0, k).OrderByDescending(j => zs[i * k + j]).ThenBy(j => j).ToList();
            Assert.That(got[i], Is.EqualTo(order.IndexOf(labelValues[i])), $"sample {i}");
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Sgd_follows_torch_optim_sgd_over_three_steps(bool nesterov)
    {
        using var t = new OpHarness(FreshSeed());
        int count = 37; // odd: exercises the vector body and the scalar tail
        var p = t.Random(1, 1, 1, count);
        var m = t.New(1, 1, 1, count, grad: false);
        var h = new SgdHyper(0.1f, 0.9f, 4e-5f, nesterov);
        var pRef = OpHarness.Get(p).Select(v => (double)v).ToArray();
        var buf = new double[count];
        for (int step = 0; step < 3; step++)
        {
            t.Fill(p.Grad);
            var g = OpHarness.Get(p.Grad);
            t.B.SgdStep(p, p.Grad, m, h);
            for (int i = 0; i < count; i++)
            {
                double d = g[i] + h.WeightDecay * pRef[i];
                buf[i] = step == 0 ? d : h.Momentum * buf[i] + d;
                pRef[i] -= h.LearningRate * (nesterov ? d + h.Momentum * buf[i] : buf[i]);
            }
        }
        var got = OpHarness.Get(p);
        for (int i = 0; i < count; i++) Assert.That(got[i], Is.EqualTo(pRef[i]).Within(1e-6), $"element {i}");
    }

    /// <summary>
    /// The step values a captured step reads from memory (a channel window of the plan's four):
    /// SGD's rate from LearningRateAt and dropout's seed from DropoutSeed.At replace the values
    /// passed, exactly.
    /// </summary>
    [Test]
    public void Sgd_and_dropout_read_the_rate_and_the_seed_from_memory_where_given()
    {
        using var t = new OpHarness(FreshSeed());
        var values = t.New(1, 4, 1, 1, grad: false);
        ulong seed = 0x9e3779b97f4a7c15UL;
        t.B.UploadInts([(int)(uint)seed, (int)(uint)(seed >> 32), BitConverter.SingleToInt32Bits(0.375f), 0], values);
        var x = t.Random(1, 1, 1, 101);
        var (y1, y2) = (t.New(1, 1, 1, 101), t.New(1, 1, 1, 101));
        t.B.DropoutForward(x, y1, 0.4f, new DropoutSeed(7, values.Channels(0, 2)));
        t.B.DropoutForward(x, y2, 0.4f, seed);
        Assert.That(OpHarness.Get(y1), Is.EqualTo(OpHarness.Get(y2)), "the seed in memory, not 7");
        var (p1, p2) = (t.Random(1, 1, 1, 37), t.New(1, 1, 1, 37));
        OpHarness.Get(p1).CopyTo(OpHarness.Span(p2));
        t.Fill(p1.Grad);
        OpHarness.Get(p1.Grad).CopyTo(OpHarness.Span(p2.Grad));
        var (m1, m2) = (t.New(1, 1, 1, 37, grad: false), t.New(1, 1, 1, 37, grad: false));
        var h = new SgdHyper(5f, 0.9f, 1e-4f, false);
        t.B.SgdStep(p1, p1.Grad, m1, h with { LearningRateAt = values.Channels(2, 1) });
        t.B.SgdStep(p2, p2.Grad, m2, h with { LearningRate = 0.375f });
        Assert.That(OpHarness.Get(p1), Is.EqualTo(OpHarness.Get(p2)), "the rate in memory, not 5");
    }
}

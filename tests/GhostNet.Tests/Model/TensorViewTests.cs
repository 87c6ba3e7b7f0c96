using GhostNet.Backends;
using NUnit.Framework;

namespace GhostNet.Tests.Model;

public class TensorViewTests
{
    private static (long Offset, int C0, int CTotal, string Storage) Where(in Tensor t) => (t.Offset, t.C0, t.CTotal, t.Storage.Name);

    [Test]
    public void A_view_with_a_shared_gradient_hands_out_the_other_views_gradient_and_its_windows()
    {
        var arena = new Storage("activations").WithGradient();
        var concat = new Tensor(arena, arena.Reserve(2 * 6 * 3 * 3), 2, 6, 3, 3);
        var output = concat.Channels(0, 5); // a Ghost module's output: the first oup of init + cheap channels
        var sum = new Tensor(arena, arena.Reserve(2 * 5 * 3 * 3), 2, 5, 3, 3);
        var shared = sum.WithGradientOf(output);

        Assert.That(Where(shared), Is.EqualTo(Where(sum)), "the values stay the view's own");
        Assert.That(Where(shared.Grad), Is.EqualTo(Where(output.Grad)));
        Assert.That(Where(shared.Grad), Is.Not.EqualTo(Where(sum.Grad)));
        Assert.That(Where(shared.Channels(1, 3).Grad), Is.EqualTo(Where(output.Channels(1, 3).Grad)), "a window's gradient is the same window of the shared one");
        Assert.That(Where(shared.Channels(1, 3).Channels(1, 2).Grad), Is.EqualTo(Where(output.Grad.Channels(2, 2))));
        Assert.That(Where(sum.WithGradientOf(shared).Grad), Is.EqualTo(Where(output.Grad)), "sharing is transitive");
    }

    [Test]
    public void Sharing_needs_the_same_shape_and_is_a_no_op_without_gradients()
    {
        var arena = new Storage("activations").WithGradient();
        var a = new Tensor(arena, arena.Reserve(2 * 4 * 3 * 3), 2, 4, 3, 3);
        var b = new Tensor(arena, arena.Reserve(2 * 4 * 3 * 2), 2, 4, 3, 2);
        Assert.Throws<ArgumentException>(() => a.WithGradientOf(b));

        var inference = new Storage("activations");
        var x = new Tensor(inference, inference.Reserve(36), 1, 4, 3, 3);
        var y = new Tensor(inference, inference.Reserve(36), 1, 4, 3, 3);
        var z = x.WithGradientOf(y);
        Assert.That(Where(z), Is.EqualTo(Where(x)));
        Assert.Throws<InvalidOperationException>(() => _ = z.Grad);
    }
}

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

    [Test]
    public void A_window_of_a_shared_gradient_view_allocates_nothing()
    {
        var arena = new Storage("activations").WithGradient();
        var a = new Tensor(arena, arena.Reserve(2 * 4 * 3 * 3), 2, 4, 3, 3);
        var shared = new Tensor(arena, arena.Reserve(2 * 4 * 3 * 3), 2, 4, 3, 3).WithGradientOf(a);
        _ = shared.Channels(1, 2).Grad; // warmed up
        long before = GC.GetAllocatedBytesForCurrentThread();
        var window = shared.Channels(1, 2);
        var grad = window.Grad;
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero, "a training step takes such windows (v2.16)");
        Assert.That(Where(grad), Is.EqualTo(Where(a.Channels(1, 2).Grad)));
    }

    [Test]
    public void Starting_at_another_view_means_one_buffer_offset_and_first_channel()
    {
        var arena = new Storage("activations");
        var concat = new Tensor(arena, arena.Reserve(2 * 6 * 3 * 3), 2, 6, 3, 3);
        Assert.That(concat.Channels(0, 3).StartsAt(concat), Is.True, "a window from the first channel");
        Assert.That(concat.Channels(3, 3).StartsAt(concat), Is.False);
        Assert.That(concat.Channels(3, 2).StartsAt(concat.Channels(3, 3)), Is.True, "the shapes need not agree");
        var other = new Tensor(arena, arena.Reserve(2 * 6 * 3 * 3), 2, 6, 3, 3);
        Assert.That(other.StartsAt(concat), Is.False);
        Assert.That(new Tensor(new Storage("elsewhere", 108), 0, 2, 6, 3, 3).StartsAt(new Tensor(new Storage("apart", 108), 0, 2, 6, 3, 3)), Is.False);
    }

    [Test]
    public void A_residual_sum_takes_the_first_channels_of_two_adjacent_windows()
    {
        var arena = new Storage("activations");
        var concat = new Tensor(arena, arena.Reserve(2 * 6 * 3 * 3), 2, 6, 3, 3);
        var (intrinsic, ghosts) = (concat.Channels(0, 3), concat.Channels(3, 3));
        var sum = new ResidualSum(new Tensor(arena, arena.Reserve(2 * 5 * 3 * 3), 2, 5, 3, 3), new Tensor(arena, arena.Reserve(2 * 5 * 3 * 3), 2, 5, 3, 3));
        Assert.That(Where(sum.Concat(intrinsic, ghosts)), Is.EqualTo(Where(concat)));
        Assert.That(sum.Concat(intrinsic, ghosts).C, Is.EqualTo(5), "an odd output drops the concat's last channel");
        Assert.Throws<ArgumentException>(() => sum.Concat(ghosts, intrinsic), "the second window must follow the first");
        Assert.Throws<ArgumentException>(() => sum.Concat(concat.Channels(0, 1), concat.Channels(1, 2)), "a sum wider than the two");
        var wide = new ResidualSum(sum.Addend, new Tensor(arena, arena.Reserve(2 * 2 * 3 * 3), 2, 2, 3, 3));
        Assert.Throws<ArgumentException>(() => wide.Concat(intrinsic, ghosts), "a sum narrower than the first");
        var smaller = new Tensor(arena, concat.Offset, 2, 3, 2, 2, c0: 3, cTotal: 6); // where the ghosts would be, on 2x2 planes
        Assert.Throws<ArgumentException>(() => sum.Concat(intrinsic, smaller), "planes of another size");
        Assert.Throws<ArgumentException>(() => ShapeChecks.Sum("pointwise_conv_bn_fwd", sum, intrinsic), "the sum's shape is the output's");
        Assert.Throws<ArgumentException>(() => ShapeChecks.Sum("pointwise_conv_bn_fwd", sum, concat.Channels(0, 5), deferred: true), "a deferred output cannot be summed");
    }
}

using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Training;

public class CosineScheduleTests
{
    [Test]
    public void Warms_up_linearly_then_follows_half_a_cosine_to_zero()
    {
        var s = new CosineSchedule(0.4f, totalSteps: 110, warmupSteps: 10);
        Assert.That(s.At(0), Is.EqualTo(0.04f).Within(1e-7));
        Assert.That(s.At(9), Is.EqualTo(0.4f).Within(1e-7));
        Assert.That(s.At(10), Is.EqualTo(0.4f).Within(1e-7));
        Assert.That(s.At(60), Is.EqualTo(0.2f).Within(1e-6)); // half way: cos(pi / 2) = 0
        Assert.That(s.At(110), Is.EqualTo(0f).Within(1e-7));
        for (long t = 11; t < 110; t++) Assert.That(s.At(t), Is.LessThan(s.At(t - 1)), $"step {t}");
    }

    [Test]
    public void Rejects_a_warm_up_longer_than_the_run() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new CosineSchedule(0.1f, 10, 11));
}

using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Training;

public class LrScheduleTests
{
    [Test]
    public void Cosine_warms_up_linearly_then_follows_half_a_cosine_to_zero()
    {
        var s = new LrSchedule(new LrScheduleOptions(LrScheduleKind.Cosine, 0.4f, Epochs: 11, WarmupEpochs: 1), stepsPerEpoch: 10);
        Assert.That(s.At(0), Is.EqualTo(0.04f).Within(1e-7));
        Assert.That(s.At(9), Is.EqualTo(0.4f).Within(1e-7));
        Assert.That(s.At(10), Is.EqualTo(0.4f).Within(1e-7));
        Assert.That(s.At(60), Is.EqualTo(0.2f).Within(1e-6));
        Assert.That(s.At(110), Is.EqualTo(0f).Within(1e-7));
        for (long t = 11; t < 110; t++) Assert.That(s.At(t), Is.LessThan(s.At(t - 1)), $"step {t}");
    }

    [Test]
    public void Step_divides_by_ten_every_step_epochs_like_the_imagenet_example()
    {
        var s = new LrSchedule(new LrScheduleOptions(LrScheduleKind.Step, 0.1f, Epochs: 90, StepSize: 30, Gamma: 0.1f), stepsPerEpoch: 5);
        Assert.That(s.At(0), Is.EqualTo(0.1f).Within(1e-7));
        Assert.That(s.At(30 * 5 - 1), Is.EqualTo(0.1f).Within(1e-7));
        Assert.That(s.At(30 * 5), Is.EqualTo(0.01f).Within(1e-8));
        Assert.That(s.At(60 * 5), Is.EqualTo(0.001f).Within(1e-9));
    }

    [Test]
    public void Multistep_and_linear()
    {
        var m = new LrSchedule(new LrScheduleOptions(LrScheduleKind.MultiStep, 1f, Epochs: 10, Gamma: 0.5f, Milestones: [2, 5]), stepsPerEpoch: 3);
        Assert.That(new[] { m.At(5), m.At(6), m.At(14), m.At(15) }, Is.EqualTo(new[] { 1f, 0.5f, 0.5f, 0.25f }));
        var l = new LrSchedule(new LrScheduleOptions(LrScheduleKind.Linear, 1f, Epochs: 4), stepsPerEpoch: 25);
        Assert.That(l.At(50), Is.EqualTo(0.5f).Within(1e-6));
    }

    [Test]
    public void Bad_combinations_are_clear_errors()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LrSchedule(new LrScheduleOptions(WarmupEpochs: 5, Epochs: 3), 10));
        Assert.Throws<ArgumentException>(() => _ = new LrSchedule(new LrScheduleOptions(LrScheduleKind.MultiStep, Epochs: 3), 10));
    }
}

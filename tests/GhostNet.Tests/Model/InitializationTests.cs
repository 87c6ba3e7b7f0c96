using GhostNet.Cpu;
using GhostNet.Graph;
using GhostNet.Models;
using NUnit.Framework;

namespace GhostNet.Tests.Model;

public unsafe class InitializationTests
{
    private static float[] Values(Parameter p) => new ReadOnlySpan<float>(CpuBackend.Ptr(p.Value), (int)p.Count).ToArray();

    [Test]
    public void PyTorch_default_draws_uniformly_within_one_over_sqrt_fan_in()
    {
        using var backend = new CpuBackend(1);
        using var model = new GhostNetModel(GhostNetConfig.FromArch("ghostnet_050"), backend, seed: 3);
        var w = (Parameter)model.Parameters["blocks.9.0.conv.weight"]; // [480, 80, 1, 1]: fan_in 80
        var v = Values(w);
        double bound = 1 / Math.Sqrt(80);
        Assert.That(v.Max(), Is.LessThanOrEqualTo(bound).And.GreaterThan(0.95 * bound));
        Assert.That(v.Min(), Is.GreaterThanOrEqualTo(-bound).And.LessThan(-0.95 * bound));
        double std = Math.Sqrt(v.Average(x => (double)x * x));
        Assert.That(std, Is.EqualTo(bound / Math.Sqrt(3)).Within(0.03 * bound)); // U(-b, b) has std b / sqrt(3)
        Assert.That(Values((Parameter)model.Parameters["blocks.9.0.bn1.weight"]), Is.All.EqualTo(1f));
        Assert.That(Values((Parameter)model.Parameters["blocks.9.0.bn1.bias"]), Is.All.EqualTo(0f));
    }

    [Test]
    public void Kaiming_normal_fan_out_has_std_sqrt_2_over_fan_out_for_convs_only()
    {
        using var backend = new CpuBackend(1);
        using var model = new GhostNetModel(GhostNetConfig.FromArch("ghostnet_050"), backend, seed: 4, InitScheme.KaimingNormalFanOut);
        var w = (Parameter)model.Parameters["blocks.9.0.conv.weight"]; // fan_out 480
        double std = Math.Sqrt(Values(w).Average(x => (double)x * x));
        Assert.That(std, Is.EqualTo(Math.Sqrt(2.0 / 480)).Within(0.03 * Math.Sqrt(2.0 / 480)));
        var classifier = Values((Parameter)model.Parameters["classifier.weight"]);
        Assert.That(classifier.Max(), Is.LessThanOrEqualTo(1 / Math.Sqrt(1280)), "linear layers keep PyTorch's default");
    }

    [Test]
    public void The_same_seed_gives_the_same_weights()
    {
        using var backend = new CpuBackend(1);
        using var a = new GhostNetModel(GhostNetConfig.FromArch("ghostnet_050"), backend, seed: 5);
        using var b = new GhostNetModel(GhostNetConfig.FromArch("ghostnet_050"), backend, seed: 5);
        using var c = new GhostNetModel(GhostNetConfig.FromArch("ghostnet_050"), backend, seed: 6);
        var name = "blocks.3.0.se.conv_expand.weight";
        Assert.That(Values((Parameter)a.Parameters[name]), Is.EqualTo(Values((Parameter)b.Parameters[name])));
        Assert.That(Values((Parameter)a.Parameters[name]), Is.Not.EqualTo(Values((Parameter)c.Parameters[name])));
    }
}

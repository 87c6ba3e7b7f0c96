using GhostNet.Models;
using NUnit.Framework;

namespace GhostNet.Tests.Model;

/// <summary>Counts that timm's ghostnet_050/100/130 and the paper state; see DESIGN.md "Numbers that are facts".</summary>
public class ArchitectureFactsTests
{
    [TestCase("ghostnet_050", 2_587_292L)]
    [TestCase("ghostnet_100", 5_182_508L)]
    [TestCase("ghostnet_130", 7_358_820L)]
    public void Parameter_count_matches_timm(string arch, long expected) =>
        Assert.That(GhostNetModel.CountParameters(GhostNetConfig.FromArch(arch)), Is.EqualTo(expected));

    [TestCase("ghostnet_050", 42.3e6)]
    [TestCase("ghostnet_100", 141.2e6)]
    [TestCase("ghostnet_130", 227.0e6)]
    public void Multiply_adds_at_224_match_the_paper(string arch, double expected)
    {
        long macs = GhostNetModel.Describe(GhostNetConfig.FromArch(arch), 224, 224).Sum(r => r.MultiplyAdds);
        Assert.That(Math.Abs(macs - expected) / expected, Is.LessThan(0.005), $"{arch}: {macs:N0} multiply-adds");
    }

    [Test]
    public void State_dict_has_timm_keys_in_timm_order()
    {
        var set = StateOf(GhostNetConfig.FromArch("ghostnet_100"));
        var names = set.Entries.Select(e => e.Name).ToList();
        Assert.That(names, Has.Count.EqualTo(512));
        Assert.That(names.Count(n => !n.EndsWith(".num_batches_tracked")), Is.EqualTo(432));
        Assert.That(names.Distinct().Count(), Is.EqualTo(names.Count));
        Assert.That(names[0], Is.EqualTo("conv_stem.weight"));
        Assert.That(names[1], Is.EqualTo("bn1.weight"));
        Assert.That(names[^1], Is.EqualTo("classifier.bias"));
        Assert.That(names[^2], Is.EqualTo("classifier.weight"));
        Assert.That(names[^4], Is.EqualTo("conv_head.weight"));
        Assert.That(names, Does.Contain("blocks.1.0.ghost1.primary_conv.0.weight"));
        Assert.That(names, Does.Contain("blocks.3.0.se.conv_reduce.bias"));
        Assert.That(names, Does.Contain("blocks.9.0.bn1.running_var"));
        Assert.That(names, Does.Contain("blocks.1.0.shortcut.3.num_batches_tracked"));
    }

    [Test]
    public void State_dict_shapes_match_timm()
    {
        var set = StateOf(GhostNetConfig.FromArch("ghostnet_100"));
        Assert.That(set["conv_stem.weight"].Shape, Is.EqualTo(new[] { 16, 3, 3, 3 }));
        Assert.That(set["blocks.1.0.ghost1.primary_conv.0.weight"].Shape, Is.EqualTo(new[] { 24, 16, 1, 1 }));
        Assert.That(set["blocks.1.0.ghost1.cheap_operation.0.weight"].Shape, Is.EqualTo(new[] { 24, 1, 3, 3 }));
        Assert.That(set["blocks.3.0.se.conv_reduce.weight"].Shape, Is.EqualTo(new[] { 20, 72, 1, 1 }));
        Assert.That(set["blocks.3.0.conv_dw.weight"].Shape, Is.EqualTo(new[] { 72, 1, 5, 5 }));
        Assert.That(set["blocks.9.0.conv.weight"].Shape, Is.EqualTo(new[] { 960, 160, 1, 1 }));
        Assert.That(set["conv_head.weight"].Shape, Is.EqualTo(new[] { 1280, 960, 1, 1 }));
        Assert.That(set["classifier.weight"].Shape, Is.EqualTo(new[] { 1000, 1280 }));
        Assert.That(set["bn1.num_batches_tracked"].Shape, Is.Empty);
    }

    [TestCase(16.0, 16)]
    [TestCase(8.0, 8)]
    [TestCase(10.0, 12)] // int(10 + 2) // 4 * 4 = 12
    [TestCase(9.6, 12)]  // 8 < 0.9 * 9.6, so one divisor more
    [TestCase(7.0, 8)]
    [TestCase(1.0, 4)]   // never below the divisor
    [TestCase(20.8, 20)]
    public void MakeDivisible_follows_timm(double v, int expected) =>
        Assert.That(GhostNetConfig.MakeDivisible(v), Is.EqualTo(expected));

    private static Graph.ParameterSet StateOf(GhostNetConfig config)
    {
        var set = new Graph.ParameterSet();
        _ = new GhostNetwork(new Graph.PlanBuilder(set, 1, false), config,
            new Backends.Tensor(new Backends.Storage("x", 3 * 32 * 32), 0, 1, 3, 32, 32));
        return set;
    }
}

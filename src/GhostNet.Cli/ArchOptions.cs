using System.CommandLine;
using GhostNet.Models;

namespace GhostNet.Cli;

/// <summary>The options that choose a GhostNet: --arch, or --width to override its multiplier.</summary>
internal sealed class ArchOptions
{
    public Option<string> Arch { get; } = new("--arch")
    {
        Description = "Architecture: " + string.Join(", ", GhostNetConfig.Architectures.Keys),
        DefaultValueFactory = _ => "ghostnet_100",
    };

    public Option<float?> Width { get; } = new("--width") { Description = "Width multiplier (overrides the one --arch implies)" };

    public ArchOptions() => Arch.AcceptOnlyFromAmong([.. GhostNetConfig.Architectures.Keys]);

    public void AddTo(Command command)
    {
        command.Options.Add(Arch);
        command.Options.Add(Width);
    }

    public GhostNetConfig Config(ParseResult result, int numClasses, float dropRate)
    {
        if (numClasses < 1) throw new ArgumentException("--classes must be at least 1");
        var config = GhostNetConfig.FromArch(result.GetValue(Arch)!, numClasses, dropRate);
        if (result.GetValue(Width) is not { } w) return config;
        if (!(w > 0 && w <= 10)) throw new ArgumentException("--width must lie in (0, 10]");
        return config with { Width = w };
    }
}

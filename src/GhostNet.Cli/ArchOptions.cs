using System.CommandLine;
using GhostNet.Models;

namespace GhostNet.Cli;

/// <summary>The options that choose a registered model: --arch, --width to override its multiplier, a Ghost twin's ratio and cheap-op size.</summary>
internal sealed class ArchOptions
{
    public Option<string> Arch { get; } = new("--arch")
    {
        Description = "Architecture (ghostcuda models lists them): " + string.Join(", ", ModelRegistry.Names),
        DefaultValueFactory = _ => "ghostnet_100",
    };

    public Option<float?> Width { get; } = new("--width") { Description = "Width multiplier (overrides the one --arch implies)" };
    public Option<int?> GhostRatio { get; } = new("--ghost-ratio") { Description = "A Ghost twin's ratio s: 1/s of each conv's maps are computed, the rest are cheap depthwise ones (default 2)" };
    public Option<int?> GhostDwSize { get; } = new("--ghost-dw-size") { Description = "A Ghost twin's cheap depthwise kernel d (default 3)" };

    public ArchOptions() => Arch.AcceptOnlyFromAmong([.. ModelRegistry.Names]);

    public void AddTo(Command command)
    {
        command.Options.Add(Arch);
        command.Options.Add(Width);
        command.Options.Add(GhostRatio);
        command.Options.Add(GhostDwSize);
    }

    /// <summary>The model of the flags; <paramref name="dropRate"/> null: the model's default.</summary>
    public IModelConfig Config(ParseResult result, int numClasses, float? dropRate) =>
        Create(result.GetValue(Arch)!, numClasses, dropRate, result.GetValue(Width), result.GetValue(GhostRatio), result.GetValue(GhostDwSize));

    /// <summary>The registry's model with the flags' values, each checked and refused as the flag it came from.</summary>
    public static IModelConfig Create(string arch, int numClasses, float? dropRate, float? width, int? ghostRatio, int? ghostDwSize)
    {
        if (numClasses < 1) throw new ArgumentException("--classes must be at least 1");
        if (width is { } w && !(w > 0 && w <= 10)) throw new ArgumentException("--width must lie in (0, 10]");
        if (ghostRatio is < 2 or > 16) throw new ArgumentException("--ghost-ratio must lie in 2..16");
        if (ghostDwSize is { } d && (d < 1 || d > 9 || d % 2 == 0)) throw new ArgumentException("--ghost-dw-size must be odd, 1..9");
        try
        {
            return ModelRegistry.Create(arch, new ModelOptions(numClasses, dropRate, width, ghostRatio, ghostDwSize));
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"--arch {arch}: {e.Message}", e);
        }
    }
}

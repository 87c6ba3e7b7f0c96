using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Models;

/// <summary>One Ghost bottleneck of the configuration table: k, exp (t), c, SE ratio, s.</summary>
public readonly record struct BottleneckConfig(int Kernel, int Expansion, int Channels, float SeRatio, int Stride);

/// <summary>
/// GhostNet (v1) as timm's ghostnet_050/100/130: the official stage table, scaled by
/// <see cref="Width"/> through <see cref="MakeDivisible"/> to multiples of 4.
/// </summary>
public sealed record GhostNetConfig(float Width = 1.0f, int NumClasses = 1000, float DropRate = 0.2f, int InChannels = 3) : IModelConfig
{
    public const int HeadChannels = 1280;
    public const int StemChannels = 16;

    /// <summary>The stages of timm's _create_ghostnet: blocks.0 .. blocks.8; blocks.9 is the 1x1 ConvBnAct.</summary>
    public static IReadOnlyList<BottleneckConfig[]> Stages { get; } =
    [
        [new(3, 16, 16, 0, 1)],
        [new(3, 48, 24, 0, 2)],
        [new(3, 72, 24, 0, 1)],
        [new(5, 72, 40, 0.25f, 2)],
        [new(5, 120, 40, 0.25f, 1)],
        [new(3, 240, 80, 0, 2)],
        [new(3, 200, 80, 0, 1), new(3, 184, 80, 0, 1), new(3, 184, 80, 0, 1), new(3, 480, 112, 0.25f, 1), new(3, 672, 112, 0.25f, 1)],
        [new(5, 672, 160, 0.25f, 2)],
        [new(5, 960, 160, 0, 1), new(5, 960, 160, 0.25f, 1), new(5, 960, 160, 0, 1), new(5, 960, 160, 0.25f, 1)],
    ];

    public static IReadOnlyDictionary<string, float> Architectures { get; } = new Dictionary<string, float>
    {
        ["ghostnet_050"] = 0.5f,
        ["ghostnet_100"] = 1.0f,
        ["ghostnet_130"] = 1.3f,
    };

    /// <summary>The registry's entries: timm's three widths; --width scales any of them.</summary>
    internal static IEnumerable<RegisteredModel> Registrations =>
        Architectures.Select(a => new RegisteredModel(a.Key, $"timm's GhostNet {a.Value:0.0#}x (Han et al. 2020)", 224, 1000, o =>
        {
            ModelRegistry.Refuse(a.Key, "ghost ratio", o.GhostRatio);
            ModelRegistry.Refuse(a.Key, "ghost dw size", o.GhostDwSize);
            return new GhostNetConfig(o.Width ?? a.Value, o.NumClasses, o.DropRate ?? 0.2f, o.InChannels);
        }));

    /// <summary>The registered name of this width, or ghostnet_100 with its width overridden.</summary>
    public string Arch => Architectures.FirstOrDefault(a => a.Value == Width).Key ?? "ghostnet_100";

    public ModelOptions Options => new(NumClasses, DropRate, Width, InChannels: InChannels);

    public string Title => $"GhostNet width {Width}";

    public Network Build(PlanBuilder pb, Tensor input) => new GhostNetwork(pb, this, input);

    public static GhostNetConfig FromArch(string arch, int numClasses = 1000, float dropRate = 0.2f) =>
        Architectures.TryGetValue(arch, out float width)
            ? new GhostNetConfig(width, numClasses, dropRate)
            : throw new ArgumentException($"unknown architecture '{arch}'; known: {string.Join(", ", Architectures.Keys)}");

    /// <summary>
    /// timm's make_divisible: round v to the nearest multiple of the divisor, at least the
    /// divisor, and never more than 10% below v.
    /// </summary>
    public static int MakeDivisible(double v, int divisor = 4, int? minValue = null, double roundLimit = 0.9)
    {
        int min = minValue ?? divisor;
        int rounded = Math.Max(min, (int)(v + divisor / 2.0) / divisor * divisor);
        if (rounded < roundLimit * v) rounded += divisor;
        return rounded;
    }

    public int Channels(int baseChannels) => MakeDivisible(baseChannels * (double)Width);

    public void Validate()
    {
        ModelChecks.Width(Width);
        ModelChecks.Common(NumClasses, DropRate, InChannels);
    }
}

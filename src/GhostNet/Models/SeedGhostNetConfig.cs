using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// The seed's own ghost_net.py (the early iamhankai/ghostnet.pytorch), not timm's network: its
/// squeeze-excite is two nn.Linear layers (C to C // 4, ReLU, back to C) gated by clamp(0, 1);
/// its shortcut's depthwise conv is always 3x3 and followed by a ReLU; its head is a 1x1 conv,
/// batch norm, ReLU and average pool (squeeze), then Linear(960, 1280, no bias), BatchNorm1d,
/// ReLU, dropout and the classifier. Keys are its nn.Sequential indices: features.0 (the stem),
/// features.1-16 (conv.0 ghost1, conv.1 the strided depthwise conv, conv.2.fc the SE, conv.3
/// ghost2, shortcut.0-2), squeeze.0-1, classifier.0, .1, .4. 5,180,840 parameters at width 1.
/// It starts as the seed's _initialize_weights does (Kaiming-normal conv weights, fan out) unless --init says otherwise.
/// </summary>
public sealed record SeedGhostNetConfig(float Width = 1f, int NumClasses = 1000, float DropRate = 0.2f, int InChannels = 3) : IModelConfig
{
    public const string Name = "ghost_net";
    public const int HeadChannels = 1280;

    /// <summary>The seed's cfgs: k, exp (t), c, SE, s, one row per block.</summary>
    public static readonly (int Kernel, int Expansion, int Channels, bool Se, int Stride)[] Blocks =
    [
        (3, 16, 16, false, 1), (3, 48, 24, false, 2), (3, 72, 24, false, 1), (5, 72, 40, true, 2), (5, 120, 40, true, 1),
        (3, 240, 80, false, 2), (3, 200, 80, false, 1), (3, 184, 80, false, 1), (3, 184, 80, false, 1), (3, 480, 112, true, 1),
        (3, 672, 112, true, 1), (5, 672, 160, true, 2), (5, 960, 160, false, 1), (5, 960, 160, true, 1), (5, 960, 160, false, 1),
        (5, 960, 160, true, 1),
    ];

    /// <summary>Its GhostBottleneck's names and forms: conv.0-3, a 3x3 depthwise shortcut with ReLU, SELayer(C, reduction 4).</summary>
    public static readonly GhostBottleneckLayout Layout = new(".conv.0", ".conv.1.0", ".conv.1.1", ".conv.2", ".conv.3",
        ".shortcut.0.0", ".shortcut.0.1", ".shortcut.1", ".shortcut.2")
    {
        ShortcutKernel = 3,
        ShortcutRelu = true,
        MakeSe = (pb, name, x, _) => new SqueezeExcite(pb, name, x, x.C / 4, ".fc.0", ".fc.2", weightsAsConv: false, Activation.Clamp01),
    };

    internal static IEnumerable<RegisteredModel> Registrations =>
    [
        new(Name, "the seed's ghost_net.py (Linear SE with a clamp gate, ReLU shortcuts, BatchNorm1d head; --width for its width_mult)", 224, 1000, o =>
        {
            ModelRegistry.Refuse(Name, "ghost ratio", o.GhostRatio);
            ModelRegistry.Refuse(Name, "ghost dw size", o.GhostDwSize);
            return new SeedGhostNetConfig(o.Width ?? 1f, o.NumClasses, o.DropRate ?? 0.2f, o.InChannels);
        }),
    ];

    public string Arch => Name;
    public InitScheme DefaultInit => InitScheme.KaimingNormalFanOut;
    public string Head => "classifier.4.";
    public ModelOptions Options => new(NumClasses, DropRate, Width, InChannels: InChannels);
    public string Title => $"the seed's ghost_net width {Width}";

    public int Channels(int baseChannels) => GhostNetConfig.MakeDivisible(baseChannels * (double)Width);

    public void Validate()
    {
        ModelChecks.Width(Width);
        ModelChecks.Common(NumClasses, DropRate, InChannels);
    }

    public Network Build(PlanBuilder pb, Tensor input) => new SeedGhostNet(pb, this, input);

    private sealed class SeedGhostNet : Network
    {
        public SeedGhostNet(PlanBuilder pb, SeedGhostNetConfig config, Tensor input) : base(config, input)
        {
            var stem = new Conv2d(pb, "features.0.0", input, config.Channels(16), 3, 2, 1);
            var x = Add(new ConvBn(stem, new BatchNorm2d(pb, "features.0.1", stem.Output, Activation.Relu))).Output;
            for (int i = 0; i < Blocks.Length; i++)
            {
                var b = Blocks[i];
                x = Add(new GhostBottleneck(pb, $"features.{i + 1}", x, config.Channels(b.Expansion), config.Channels(b.Channels), b.Kernel, b.Stride,
                    b.Se ? 0.25f : 0f, Layout)).Output;
            }
            var squeeze = new Conv2d(pb, "squeeze.0", x, config.Channels(Blocks[^1].Expansion), 1, 1, 0);
            x = Add(new ConvBn(squeeze, new BatchNorm2d(pb, "squeeze.1", squeeze.Output, Activation.Relu))).Output;
            x = Add(new GlobalAvgPool(pb, "squeeze.3", x)).Output;
            // Linear, then BatchNorm1d over (N, 1280): batch norm of N x 1280 x 1 x 1, the same statistics.
            x = Add(new Linear(pb, "classifier.0", x, HeadChannels, bias: false)).Output;
            x = Add(new BatchNorm2d(pb, "classifier.1", x, Activation.Relu)).Output;
            if (config.DropRate > 0) x = Add(new Dropout(pb, x, config.DropRate)).Output;
            Logits = Add(new Linear(pb, "classifier.4", x, config.NumClasses)).Output;
        }
    }
}

using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// MobileNetV3 (Howard et al. 2019) as timm's mobilenetv3_large_* / mobilenetv3_small_*: the
/// paper's comparison network for GhostNet. A 3x3 stride-2 stem (batch norm, hard-swish), timm's
/// arch_def stages of depthwise-separable (ds), inverted-residual (ir) and conv-bn-act (cn)
/// blocks, ReLU in the early stages and hard-swish after, squeeze-excite with a hard-sigmoid gate
/// and make_divisible(mid / 4, 8) channels on the expanded maps, then timm's "efficient head":
/// global pool, 1x1 conv_head with bias (1280 or 1024), hard-swish, dropout, classifier.
/// Channels scale by round_channels(c * width, 8); the stem stays 16 below width 0.75 (fix_stem).
/// Keys are timm's: conv_stem, bn1, blocks.s.i.{conv_dw, bn1, se, conv_pw, bn2} (ds),
/// blocks.s.i.{conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3} (ir), blocks.s.0.{conv, bn1} (cn),
/// conv_head, classifier. 5,483,032 parameters for large at width 1 and 1000 classes.
/// It starts Kaiming-normal with PyTorch's fan out (out x k x k), not as timm's _init_weight_goog:
/// timm divides a depthwise conv's fan out by its groups (its weights start sqrt(C) times larger),
/// draws the SE convs and conv_head N(0, 2 / fan_out) with zero biases (here PyTorch's default
/// uniform: they are linear layers) and zeroes the classifier's bias. Trained or pretrained
/// weights are the same network; only a run from scratch starts differently.
/// </summary>
public sealed record MobileNetV3Config(bool Small = false, float Width = 1f, int NumClasses = 1000, float DropRate = 0f, int InChannels = 3) : IModelConfig
{
    /// <summary>One row of timm's arch_def: block type, kernel, stride, expansion, output channels, SE, hard-swish (else ReLU).</summary>
    public readonly record struct Block(char Type, int Kernel, int Stride, double Expansion, int Channels, bool Se, bool HardSwish);

    private static Block Ds(int k, int s, int c, bool se = false) => new('d', k, s, 1, c, se, false);
    private static Block Ir(int k, int s, double e, int c, bool se, bool hs) => new('i', k, s, e, c, se, hs);
    private static Block Cn(int c) => new('c', 1, 1, 1, c, false, true);

    /// <summary>timm's _gen_mobilenet_v3 arch_def for large ('ds_r1_k3_s1_e1_c16_nre', ...), one stage per row, repeats spelled out.</summary>
    public static IReadOnlyList<Block[]> LargeStages { get; } =
    [
        [Ds(3, 1, 16)],
        [Ir(3, 2, 4, 24, false, false), Ir(3, 1, 3, 24, false, false)],
        [Ir(5, 2, 3, 40, true, false), Ir(5, 1, 3, 40, true, false), Ir(5, 1, 3, 40, true, false)],
        [Ir(3, 2, 6, 80, false, true), Ir(3, 1, 2.5, 80, false, true), Ir(3, 1, 2.3, 80, false, true), Ir(3, 1, 2.3, 80, false, true)],
        [Ir(3, 1, 6, 112, true, true), Ir(3, 1, 6, 112, true, true)],
        [Ir(5, 2, 6, 160, true, true), Ir(5, 1, 6, 160, true, true), Ir(5, 1, 6, 160, true, true)],
        [Cn(960)],
    ];

    /// <summary>timm's arch_def for small ('ds_r1_k3_s2_e1_c16_se0.25_nre', ...).</summary>
    public static IReadOnlyList<Block[]> SmallStages { get; } =
    [
        [Ds(3, 2, 16, se: true)],
        [Ir(3, 2, 4.5, 24, false, false), Ir(3, 1, 3.67, 24, false, false)],
        [Ir(5, 2, 4, 40, true, true), Ir(5, 1, 6, 40, true, true), Ir(5, 1, 6, 40, true, true)],
        [Ir(5, 1, 3, 48, true, true), Ir(5, 1, 3, 48, true, true)],
        [Ir(5, 2, 6, 96, true, true), Ir(5, 1, 6, 96, true, true), Ir(5, 1, 6, 96, true, true)],
        [Cn(576)],
    ];

    public const int StemChannels = 16;

    /// <summary>timm's four registered widths of each size.</summary>
    private static readonly (string Name, bool Small, float Width)[] Variants =
    [
        ("mobilenetv3_large_075", false, 0.75f), ("mobilenetv3_large_100", false, 1f),
        ("mobilenetv3_small_075", true, 0.75f), ("mobilenetv3_small_100", true, 1f),
    ];

    internal static IEnumerable<RegisteredModel> Registrations =>
        Variants.Select(v => new RegisteredModel(v.Name, $"timm's MobileNetV3-{(v.Small ? "Small" : "Large")} {v.Width:0.0#}x (Howard et al. 2019)", 224, 1000, o =>
        {
            ModelRegistry.Refuse(v.Name, "ghost ratio", o.GhostRatio);
            ModelRegistry.Refuse(v.Name, "ghost dw size", o.GhostDwSize);
            return new MobileNetV3Config(v.Small, o.Width ?? v.Width, o.NumClasses, o.DropRate ?? 0f, o.InChannels);
        }));

    public string Arch =>
        Variants.FirstOrDefault(v => v.Small == Small && v.Width == Width).Name ?? (Small ? "mobilenetv3_small_100" : "mobilenetv3_large_100");

    public InitScheme DefaultInit => InitScheme.KaimingNormalFanOut;
    public ModelOptions Options => new(NumClasses, DropRate, Width, InChannels: InChannels);
    public string Title => $"MobileNetV3-{(Small ? "Small" : "Large")} width {Width}";

    /// <summary>conv_head's output channels: timm's num_features, not scaled by the width.</summary>
    public int HeadChannels => Small ? 1024 : 1280;

    /// <summary>timm's round_channels: make_divisible(c * width, 8).</summary>
    public int Channels(int baseChannels) => GhostNetConfig.MakeDivisible(baseChannels * (double)Width, 8);

    public void Validate()
    {
        ModelChecks.Width(Width);
        ModelChecks.Common(NumClasses, DropRate, InChannels);
    }

    public Network Build(PlanBuilder pb, Tensor input) => new MobileNetV3(pb, this, input);

    private sealed class MobileNetV3 : Network
    {
        public MobileNetV3(PlanBuilder pb, MobileNetV3Config config, Tensor input) : base(config, input)
        {
            int stem = config.Width < 0.75f ? StemChannels : config.Channels(StemChannels);
            var conv = new Conv2d(pb, "conv_stem", input, stem, 3, 2, 1);
            var x = Add(new ConvBn(conv, new BatchNorm2d(pb, "bn1", conv.Output, Activation.HardSwish))).Output;
            var stages = config.Small ? SmallStages : LargeStages;
            for (int s = 0; s < stages.Count; s++)
                for (int i = 0; i < stages[s].Length; i++)
                {
                    var b = stages[s][i];
                    string name = $"blocks.{s}.{i}";
                    int outChannels = config.Channels(b.Channels);
                    var act = b.HardSwish ? Activation.HardSwish : Activation.Relu;
                    x = b.Type switch
                    {
                        'c' => Add(new ConvBnAct(pb, name, x, outChannels, activation: act)).Output,
                        _ => Add(new InvertedResidual(pb, name, x, b, outChannels, act)).Output,
                    };
                }
            x = Add(new GlobalAvgPool(pb, "global_pool", x)).Output;
            x = Add(new Linear(pb, "conv_head", x, config.HeadChannels, bias: true, weightAsConv: true, activation: Activation.HardSwish)).Activated;
            if (config.DropRate > 0) x = Add(new Dropout(pb, x, config.DropRate)).Output;
            Logits = Add(new Linear(pb, "classifier", x, config.NumClasses)).Output;
        }
    }

    /// <summary>
    /// timm's InvertedResidual (conv_pw, bn1 + act, conv_dw, bn2 + act, SE, conv_pwl, bn3) and,
    /// for a ds row, DepthwiseSeparableConv (conv_dw, bn1 + act, SE, conv_pw, bn2): the same
    /// layers without the expansion. The input is added when the shape is kept.
    /// </summary>
    private sealed class InvertedResidual : ILayer
    {
        private readonly ConvBn? _expand;
        private readonly ConvBn _dw, _project;
        private readonly SqueezeExcite? _se;
        private readonly Tensor _x;
        private readonly bool _skip;

        public InvertedResidual(PlanBuilder pb, string name, Tensor x, Block b, int outChannels, Activation act)
        {
            _x = x;
            bool ds = b.Type == 'd';
            var h = x;
            if (!ds)
            {
                // timm's make_divisible(in_chs * exp_ratio): the expansion is of the scaled input.
                int mid = GhostNetConfig.MakeDivisible(x.C * b.Expansion, 8);
                var pw = new Conv2d(pb, name + ".conv_pw", x, mid, 1, 1, 0);
                _expand = new ConvBn(pw, new BatchNorm2d(pb, name + ".bn1", pw.Output, act));
                h = _expand.Output;
            }
            var dw = new Conv2d(pb, name + ".conv_dw", h, h.C, b.Kernel, b.Stride, b.Kernel / 2, depthwise: true);
            _dw = new ConvBn(dw, new BatchNorm2d(pb, name + (ds ? ".bn1" : ".bn2"), dw.Output, act));
            h = _dw.Output;
            if (b.Se)
            {
                // timm's SqueezeExcite(mid, rd_ratio 0.25, rd_round_fn=round_channels), ReLU forced, hard-sigmoid gate.
                _se = new SqueezeExcite(pb, name + ".se", h, GhostNetConfig.MakeDivisible(h.C * 0.25, 8), ".conv_reduce", ".conv_expand",
                    weightsAsConv: true, Activation.HardSigmoid);
                h = _se.Output;
            }
            var pwl = new Conv2d(pb, name + (ds ? ".conv_pw" : ".conv_pwl"), h, outChannels, 1, 1, 0);
            _project = new ConvBn(pwl, new BatchNorm2d(pb, name + (ds ? ".bn2" : ".bn3"), pwl.Output, Activation.None));
            _skip = b.Stride == 1 && x.C == outChannels;
            var y = _project.Output;
            // The sum passes its gradient to both branches unchanged: it shares the projection's
            // gradient buffer.
            Output = _skip ? pb.Activation(y.C, y.H, y.W).WithGradientOf(y) : y;
            pb.Record(name, ds ? "depthwise separable" + (_skip ? " (sum)" : "") : "inverted residual" + (_skip ? " (sum)" : ""), Output, 0, 0);
        }

        public Tensor Output { get; }

        public void Forward(IBackend b, bool training)
        {
            _expand?.Forward(b, training);
            _dw.Forward(b, training);
            _se?.Forward(b, training);
            if (_skip) _project.Forward(b, training, new ResidualSum(_x, Output));
            else _project.Forward(b, training);
        }

        public void Backward(IBackend b, bool accumulate)
        {
            // The identity shortcut writes the input gradient first; the main branch then adds to it.
            if (_skip) b.CopyOrAccumulate(Output.Grad, _x.Grad, accumulate);
            _project.Backward(b, false);
            _se?.Backward(b, false);
            bool first = _skip || accumulate;
            if (_expand is null) _dw.Backward(b, first);
            else
            {
                _dw.Backward(b, false);
                _expand.Backward(b, first);
            }
        }
    }
}

using GhostNet.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace GhostNet.OracleTests;

// An independent transcription of timm's mobilenetv3.py (_gen_mobilenet_v3) and its
// _efficientnet_blocks in TorchSharp: the arch_def strings are timm's own, decoded here; channel
// rounding is timm's make_divisible, written again. Only the configuration record (size, width,
// classes) is shared with the product. Field names are timm's module names (the state-dict keys).
#pragma warning disable IDE1006 // snake_case: these names are the state-dict keys

internal static class TimmMobileNetV3
{
    public static readonly string[][] Large =
    [
        ["ds_r1_k3_s1_e1_c16_nre"],
        ["ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"],
        ["ir_r3_k5_s2_e3_c40_se0.25_nre"],
        ["ir_r1_k3_s2_e6_c80", "ir_r1_k3_s1_e2.5_c80", "ir_r2_k3_s1_e2.3_c80"],
        ["ir_r2_k3_s1_e6_c112_se0.25"],
        ["ir_r3_k5_s2_e6_c160_se0.25"],
        ["cn_r1_k1_s1_c960"],
    ];

    public static readonly string[][] Small =
    [
        ["ds_r1_k3_s2_e1_c16_se0.25_nre"],
        ["ir_r1_k3_s2_e4.5_c24_nre", "ir_r1_k3_s1_e3.67_c24_nre"],
        ["ir_r1_k5_s2_e4_c40_se0.25", "ir_r2_k5_s1_e6_c40_se0.25"],
        ["ir_r2_k5_s1_e3_c48_se0.25"],
        ["ir_r3_k5_s2_e6_c96_se0.25"],
        ["cn_r1_k1_s1_c576"],
    ];

    public static long MakeDivisible(double v, int divisor = 8)
    {
        long n = Math.Max(divisor, (long)(v + divisor / 2.0) / divisor * divisor);
        return n < 0.9 * v ? n + divisor : n;
    }

    /// <summary>(type, repeats, kernel, stride, expansion, channels, se ratio, relu) of one block string.</summary>
    public static (string Type, int R, int K, int S, double E, int C, double Se, bool Relu) Decode(string block)
    {
        var parts = block.Split('_');
        int r = 1, k = 1, s = 1, c = 0;
        double e = 1, se = 0;
        bool relu = false;
        foreach (var p in parts.Skip(1))
        {
            if (p == "nre") relu = true;
            else if (p.StartsWith("se")) se = double.Parse(p[2..], System.Globalization.CultureInfo.InvariantCulture);
            else if (p[0] == 'r') r = int.Parse(p[1..]);
            else if (p[0] == 'k') k = int.Parse(p[1..]);
            else if (p[0] == 's') s = int.Parse(p[1..]);
            else if (p[0] == 'e') e = double.Parse(p[1..], System.Globalization.CultureInfo.InvariantCulture);
            else if (p[0] == 'c') c = int.Parse(p[1..]);
        }
        return (parts[0], r, k, s, e, c, se, relu);
    }

    public static Tensor Act(Tensor x, bool relu) => relu ? functional.relu(x) : functional.hardswish(x);
}

internal sealed class TorchMnv3SqueezeExcite : Module<Tensor, Tensor>
{
    private readonly Conv2d conv_reduce, conv_expand;

    public TorchMnv3SqueezeExcite(long channels, double ratio) : base(nameof(TorchMnv3SqueezeExcite))
    {
        long reduced = TimmMobileNetV3.MakeDivisible(channels * ratio);
        conv_reduce = Conv2d(channels, reduced, 1L, bias: true);
        conv_expand = Conv2d(reduced, channels, 1L, bias: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var s = functional.relu(conv_reduce.call(x.mean([2, 3], keepdim: true))); // force_act_layer=nn.ReLU
        return x * functional.hardsigmoid(conv_expand.call(s));
    }
}

/// <summary>timm's DepthwiseSeparableConv: conv_dw, bn1 + act, se, conv_pw, bn2; the input added when the shape is kept.</summary>
internal sealed class TorchDepthwiseSeparable : Module<Tensor, Tensor>
{
    private readonly Conv2d conv_dw;
    private readonly BatchNorm2d bn1;
    private readonly TorchMnv3SqueezeExcite? se;
    private readonly Conv2d conv_pw;
    private readonly BatchNorm2d bn2;
    private readonly bool _skip, _relu;

    public TorchDepthwiseSeparable(long inChs, long outChs, long k, long stride, double seRatio, bool relu) : base(nameof(TorchDepthwiseSeparable))
    {
        conv_dw = Conv2d(inChs, inChs, k, stride: stride, padding: k / 2, groups: inChs, bias: false);
        bn1 = BatchNorm2d(inChs);
        if (seRatio > 0) se = new TorchMnv3SqueezeExcite(inChs, seRatio);
        conv_pw = Conv2d(inChs, outChs, 1L, bias: false);
        bn2 = BatchNorm2d(outChs);
        (_skip, _relu) = (stride == 1 && inChs == outChs, relu);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = TimmMobileNetV3.Act(bn1.call(conv_dw.call(x)), _relu);
        if (se is not null) h = se.call(h);
        h = bn2.call(conv_pw.call(h));
        return _skip ? h + x : h;
    }
}

/// <summary>timm's InvertedResidual: conv_pw, bn1 + act, conv_dw, bn2 + act, se, conv_pwl, bn3.</summary>
internal sealed class TorchInvertedResidual : Module<Tensor, Tensor>
{
    private readonly Conv2d conv_pw;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv_dw;
    private readonly BatchNorm2d bn2;
    private readonly TorchMnv3SqueezeExcite? se;
    private readonly Conv2d conv_pwl;
    private readonly BatchNorm2d bn3;
    private readonly bool _skip, _relu;

    public TorchInvertedResidual(long inChs, long outChs, long k, long stride, double expansion, double seRatio, bool relu) : base(nameof(TorchInvertedResidual))
    {
        long mid = TimmMobileNetV3.MakeDivisible(inChs * expansion);
        conv_pw = Conv2d(inChs, mid, 1L, bias: false);
        bn1 = BatchNorm2d(mid);
        conv_dw = Conv2d(mid, mid, k, stride: stride, padding: k / 2, groups: mid, bias: false);
        bn2 = BatchNorm2d(mid);
        if (seRatio > 0) se = new TorchMnv3SqueezeExcite(mid, seRatio);
        conv_pwl = Conv2d(mid, outChs, 1L, bias: false);
        bn3 = BatchNorm2d(outChs);
        (_skip, _relu) = (stride == 1 && inChs == outChs, relu);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = TimmMobileNetV3.Act(bn1.call(conv_pw.call(x)), _relu);
        h = TimmMobileNetV3.Act(bn2.call(conv_dw.call(h)), _relu);
        if (se is not null) h = se.call(h);
        h = bn3.call(conv_pwl.call(h));
        return _skip ? h + x : h;
    }
}

internal sealed class TorchMobileNetV3 : Module<Tensor, Tensor>
{
    private readonly Conv2d conv_stem;
    private readonly BatchNorm2d bn1;
    private readonly Sequential blocks;
    private readonly Conv2d conv_head;
    private readonly Linear classifier;

    public TorchMobileNetV3(MobileNetV3Config config) : base(nameof(TorchMobileNetV3))
    {
        long Round(int c) => TimmMobileNetV3.MakeDivisible(c * (double)config.Width);
        long stem = config.Width < 0.75f ? 16 : Round(16);
        conv_stem = Conv2d(3, stem, 3L, stride: 2L, padding: 1L, bias: false);
        bn1 = BatchNorm2d(stem);
        long prev = stem;
        var stages = new List<Module<Tensor, Tensor>>();
        foreach (var stage in config.Small ? TimmMobileNetV3.Small : TimmMobileNetV3.Large)
        {
            var layers = new List<Module<Tensor, Tensor>>();
            foreach (var spec in stage)
            {
                var b = TimmMobileNetV3.Decode(spec);
                for (int i = 0; i < b.R; i++)
                {
                    long outChs = Round(b.C), s = i == 0 ? b.S : 1;
                    layers.Add(b.Type switch
                    {
                        "ds" => new TorchDepthwiseSeparable(prev, outChs, b.K, s, b.Se, b.Relu),
                        "ir" => new TorchInvertedResidual(prev, outChs, b.K, s, b.E, b.Se, b.Relu),
                        _ => new TorchConvBnAct(prev, outChs, hardSwish: true),
                    });
                    prev = outChs;
                }
            }
            stages.Add(Sequential(layers.ToArray()));
        }
        blocks = Sequential(stages.ToArray());
        long head = config.Small ? 1024 : 1280;
        conv_head = Conv2d(prev, head, 1L, bias: true);
        classifier = Linear(head, config.NumClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = functional.hardswish(bn1.call(conv_stem.call(x)));
        x = blocks.call(x);
        x = functional.hardswish(conv_head.call(x.mean([2, 3], keepdim: true)));
        return classifier.call(x.flatten(1));
    }
}

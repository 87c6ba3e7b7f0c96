using GhostNet.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace GhostNet.OracleTests;

// An independent transcription of timm's ghostnet.py in TorchSharp, run by libtorch's kernels.
// Field names are timm's module names: RegisterComponents turns them into the state-dict keys,
// which the tests compare with ours. Only the channel arithmetic (GhostNetConfig.Channels) is
// shared with the product; the parameter-count tests pin it to timm's numbers.
#pragma warning disable IDE1006 // snake_case: these names are the state-dict keys

internal sealed class TorchGhostModule : Module<Tensor, Tensor>
{
    private readonly Sequential primary_conv, cheap_operation;
    private readonly long _oup;

    /// <summary>ghostnet.pytorch's GhostModule(inp, oup, kernel_size, ratio, dw_size, stride, relu).</summary>
    public TorchGhostModule(long inp, long oup, bool relu, long kernel = 1, long ratio = 2, long dwSize = 3, long stride = 1) : base(nameof(TorchGhostModule))
    {
        _oup = oup;
        long init = (oup + ratio - 1) / ratio, cheap = init * (ratio - 1);
        primary_conv = Sequential(Conv2d(inp, init, kernel, stride: stride, padding: kernel / 2, bias: false), BatchNorm2d(init), relu ? ReLU() : Identity());
        cheap_operation = Sequential(Conv2d(init, cheap, dwSize, padding: dwSize / 2, groups: init, bias: false), BatchNorm2d(cheap), relu ? ReLU() : Identity());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var x1 = primary_conv.call(x);
        var x2 = cheap_operation.call(x1);
        return cat([x1, x2], 1).narrow(1, 0, _oup);
    }
}

internal sealed class TorchSqueezeExcite : Module<Tensor, Tensor>
{
    private readonly Conv2d conv_reduce, conv_expand;

    public TorchSqueezeExcite(long channels, long reduced) : base(nameof(TorchSqueezeExcite))
    {
        conv_reduce = Conv2d(channels, reduced, 1L, bias: true);
        conv_expand = Conv2d(reduced, channels, 1L, bias: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var s = x.mean([2, 3], keepdim: true);
        s = functional.relu(conv_reduce.call(s));
        s = conv_expand.call(s);
        return x * functional.hardsigmoid(s);
    }
}

internal sealed class TorchGhostBottleneck : Module<Tensor, Tensor>
{
    // Declaration order is registration order, hence state-dict order: keep timm's.
    private readonly TorchGhostModule ghost1;
    private readonly Conv2d? conv_dw;
    private readonly BatchNorm2d? bn_dw;
    private readonly TorchSqueezeExcite? se;
    private readonly TorchGhostModule ghost2;
    private readonly Sequential shortcut;

    public TorchGhostBottleneck(long inChs, long midChs, long outChs, long k, long stride, float seRatio) : base(nameof(TorchGhostBottleneck))
    {
        long pad = (k - 1) / 2;
        ghost1 = new TorchGhostModule(inChs, midChs, relu: true);
        if (stride > 1)
        {
            conv_dw = Conv2d(midChs, midChs, k, stride: stride, padding: pad, groups: midChs, bias: false);
            bn_dw = BatchNorm2d(midChs);
        }
        if (seRatio > 0) se = new TorchSqueezeExcite(midChs, GhostNetConfig.MakeDivisible(midChs * (double)seRatio));
        ghost2 = new TorchGhostModule(midChs, outChs, relu: false);
        shortcut = inChs == outChs && stride == 1
            ? Sequential()
            : Sequential(
                Conv2d(inChs, inChs, k, stride: stride, padding: pad, groups: inChs, bias: false), BatchNorm2d(inChs),
                Conv2d(inChs, outChs, 1L, stride: 1L, padding: 0L, bias: false), BatchNorm2d(outChs));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = ghost1.call(x);
        if (conv_dw is not null) h = bn_dw!.call(conv_dw.call(h));
        if (se is not null) h = se.call(h);
        h = ghost2.call(h);
        return h + shortcut.call(x);
    }
}

internal sealed class TorchConvBnAct : Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly BatchNorm2d bn1;
    private readonly bool _hardSwish;

    /// <summary>timm's ConvBnAct with k = 1: ReLU (GhostNet's blocks.9), or hard-swish (MobileNetV3's last block).</summary>
    public TorchConvBnAct(long inChs, long outChs, bool hardSwish = false) : base(nameof(TorchConvBnAct))
    {
        conv = Conv2d(inChs, outChs, 1L, bias: false);
        bn1 = BatchNorm2d(outChs);
        _hardSwish = hardSwish;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var y = bn1.call(conv.call(x));
        return _hardSwish ? functional.hardswish(y) : functional.relu(y);
    }
}

internal sealed class TorchGhostNet : Module<Tensor, Tensor>
{
    private readonly Conv2d conv_stem;
    private readonly BatchNorm2d bn1;
    private readonly Sequential blocks;
    private readonly Conv2d conv_head;
    private readonly Linear classifier;

    public TorchGhostNet(GhostNetConfig config) : base(nameof(TorchGhostNet))
    {
        long stem = config.Channels(16);
        conv_stem = Conv2d(3, stem, 3L, stride: 2L, padding: 1L, bias: false);
        bn1 = BatchNorm2d(stem);
        var stages = new List<Module<Tensor, Tensor>>();
        long prev = stem;
        int lastExpansion = 0;
        foreach (var stage in GhostNetConfig.Stages)
        {
            var layers = new List<Module<Tensor, Tensor>>();
            foreach (var c in stage)
            {
                long outChs = config.Channels(c.Channels);
                layers.Add(new TorchGhostBottleneck(prev, config.Channels(c.Expansion), outChs, c.Kernel, c.Stride, c.SeRatio));
                prev = outChs;
                lastExpansion = c.Expansion;
            }
            stages.Add(Sequential(layers.ToArray()));
        }
        long last = config.Channels(lastExpansion);
        stages.Add(Sequential(new TorchConvBnAct(prev, last)));
        blocks = Sequential(stages.ToArray());
        conv_head = Conv2d(last, 1280, 1L, bias: true);
        classifier = Linear(1280, config.NumClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = functional.relu(bn1.call(conv_stem.call(x)));
        x = blocks.call(x);
        x = functional.relu(conv_head.call(x.mean([2, 3], keepdim: true)));
        return classifier.call(x.flatten(1));
    }
}

using GhostNet.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace GhostNet.OracleTests;

// An independent transcription of the seed's ghost_net.py (../shared/seed) in TorchSharp: its
// SELayer (two nn.Linear, clamp(0, 1)), depthwise_conv, GhostBottleneck (conv.0-3, a 3x3 ReLU
// shortcut) and GhostNet (features, squeeze, classifier with BatchNorm1d). Only the block table
// (SeedGhostNetConfig.Blocks) and the channel rounding are shared with the product.
#pragma warning disable IDE1006 // snake_case: these names are the state-dict keys

internal sealed class TorchSeedSe : Module<Tensor, Tensor>
{
    private readonly Sequential fc;

    public TorchSeedSe(long channel) : base(nameof(TorchSeedSe))
    {
        fc = Sequential(Linear(channel, channel / 4), ReLU(), Linear(channel / 4, channel));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var y = fc.call(x.mean([2, 3]));
        return x * y.clamp(0, 1).view(x.shape[0], x.shape[1], 1, 1);
    }
}

internal sealed class TorchSeedBottleneck : Module<Tensor, Tensor>
{
    private readonly Sequential conv, shortcut;

    private static Sequential Depthwise(long inp, long k, long stride, bool relu) =>
        Sequential(Conv2d(inp, inp, k, stride: stride, padding: k / 2, groups: inp, bias: false), BatchNorm2d(inp), relu ? ReLU() : Sequential());

    public TorchSeedBottleneck(long inp, long hidden, long oup, long k, long stride, bool se) : base(nameof(TorchSeedBottleneck))
    {
        conv = Sequential(
            new TorchGhostModule(inp, hidden, relu: true),
            stride == 2 ? Depthwise(hidden, k, stride, relu: false) : Sequential(),
            se ? new TorchSeedSe(hidden) : Sequential(),
            new TorchGhostModule(hidden, oup, relu: false));
        shortcut = stride == 1 && inp == oup
            ? Sequential()
            : Sequential(Depthwise(inp, 3, stride, relu: true), Conv2d(inp, oup, 1L, bias: false), BatchNorm2d(oup));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => conv.call(x) + shortcut.call(x);
}

internal sealed class TorchSeedGhostNet : Module<Tensor, Tensor>
{
    private readonly Sequential features, squeeze, classifier;

    public TorchSeedGhostNet(SeedGhostNetConfig config) : base(nameof(TorchSeedGhostNet))
    {
        long stem = config.Channels(16);
        var layers = new List<Module<Tensor, Tensor>> { Sequential(Conv2d(3, stem, 3L, stride: 2L, padding: 1L, bias: false), BatchNorm2d(stem), ReLU()) };
        long input = stem;
        foreach (var b in SeedGhostNetConfig.Blocks)
        {
            long output = config.Channels(b.Channels);
            layers.Add(new TorchSeedBottleneck(input, config.Channels(b.Expansion), output, b.Kernel, b.Stride, b.Se));
            input = output;
        }
        features = Sequential(layers.ToArray());
        long last = config.Channels(SeedGhostNetConfig.Blocks[^1].Expansion);
        squeeze = Sequential(Conv2d(input, last, 1L, bias: false), BatchNorm2d(last), ReLU(), AdaptiveAvgPool2d(1));
        classifier = Sequential(Linear(last, 1280, hasBias: false), BatchNorm1d(1280), ReLU(), Dropout(config.DropRate), Linear(1280, config.NumClasses));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => classifier.call(squeeze.call(features.call(x)).flatten(1));
}

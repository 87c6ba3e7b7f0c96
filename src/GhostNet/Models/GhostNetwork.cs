using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// GhostNet built for one input shape, in timm's module order (which is also state-dict order):
/// conv_stem, bn1 (+act1), blocks.0-8 (Ghost bottlenecks), blocks.9 (ConvBnAct), global_pool,
/// conv_head (+act2), dropout, classifier.
/// </summary>
public sealed class GhostNetwork : Network
{
    public GhostNetwork(PlanBuilder pb, GhostNetConfig config, Tensor input) : base(config, input)
    {
        var stem = Add(new Conv2d(pb, "conv_stem", input, config.Channels(GhostNetConfig.StemChannels), 3, 2, 1));
        var x = Add(new BatchNorm2d(pb, "bn1", stem.Output, Activation.Relu)).Output;
        int stage = 0, lastExpansion = 0;
        foreach (var blocks in GhostNetConfig.Stages)
        {
            for (int i = 0; i < blocks.Length; i++)
            {
                var c = blocks[i];
                x = Add(new GhostBottleneck(pb, $"blocks.{stage}.{i}", x, config.Channels(c.Expansion), config.Channels(c.Channels),
                    c.Kernel, c.Stride, c.SeRatio)).Output;
                lastExpansion = c.Expansion;
            }
            stage++;
        }
        x = Add(new ConvBnAct(pb, $"blocks.{stage}.0", x, config.Channels(lastExpansion))).Output;
        var pool = Add(new GlobalAvgPool(pb, "global_pool", x));
        // conv_head and act2 (its ReLU) as one layer: a backend may apply the ReLU in the GEMM.
        x = Add(new Linear(pb, "conv_head", pool.Output, GhostNetConfig.HeadChannels, bias: true, weightAsConv: true, activation: Activation.Relu)).Activated;
        if (config.DropRate > 0) x = Add(new Dropout(pb, x, config.DropRate)).Output;
        Logits = Add(new Linear(pb, "classifier", x, config.NumClasses)).Output;
    }
}

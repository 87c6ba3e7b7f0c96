using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// GhostNet built for one input shape, in timm's module order (which is also state-dict order):
/// conv_stem, bn1 (+act1), blocks.0-8 (Ghost bottlenecks), blocks.9 (ConvBnAct), global_pool,
/// conv_head (+act2), dropout, classifier.
/// </summary>
public sealed class GhostNetwork
{
    private readonly List<ILayer> _layers = [];
    private readonly Dropout? _dropout;

    public GhostNetwork(PlanBuilder pb, GhostNetConfig config, Tensor input)
    {
        config.Validate();
        if (input.C != config.InChannels) throw new ArgumentException($"input has {input.C} channels, the model expects {config.InChannels}");
        var stem = Add(new Conv2d(pb, "conv_stem", input, config.Channels(GhostNetConfig.StemChannels), 3, 2, 1));
        var x = Add(new BatchNorm2d(pb, "bn1", stem.Output, relu: true)).Output;
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
        var pool = Add(new GlobalPool(pb, x));
        pb.Record("global_pool", "global average pool", pool.Output, 0, 0);
        // conv_head and act2 (its ReLU) as one layer: a backend may apply the ReLU in the GEMM.
        x = Add(new Linear(pb, "conv_head", pool.Output, GhostNetConfig.HeadChannels, bias: true, weightAsConv: true, activation: Activation.Relu)).Activated;
        if (config.DropRate > 0) x = Add(_dropout = new Dropout(pb, x, config.DropRate)).Output;
        Logits = Add(new Linear(pb, "classifier", x, config.NumClasses)).Output;
    }

    public Tensor Logits { get; }

    /// <summary>Where the dropout mask's seed is read when the forward and backward run (two elements: a u64).</summary>
    public void SetDropoutSeedAt(in Tensor seed)
    {
        if (_dropout is not null) _dropout.SeedAt = seed;
    }

    public void Forward(IBackend b, bool training)
    {
        foreach (var layer in _layers) layer.Forward(b, training);
    }

    /// <summary>Backpropagates from the gradient already in <see cref="Logits"/>'s gradient view.</summary>
    public void Backward(IBackend b)
    {
        for (int i = _layers.Count - 1; i >= 0; i--) _layers[i].Backward(b, false);
    }

    private T Add<T>(T layer) where T : ILayer
    {
        _layers.Add(layer);
        return layer;
    }

    private sealed class GlobalPool(PlanBuilder pb, Tensor x) : ILayer
    {
        public Tensor Output { get; } = pb.Activation(x.C, 1, 1);
        public void Forward(IBackend b, bool training) => b.GlobalAvgPool(x, Output);
        public void Backward(IBackend b, bool accumulate) => b.GlobalAvgPoolBackward(Output.Grad, x.Grad, accumulate);
    }
}

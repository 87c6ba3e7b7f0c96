using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// timm's SqueezeExcite as GhostNet configures it: global average pool, 1x1 conv_reduce (with
/// bias) to make_divisible(C * ratio, 4) channels, ReLU, 1x1 conv_expand (with bias), hard-sigmoid
/// gate relu6(x + 3) / 6, and the input scaled per channel by the gate. The second constructor
/// names the two layers, their weights' shape and the gate (the seed's SELayer: fc.0 and fc.2,
/// nn.Linear, clamp(0, 1)).
/// </summary>
public sealed class SqueezeExcite : ILayer
{
    private readonly Tensor _pooled, _reduced, _gate;
    private readonly Linear _convReduce, _convExpand;

    public SqueezeExcite(PlanBuilder pb, string name, Tensor x, float ratio)
        : this(pb, name, x, GhostNetConfig.MakeDivisible(x.C * (double)ratio), ".conv_reduce", ".conv_expand", weightsAsConv: true, Activation.HardSigmoid)
    {
    }

    public SqueezeExcite(PlanBuilder pb, string name, Tensor x, int reducedChannels, string reduce, string expand, bool weightsAsConv, Activation gate)
    {
        X = x;
        _pooled = pb.Activation(x.C, 1, 1);
        _convReduce = new Linear(pb, name + reduce, _pooled, reducedChannels, bias: true, weightAsConv: weightsAsConv, activation: Activation.Relu);
        _reduced = _convReduce.Activated;
        _convExpand = new Linear(pb, name + expand, _reduced, x.C, bias: true, weightAsConv: weightsAsConv, activation: gate);
        _gate = _convExpand.Activated;
        Output = pb.Activation(x.C, x.H, x.W);
    }

    public Tensor X { get; }
    public Tensor Output { get; }

    public void Forward(IBackend b, bool training)
    {
        ForwardGate(b, training);
        b.ChannelScale(X, _gate, Output);
    }

    /// <summary>The forward without its last step, the scale: Output is left unwritten, for a conv that reads <see cref="AsGatedInput"/>.</summary>
    public void ForwardGate(IBackend b, bool training)
    {
        b.GlobalAvgPool(X, _pooled);
        _convReduce.Forward(b, training); // and its ReLU
        _convExpand.Forward(b, training); // and the gate
    }

    /// <summary>Output as the input X * gate of a conv that scales X as it reads it (v2.18).</summary>
    public GatedInput AsGatedInput => new(X, _gate, Output);

    public void Backward(IBackend b, bool accumulate)
    {
        b.ChannelScaleBackward(X, _gate, Output.Grad, default, false, _gate.Grad); // the gate's gradient alone
        _convExpand.Backward(b, false); // through the gate first
        _convReduce.Backward(b, false); // through the ReLU first
        // x's gradient through the scale and through the pool, in one call a backend may fuse.
        b.ChannelScaleAndPoolBackward(_gate, Output.Grad, _pooled.Grad, X.Grad, accumulate);
    }
}

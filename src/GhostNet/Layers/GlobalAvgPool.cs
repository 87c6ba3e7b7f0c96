using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Layers;

/// <summary>nn.AdaptiveAvgPool2d(1): each channel's mean over its plane, N x C x 1 x 1.</summary>
public sealed class GlobalAvgPool : ILayer
{
    private readonly Tensor _x;

    public GlobalAvgPool(PlanBuilder pb, string name, Tensor x)
    {
        _x = x;
        Output = pb.Activation(x.C, 1, 1);
        pb.Record(name, "global average pool", Output, 0, 0);
    }

    public Tensor Output { get; }
    public void Forward(IBackend b, bool training) => b.GlobalAvgPool(_x, Output);
    public void Backward(IBackend b, bool accumulate) => b.GlobalAvgPoolBackward(Output.Grad, _x.Grad, accumulate);
}

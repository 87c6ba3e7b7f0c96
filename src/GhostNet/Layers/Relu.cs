using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Layers;

/// <summary>A standalone ReLU (where no batch norm precedes it to fuse into: act2 after conv_head).</summary>
public sealed class Relu : ILayer
{
    public Relu(PlanBuilder pb, Tensor x)
    {
        X = x;
        Output = pb.Activation(x.C, x.H, x.W);
    }

    public Tensor X { get; }
    public Tensor Output { get; }

    public void Forward(IBackend b, bool training) => b.Relu(X, Output);

    public void Backward(IBackend b, bool accumulate) => b.ReluBackward(Output, Output.Grad, X.Grad, accumulate);
}

using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Layers;

/// <summary>nn.MaxPool2d(kernel, stride, padding) (<see cref="IBackend.MaxPool"/>); no state.</summary>
public sealed class MaxPool2d : ILayer
{
    private readonly Tensor _x;
    private readonly ConvGeometry _geometry;

    public MaxPool2d(PlanBuilder pb, string name, Tensor x, int kernel, int stride, int padding = 0)
    {
        _x = x;
        _geometry = new ConvGeometry(kernel, stride, padding);
        ShapeChecks.MaxPoolWindow(name, x, _geometry);
        Output = pb.Activation(x.C, _geometry.OutputSize(x.H), _geometry.OutputSize(x.W));
        pb.Record(name, "max pool " + _geometry, Output, 0, 0);
    }

    public Tensor Output { get; }
    public void Forward(IBackend b, bool training) => b.MaxPool(_x, Output, _geometry);
    public void Backward(IBackend b, bool accumulate) => b.MaxPoolBackward(_x, Output.Grad, _x.Grad, accumulate, _geometry);
}

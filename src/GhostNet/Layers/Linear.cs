using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Layers;

/// <summary>
/// nn.Linear on N x K x 1 x 1 tensors; with <c>weightAsConv</c> the weight is stored as
/// [out, in, 1, 1], because timm's conv_head and the squeeze-excite projections are 1x1 Conv2d
/// layers applied to a 1 x 1 map, and their state-dict shapes must match.
/// </summary>
public sealed class Linear : ILayer
{
    public Linear(PlanBuilder pb, string name, Tensor x, int outFeatures, bool bias = true, bool weightAsConv = false)
    {
        if (x.Plane != 1) throw new ArgumentException($"{name}: linear input must be N x K x 1 x 1, got {x}");
        X = x;
        Weight = pb.LinearWeight(name + ".weight", outFeatures, x.C, weightAsConv);
        Bias = bias ? pb.Bias(name + ".bias", outFeatures, x.C) : null;
        Output = pb.Activation(outFeatures, 1, 1);
        pb.Record(name, weightAsConv ? "1x1 conv (linear)" : "linear", Output,
            Weight.Count + (Bias?.Count ?? 0), (long)x.C * outFeatures);
    }

    public Tensor X { get; }
    public Tensor Output { get; }
    public Parameter Weight { get; }
    public Parameter? Bias { get; }

    public void Forward(IBackend b, bool training) =>
        b.LinearForward(X, Weight.Value, Bias?.Value ?? default, Output);

    public void Backward(IBackend b, bool accumulate) =>
        b.LinearBackward(X, Weight.Value, Output.Grad, X.Grad, accumulate, Weight.Grad, Bias?.Grad ?? default);
}

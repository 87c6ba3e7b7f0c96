using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Layers;

/// <summary>
/// nn.Linear on N x K x 1 x 1 tensors; with <c>weightAsConv</c> the weight is stored as
/// [out, in, 1, 1], because timm's conv_head and the squeeze-excite projections are 1x1 Conv2d
/// layers applied to a 1 x 1 map, and their state-dict shapes must match. With an
/// <c>activation</c> (the ReLU after conv_head and conv_reduce, the gate after conv_expand) the
/// layer also writes <see cref="Activated"/> and runs the activation's backward: one backend call
/// each way that a backend may fuse.
/// </summary>
public sealed class Linear : ILayer
{
    public Linear(PlanBuilder pb, string name, Tensor x, int outFeatures, bool bias = true, bool weightAsConv = false, Activation activation = Activation.None)
    {
        if (x.Plane != 1) throw new ArgumentException($"{name}: linear input must be N x K x 1 x 1, got {x}");
        X = x;
        Weight = pb.LinearWeight(name + ".weight", outFeatures, x.C, weightAsConv);
        Bias = bias ? pb.Bias(name + ".bias", outFeatures, x.C) : null;
        Output = pb.Activation(outFeatures, 1, 1);
        Activation = activation;
        Activated = activation == Activation.None ? Output : pb.Activation(outFeatures, 1, 1);
        pb.Record(name, weightAsConv ? "1x1 conv (linear)" : "linear", Output,
            Weight.Count + (Bias?.Count ?? 0), (long)x.C * outFeatures);
    }

    public Tensor X { get; }
    /// <summary>x W^T + b, before the activation.</summary>
    public Tensor Output { get; }
    public Activation Activation { get; }
    /// <summary>activation(Output); Output itself without one.</summary>
    public Tensor Activated { get; }
    public Parameter Weight { get; }
    public Parameter? Bias { get; }

    public void Forward(IBackend b, bool training)
    {
        if (Activation == Activation.None) b.LinearForward(X, Weight.Value, Bias?.Value ?? default, Output);
        else b.LinearForward(X, Weight.Value, Bias?.Value ?? default, Output, Activation, Activated);
    }

    public void Backward(IBackend b, bool accumulate)
    {
        if (Activation == Activation.None) b.LinearBackward(X, Weight.Value, Output.Grad, X.Grad, accumulate, Weight.Grad, Bias?.Grad ?? default);
        else b.LinearBackward(X, Weight.Value, new ActivatedOutput(Output, Activation, Activated), X.Grad, accumulate, Weight.Grad, Bias?.Grad ?? default);
    }
}

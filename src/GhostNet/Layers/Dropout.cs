using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Layers;

/// <summary>
/// Inverted dropout before the classifier (timm's drop_rate). The mask is a function of
/// <see cref="Seed"/>, which the plan sets per step, so the mask is reproducible and backward
/// recomputes it. In eval mode it is the identity.
/// </summary>
public sealed class Dropout : ILayer
{
    public Dropout(PlanBuilder pb, Tensor x, float p)
    {
        if (p < 0 || p >= 1) throw new ArgumentOutOfRangeException(nameof(p), $"dropout rate {p} is not in [0, 1)");
        X = x;
        P = p;
        Output = pb.Activation(x.C, x.H, x.W);
    }

    public Tensor X { get; }
    public Tensor Output { get; }
    public float P { get; }
    public ulong Seed { get; set; }

    public void Forward(IBackend b, bool training)
    {
        if (training) b.DropoutForward(X, Output, P, Seed);
        else b.CopyOrAccumulate(X, Output, false);
    }

    public void Backward(IBackend b, bool accumulate) => b.DropoutBackward(Output.Grad, X.Grad, accumulate, P, Seed);
}

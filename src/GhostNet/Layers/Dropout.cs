using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Layers;

/// <summary>
/// Inverted dropout before the classifier (timm's drop_rate). The mask is a function of
/// its seed (<see cref="SeedAt"/>, which the plan writes per step), so the mask is reproducible and backward
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

    /// <summary>Where set, the seed's place in the backend's memory, read when the mask is drawn (the plan's step values): it replaces <see cref="Seed"/>.</summary>
    public Tensor SeedAt { get; set; }

    public void Forward(IBackend b, bool training)
    {
        if (training) b.DropoutForward(X, Output, P, new DropoutSeed(Seed, SeedAt));
        else b.CopyOrAccumulate(X, Output, false);
    }

    public void Backward(IBackend b, bool accumulate) => b.DropoutBackward(Output.Grad, X.Grad, accumulate, P, new DropoutSeed(Seed, SeedAt));
}

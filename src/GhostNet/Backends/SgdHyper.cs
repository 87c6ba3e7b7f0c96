namespace GhostNet.Backends;

/// <summary>
/// One SGD update as torch.optim.SGD does it (dampening 0): d = g + wd * p;
/// buf = momentum * buf + d; d = nesterov ? d + momentum * buf : buf; p -= lr * d.
/// A zero momentum buffer on the first step equals PyTorch's buf = d initialisation.
/// </summary>
public readonly record struct SgdHyper(float LearningRate, float Momentum, float WeightDecay, bool Nesterov)
{
    /// <summary>
    /// Where set, one value in the backend's memory that replaces <see cref="LearningRate"/>, read
    /// when the update runs: a captured training step (CUDA graph) keeps its launches and takes the
    /// rate its plan writes there before each replay.
    /// </summary>
    public Tensor LearningRateAt { get; init; }
}

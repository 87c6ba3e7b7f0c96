using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Training;

/// <summary>torch.optim.SGD's options; the defaults are those of the PyTorch ImageNet example.</summary>
public sealed record SgdOptions(float Momentum = 0.9f, float WeightDecay = 1e-4f, bool Nesterov = false, bool NoDecayOnNormAndBias = false);

/// <summary>
/// SGD over a whole parameter set in at most two launches: the decaying tensors and the exempt
/// ones (norm weights and biases) each lie in one contiguous run of the parameter arena.
/// </summary>
public sealed class SgdOptimizer(ParameterSet parameters, IBackend backend, SgdOptions options)
{
    public SgdOptions Options { get; } = options;

    public void Step(float learningRate) => Step(learningRate, default);

    /// <summary>
    /// One update, with the learning rate read from <paramref name="learningRateAt"/> when it runs
    /// where that is set (a plan's <see cref="Models.Plan.LearningRate"/>: a captured step's).
    /// </summary>
    public void Step(float learningRate, in Tensor learningRateAt)
    {
        var decay = new SgdHyper(learningRate, Options.Momentum, Options.WeightDecay, Options.Nesterov) { LearningRateAt = learningRateAt };
        var exempt = decay with { WeightDecay = Options.NoDecayOnNormAndBias ? 0f : Options.WeightDecay };
        Update(parameters.DecayGroup, decay);
        Update(parameters.NoDecayGroup, exempt);
    }

    private void Update(in Tensor group, SgdHyper h)
    {
        if (group.Count == 0) return;
        backend.SgdStep(group, group.Grad, new Tensor(parameters.Momentum, group.Offset, group.N, group.C, group.H, group.W), h);
    }
}

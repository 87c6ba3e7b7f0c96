namespace GhostNet.Backends;

/// <summary>The activation that follows a linear layer: none, ReLU, or the hard-sigmoid gate relu6(x + 3) / 6.</summary>
public enum Activation { None, Relu, HardSigmoid }

/// <summary>
/// A linear layer's output y and activated = activation(y), as its forward wrote them: what the
/// activation's backward reads (ReLU its output, the hard-sigmoid its input).
/// </summary>
public readonly record struct ActivatedOutput(Tensor Y, Activation Activation, Tensor Activated);

public static class ActivationOps
{
    /// <summary>y = activation(x) through the backend's own op (<see cref="IBackend.Relu"/>, <see cref="IBackend.HardSigmoid"/>).</summary>
    public static void Activate(this IBackend b, in Tensor x, Activation activation, in Tensor y)
    {
        switch (activation)
        {
            case Activation.Relu: b.Relu(x, y); break;
            case Activation.HardSigmoid: b.HardSigmoid(x, y); break;
            default: throw new ArgumentOutOfRangeException(nameof(activation), activation, "no activation to apply");
        }
    }

    /// <summary>dx (+)= the gradient through activation(x) = y, from y's gradient dy: the backward of <see cref="Activate"/>.</summary>
    public static void ActivationBackward(this IBackend b, in Tensor x, in Tensor y, Activation activation, in Tensor dy, in Tensor dx, bool accumulate)
    {
        switch (activation)
        {
            case Activation.Relu: b.ReluBackward(y, dy, dx, accumulate); break;
            case Activation.HardSigmoid: b.HardSigmoidBackward(x, dy, dx, accumulate); break;
            default: throw new ArgumentOutOfRangeException(nameof(activation), activation, "no activation to differentiate");
        }
    }
}

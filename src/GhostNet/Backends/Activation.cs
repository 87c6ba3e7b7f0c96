namespace GhostNet.Backends;

/// <summary>
/// The activation that follows a linear layer: none, ReLU, the hard-sigmoid gate relu6(x + 3) / 6
/// (timm's squeeze-excite), or the gate clamp(x, 0, 1) (the seed's). The CUDA GEMM epilogue and
/// column sums take the value as their kind.
/// </summary>
public enum Activation { None, Relu, HardSigmoid, Clamp01 }

/// <summary>
/// A linear layer's output y and activated = activation(y), as its forward wrote them: what the
/// activation's backward reads (ReLU its output, the gates their input).
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
            case Activation.Clamp01: b.Clamp01(x, y); break;
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
            case Activation.Clamp01: b.Clamp01Backward(x, dy, dx, accumulate); break;
            default: throw new ArgumentOutOfRangeException(nameof(activation), activation, "no activation to differentiate");
        }
    }
}

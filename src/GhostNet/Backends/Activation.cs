namespace GhostNet.Backends;

/// <summary>
/// The activation that follows a linear layer or a batch norm: none, ReLU, the hard-sigmoid gate
/// relu6(x + 3) / 6 (timm's squeeze-excite), the gate clamp(x, 0, 1) (the seed's), or hard-swish
/// x relu6(x + 3) / 6 (MobileNetV3). The CUDA kernels take the value as their kind
/// (kernels/common.cuh's activation); the numbers are that contract.
/// </summary>
public enum Activation { None = 0, Relu = 1, HardSigmoid = 2, Clamp01 = 3, HardSwish = 4 }

/// <summary>
/// A linear layer's output y and activated = activation(y), as its forward wrote them: what the
/// activation's backward reads (ReLU its output, the others their input).
/// </summary>
public readonly record struct ActivatedOutput(Tensor Y, Activation Activation, Tensor Activated);

public static class ActivationOps
{
    /// <summary>PyTorch's name of the activation (F.relu, F.hardsigmoid, clamp, F.hardswish), for layer tables.</summary>
    public static string Name(this Activation activation) => activation switch
    {
        Activation.None => "identity",
        Activation.Relu => "relu",
        Activation.HardSigmoid => "hard_sigmoid",
        Activation.Clamp01 => "clamp(0, 1)",
        Activation.HardSwish => "hard_swish",
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, null),
    };

    /// <summary>ReLU when <paramref name="relu"/>, else none: the layers whose activation is on or off.</summary>
    public static Activation ReluIf(bool relu) => relu ? Activation.Relu : Activation.None;

    /// <summary>y = activation(x) through the backend's own op (<see cref="IBackend.Relu"/>, <see cref="IBackend.HardSigmoid"/>).</summary>
    public static void Activate(this IBackend b, in Tensor x, Activation activation, in Tensor y)
    {
        switch (activation)
        {
            case Activation.Relu: b.Relu(x, y); break;
            case Activation.HardSigmoid: b.HardSigmoid(x, y); break;
            case Activation.Clamp01: b.Clamp01(x, y); break;
            case Activation.HardSwish: b.HardSwish(x, y); break;
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
            case Activation.HardSwish: b.HardSwishBackward(x, dy, dx, accumulate); break;
            default: throw new ArgumentOutOfRangeException(nameof(activation), activation, "no activation to differentiate");
        }
    }
}

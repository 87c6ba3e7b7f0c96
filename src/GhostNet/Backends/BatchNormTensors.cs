namespace GhostNet.Backends;

/// <summary>
/// Everything a batch-norm launch touches besides its input and output: the affine parameters,
/// the running statistics (updated in training) and the per-channel batch mean and inverse
/// standard deviation saved for backward. All are contiguous vectors of C elements.
/// </summary>
public readonly record struct BatchNormTensors(
    Tensor Weight, Tensor Bias, Tensor RunningMean, Tensor RunningVar, Tensor SaveMean, Tensor SaveInvStd);

/// <summary>
/// A conv's input that is a batch norm's training output, Y = batch_norm(X), whose batch
/// statistics are already computed and saved in <see cref="Tensors"/> (its forward ran with
/// deferApply), but which may not be written yet: the conv call that takes it writes Y
/// (<see cref="IBackend.DepthwiseConvBatchNormForward(in NormalizedInput, in Tensor, in Tensor, ConvGeometry, in Tensor, in BatchNormTensors, BatchNormOptions)"/>).
/// </summary>
public readonly record struct NormalizedInput(Tensor X, Tensor Y, BatchNormTensors Tensors, BatchNormOptions Options);

/// <summary>
/// A conv's input that is squeeze-excite's output, Y = X * Gate with the gate per image and
/// channel (Gate an N x C x 1 x 1 tensor), which need not be written: the conv calls that take it
/// may scale X as they load it (v2.18). Y is where the output would be, and its gradient is the
/// conv's input gradient; what Y holds is unspecified (a call that needs it writes it first).
/// </summary>
public readonly record struct GatedInput(Tensor X, Tensor Gate, Tensor Y);

/// <summary>
/// A residual sum written in place of a call's output: <see cref="Sum"/> = output + <see cref="Addend"/>
/// (a bottleneck's sum of its main branch and its shortcut), so that the output itself need not
/// be written and read back (v2.16). The three have one shape; the output is left unspecified.
/// </summary>
public readonly record struct ResidualSum(Tensor Addend, Tensor Sum)
{
    /// <summary>
    /// The output a call that writes two adjacent channel windows of one buffer sums (the Ghost
    /// module's intrinsic and ghost maps): the first <c>Sum.C</c> channels from
    /// <paramref name="first"/>'s, which <paramref name="second"/> must follow directly.
    /// </summary>
    public Tensor Concat(in Tensor first, in Tensor second)
    {
        if (!ReferenceEquals(first.Storage, second.Storage) || first.Offset != second.Offset || second.C0 != first.C0 + first.C
            || first.N != second.N || first.H != second.H || first.W != second.W)
            throw new ArgumentException($"{second} does not follow {first} in one buffer");
        if (Sum.C < first.C || Sum.C > first.C + second.C)
            throw new ArgumentException($"a {Sum.C}-channel sum is not the first channels of {first} and {second}");
        return new Tensor(first.Storage, first.Offset, first.N, Sum.C, first.H, first.W, first.C0, first.CTotal);
    }
}

/// <summary>
/// PyTorch's BatchNorm2d hyper-parameters (momentum weights the new batch statistic) and the
/// activation fused after it (timm's BatchNormAct2d): none, ReLU or hard-swish. Its backward
/// recomputes the pre-activation from the input, so the activation costs no storage. The gates
/// (hard-sigmoid, clamp) follow linear layers, never a batch norm here.
/// </summary>
public readonly record struct BatchNormOptions(float Momentum = 0.1f, float Eps = 1e-5f, Activation Activation = Activation.None)
{
    // Without this, `new BatchNormOptions()` would be the all-zero struct, not the defaults above.
    public BatchNormOptions() : this(0.1f, 1e-5f, Activation.None) { }

    private readonly Activation _activation = Checked(Activation);

    // Checked in the init accessor too, so that `o with { Activation = ... }` cannot slip a gate past it.
    public Activation Activation { get => _activation; init => _activation = Checked(value); }

    private static Activation Checked(Activation a) => a is Activation.None or Activation.Relu or Activation.HardSwish
        ? a
        : throw new ArgumentOutOfRangeException(nameof(Activation), a, "a batch norm fuses no activation, ReLU or hard-swish");
}

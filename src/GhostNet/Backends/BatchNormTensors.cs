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

/// <summary>PyTorch's BatchNorm2d hyper-parameters; momentum weights the new batch statistic.</summary>
public readonly record struct BatchNormOptions(float Momentum = 0.1f, float Eps = 1e-5f, bool Relu = false)
{
    // Without this, `new BatchNormOptions()` would be the all-zero struct, not the defaults above.
    public BatchNormOptions() : this(0.1f, 1e-5f, false) { }
}

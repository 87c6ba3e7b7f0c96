using GhostNet.Backends;

namespace GhostNet.Layers;

/// <summary>
/// A conv and the batch norm that reads its output, as GhostNet pairs them: every depthwise conv
/// (the Ghost module's cheap operation, a strided bottleneck's conv_dw, its shortcut's first conv)
/// and every pointwise one but the head's (the Ghost module's primary conv, a projecting shortcut's
/// 1x1, blocks.9). Training runs a depthwise or pointwise pair as one backend call each way, so a
/// backend can fuse them: the conv's kernel computes the batch statistics
/// (<see cref="IBackend.DepthwiseConvBatchNormForward"/>, <see cref="IBackend.PointwiseConvBatchNormForward"/>),
/// and the conv's backward computes its output gradient as it reads it
/// (<see cref="IBackend.DepthwiseConvBatchNormBackward"/>, <see cref="IBackend.PointwiseConvBatchNormBackward"/>).
/// A dense pair runs as its two layers, and so does a pair whose batch norm applies hard-swish
/// (MobileNetV3): the fused kernels know no activation but ReLU (<see cref="ShapeChecks.FusedActivation"/>).
/// Evaluation is the two layers' own. Parameters and keys stay the two layers'.
/// </summary>
public sealed class ConvBn : ILayer
{
    public ConvBn(Conv2d conv, BatchNorm2d bn)
    {
        if (!bn.X.StartsAt(conv.Output))
            throw new ArgumentException($"the batch norm reads {bn.X}, not the conv's output {conv.Output}", nameof(bn));
        Conv = conv;
        Bn = bn;
    }

    public Conv2d Conv { get; }
    public BatchNorm2d Bn { get; }
    public Tensor Output => Bn.Output;

    /// <summary>Whether training runs the pair as one backend call each way.</summary>
    private bool Fused => Conv.Kind != Conv2d.Form.Dense && Bn.Options.Activation is Activation.None or Activation.Relu;

    public void Forward(IBackend b, bool training)
    {
        if (training && Fused) Bn.TrainForwardAfter(b, Conv);
        else
        {
            Conv.Forward(b, training);
            Bn.Forward(b, training);
        }
    }

    /// <summary>
    /// The forward with <paramref name="sum"/> written in place of the output: in training a
    /// pointwise pair's batch norm adds it as it writes (<see cref="IBackend.PointwiseConvBatchNormForward"/>); else after.
    /// </summary>
    public void Forward(IBackend b, bool training, ResidualSum sum)
    {
        if (training && Fused && Conv.Kind == Conv2d.Form.Pointwise) Bn.TrainForwardAfter(b, Conv, sum: sum);
        else
        {
            Forward(b, training);
            b.Add(Output, sum.Addend, sum.Sum);
        }
    }

    /// <summary><paramref name="accumulate"/> is the conv's: the batch norm's input gradient has no other writer.</summary>
    public void Backward(IBackend b, bool accumulate)
    {
        if (!Fused)
        {
            Bn.Backward(b, false);
            Conv.Backward(b, accumulate);
        }
        else Bn.BackwardThrough(b, Conv, accumulate);
    }
}

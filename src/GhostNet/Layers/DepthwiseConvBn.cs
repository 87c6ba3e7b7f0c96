using GhostNet.Backends;

namespace GhostNet.Layers;

/// <summary>
/// A depthwise conv and the batch norm that reads its output, as GhostNet always pairs them (the
/// Ghost module's cheap operation, a strided bottleneck's conv_dw and its shortcut's first conv).
/// Training runs them as one backend call each way, so a backend can fuse them: the conv's kernel
/// sums the batch statistics (<see cref="IBackend.DepthwiseConvBatchNormForward"/>), and the conv's
/// backward computes its output gradient as it reads it (<see cref="IBackend.DepthwiseConvBatchNormBackward"/>).
/// Evaluation is the two layers' own. Parameters and keys stay the two layers'.
/// </summary>
public sealed class DepthwiseConvBn : ILayer
{
    public DepthwiseConvBn(Conv2d conv, BatchNorm2d bn)
    {
        if (conv.Kind != Conv2d.Form.Depthwise) throw new ArgumentException($"{nameof(DepthwiseConvBn)} needs a depthwise conv, got a {conv.Kind} one", nameof(conv));
        if (!ReferenceEquals(bn.X.Storage, conv.Output.Storage) || bn.X.Offset != conv.Output.Offset || bn.X.C0 != conv.Output.C0)
            throw new ArgumentException($"the batch norm reads {bn.X}, not the conv's output {conv.Output}", nameof(bn));
        Conv = conv;
        Bn = bn;
    }

    public Conv2d Conv { get; }
    public BatchNorm2d Bn { get; }
    public Tensor Output => Bn.Output;

    public void Forward(IBackend b, bool training)
    {
        if (training) Bn.TrainForwardAfter(b, Conv);
        else
        {
            Conv.Forward(b, training);
            Bn.Forward(b, training);
        }
    }

    /// <summary><paramref name="accumulate"/> is the conv's: the batch norm's input gradient has no other writer.</summary>
    public void Backward(IBackend b, bool accumulate) => Bn.BackwardThrough(b, Conv, accumulate);
}

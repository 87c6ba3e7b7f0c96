using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// The Ghost module: a primary convolution makes init = ceil(oup / ratio) intrinsic maps, a cheap
/// depthwise dw_size x dw_size operation makes init * (ratio - 1) ghost maps from them, and the
/// output is the first oup channels of their concatenation. Both batch norms write straight into
/// channel windows of one buffer, so the concat and the slice cost nothing; the channels past oup
/// are computed (as in PyTorch) and receive a zero gradient.
/// </summary>
public sealed class GhostModule : ILayer
{
    private readonly ConvBn _primary, _cheap;

    public GhostModule(PlanBuilder pb, string name, Tensor x, int oup, int kernelSize = 1, int ratio = 2, int dwSize = 3, int stride = 1, bool relu = true)
    {
        if (ratio < 2) throw new ArgumentOutOfRangeException(nameof(ratio), $"{name}: ratio {ratio} must be at least 2");
        X = x;
        int init = (oup + ratio - 1) / ratio, cheap = init * (ratio - 1);
        var primaryConv = new Conv2d(pb, name + ".primary_conv.0", x, init, kernelSize, stride, kernelSize / 2);
        var concat = pb.Activation(init + cheap, primaryConv.Output.H, primaryConv.Output.W);
        _primary = new ConvBn(primaryConv, new BatchNorm2d(pb, name + ".primary_conv.1", primaryConv.Output, ActivationOps.ReluIf(relu), concat.Channels(0, init)));
        var cheapConv = new Conv2d(pb, name + ".cheap_operation.0", _primary.Output, cheap, dwSize, 1, dwSize / 2, depthwise: true);
        _cheap = new ConvBn(cheapConv, new BatchNorm2d(pb, name + ".cheap_operation.1", cheapConv.Output, ActivationOps.ReluIf(relu), concat.Channels(init, cheap)));
        Output = concat.Channels(0, oup);
    }

    public Tensor X { get; }
    public Tensor Output { get; }

    public void Forward(IBackend b, bool training) => Forward(b, training, null);

    /// <summary>Whether the training forward and the backward may take X as a <see cref="GatedInput"/> (a pointwise primary conv).</summary>
    public bool ReadsGatedInput => _primary.Conv.Kind == Conv2d.Form.Pointwise;

    /// <summary>
    /// The forward with <paramref name="sum"/> (a bottleneck's sum with its identity shortcut)
    /// written in place of the output: in training the kernels that would write the output add
    /// the shortcut instead (the output is not written and read back); else after. With
    /// <paramref name="gated"/> (training, <see cref="ReadsGatedInput"/>), X is squeeze-excite's
    /// output, not written: the primary conv scales its input as it reads it.
    /// </summary>
    public void Forward(IBackend b, bool training, ResidualSum? sum, GatedInput? gated = null)
    {
        if (gated is not null && !(training && ReadsGatedInput))
            throw new ArgumentException("only the training forward of a pointwise primary conv reads a gated input", nameof(gated));
        if (training && _primary.Conv.Kind == Conv2d.Form.Pointwise)
        {
            // The cheap operation is the first to read the primary batch norm's output: a backend
            // may apply that batch norm as the depthwise conv reads its input, and write the
            // output from there (one pass over the intrinsic maps less).
            _primary.Bn.TrainForwardAfter(b, _primary.Conv, deferApply: true, gated: gated);
            _cheap.Bn.TrainForwardAfter(b, _cheap.Conv, _primary.Bn.AsInput, sum);
            return;
        }
        _primary.Forward(b, training);
        _cheap.Forward(b, training);
        if (sum is { } s) b.Add(Output, s.Addend, s.Sum);
    }

    public void Backward(IBackend b, bool accumulate) => Backward(b, accumulate, null);

    /// <summary>The backward; <paramref name="gated"/> as the forward's.</summary>
    public void Backward(IBackend b, bool accumulate, GatedInput? gated)
    {
        if (gated is not null && !ReadsGatedInput) throw new ArgumentException("only a pointwise primary conv reads a gated input", nameof(gated));
        // The intrinsic maps feed both the output and the cheap operation: add the second gradient.
        if (_primary.Conv.Kind == Conv2d.Form.Pointwise)
        {
            // That addition completes their gradient: a backend may reduce the primary batch
            // norm's parameter gradients as it writes it (one pass over the gradient less).
            _cheap.Bn.BackwardThrough(b, _cheap.Conv, _primary.Bn.AsInput);
            _primary.Bn.BackwardThrough(b, _primary.Conv, accumulate, gradientsReady: true, gated: gated);
            return;
        }
        _cheap.Backward(b, accumulate: true);
        _primary.Backward(b, accumulate);
    }
}

using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// timm's GhostBottleneck: ghost1 (expand, ReLU), a strided depthwise conv + BN when stride > 1,
/// optional squeeze-excite, ghost2 (project, no ReLU), plus a shortcut that is the identity when
/// shape is kept, else depthwise conv + BN + 1x1 conv + BN.
/// </summary>
public sealed class GhostBottleneck : ILayer
{
    private readonly GhostModule _ghost1, _ghost2;
    private readonly ConvBn? _dw;
    private readonly SqueezeExcite? _se;
    private readonly ConvBn[] _shortcut;

    public GhostBottleneck(PlanBuilder pb, string name, Tensor x, int midChannels, int outChannels, int dwKernel, int stride, float seRatio)
    {
        X = x;
        int pad = (dwKernel - 1) / 2;
        _ghost1 = new GhostModule(pb, name + ".ghost1", x, midChannels, relu: true);
        var h = _ghost1.Output;
        if (stride > 1)
        {
            var convDw = new Conv2d(pb, name + ".conv_dw", h, midChannels, dwKernel, stride, pad, depthwise: true);
            _dw = new ConvBn(convDw, new BatchNorm2d(pb, name + ".bn_dw", convDw.Output, relu: false));
            h = _dw.Output;
        }
        if (seRatio > 0)
        {
            _se = new SqueezeExcite(pb, name + ".se", h, seRatio);
            h = _se.Output;
        }
        _ghost2 = new GhostModule(pb, name + ".ghost2", h, outChannels, relu: false);
        if (x.C == outChannels && stride == 1) _shortcut = [];
        else
        {
            var dw = new Conv2d(pb, name + ".shortcut.0", x, x.C, dwKernel, stride, pad, depthwise: true);
            var bn = new BatchNorm2d(pb, name + ".shortcut.1", dw.Output, relu: false);
            var pw = new Conv2d(pb, name + ".shortcut.2", bn.Output, outChannels, 1, 1, 0);
            var projected = pb.Activation(outChannels, pw.Output.H, pw.Output.W).WithGradientOf(_ghost2.Output);
            _shortcut = [new ConvBn(dw, bn), new ConvBn(pw, new BatchNorm2d(pb, name + ".shortcut.3", pw.Output, relu: false, projected))];
        }
        // The sum passes its gradient to both branches unchanged: the sum, ghost2's output and a
        // projecting shortcut's output share one gradient buffer, so the backward copies nothing.
        var g = _ghost2.Output;
        Output = pb.Activation(g.C, g.H, g.W).WithGradientOf(g);
        pb.Record(name, "ghost bottleneck (sum)", Output, 0, 0);
    }

    public Tensor X { get; }
    public Tensor Output { get; }

    /// <summary>
    /// Whether the last forward passed squeeze-excite's output to ghost2 as a <see cref="GatedInput"/>
    /// (then never written), so that the backward reads it as the forward did.
    /// </summary>
    private bool _gatedForward;

    public void Forward(IBackend b, bool training)
    {
        _ghost1.Forward(b, training);
        _dw?.Forward(b, training);
        // In training ghost2's primary conv scales squeeze-excite's input by the gate as it reads
        // it (v2.18), so squeeze-excite computes only the gate.
        _gatedForward = training && _se is not null && _ghost2.ReadsGatedInput && b.FusesGatedInput;
        GatedInput? gated = _gatedForward ? _se!.AsGatedInput : null;
        if (gated is null) _se?.Forward(b, training);
        else _se!.ForwardGate(b, training);
        // The sum is written in place of the last output of a branch, by the kernels that would
        // write it (v2.16): ghost2's with an identity shortcut, else the shortcut's last batch norm's.
        if (_shortcut.Length == 0)
        {
            _ghost2.Forward(b, training, new ResidualSum(X, Output), gated);
            return;
        }
        _ghost2.Forward(b, training, null, gated);
        _shortcut[0].Forward(b, training);
        _shortcut[1].Forward(b, training, new ResidualSum(_ghost2.Output, Output));
    }

    public void Backward(IBackend b, bool accumulate)
    {
        // The sum's gradient is already ghost2's and the projecting shortcut's (one shared buffer).
        // The shortcut goes first: it writes the input gradient, which the main branch then adds
        // to, and it must read the shared gradient before ghost2's cheap operation adds its own
        // part to the primary half of it.
        if (_shortcut.Length == 0) b.CopyOrAccumulate(Output.Grad, X.Grad, accumulate);
        else
            for (int i = _shortcut.Length - 1; i >= 0; i--) _shortcut[i].Backward(b, i == 0 && accumulate);
        _ghost2.Backward(b, false, _gatedForward ? _se!.AsGatedInput : null);
        _se?.Backward(b, false);
        _dw?.Backward(b, false);
        _ghost1.Backward(b, accumulate: true);
    }
}

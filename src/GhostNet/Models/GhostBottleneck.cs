using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// Where a Ghost bottleneck's layers sit in the state dict and how its shortcut and
/// squeeze-excite are made: timm's (<see cref="Timm"/>) or another network's (the seed's ghost_net).
/// </summary>
public sealed record GhostBottleneckLayout(string Ghost1, string ConvDw, string BnDw, string Se, string Ghost2,
    string ShortcutDw, string ShortcutDwBn, string ShortcutPw, string ShortcutPwBn)
{
    /// <summary>timm's: ghost1, conv_dw, bn_dw, se, ghost2, shortcut.0-3; the shortcut's depthwise conv has the block's kernel and no ReLU.</summary>
    public static readonly GhostBottleneckLayout Timm = new(".ghost1", ".conv_dw", ".bn_dw", ".se", ".ghost2", ".shortcut.0", ".shortcut.1", ".shortcut.2", ".shortcut.3");

    /// <summary>The shortcut's depthwise kernel; null: the block's.</summary>
    public int? ShortcutKernel { get; init; }

    /// <summary>Whether the shortcut's depthwise batch norm is followed by a ReLU.</summary>
    public bool ShortcutRelu { get; init; }

    /// <summary>Makes the squeeze-excite of a block of SE ratio r; null: timm's (<see cref="SqueezeExcite(PlanBuilder, string, Tensor, float)"/>).</summary>
    public Func<PlanBuilder, string, Tensor, float, SqueezeExcite>? MakeSe { get; init; }
}

/// <summary>
/// timm's GhostBottleneck: ghost1 (expand, ReLU), a strided depthwise conv + BN when stride > 1,
/// optional squeeze-excite, ghost2 (project, no ReLU), plus a shortcut that is the identity when
/// shape is kept, else depthwise conv + BN + 1x1 conv + BN. Its names and its shortcut's form
/// come from a <see cref="GhostBottleneckLayout"/> (timm's by default).
/// </summary>
public sealed class GhostBottleneck : ILayer
{
    private readonly GhostModule _ghost1, _ghost2;
    private readonly ConvBn? _dw;
    private readonly SqueezeExcite? _se;
    private readonly ConvBn[] _shortcut;

    public GhostBottleneck(PlanBuilder pb, string name, Tensor x, int midChannels, int outChannels, int dwKernel, int stride, float seRatio,
        GhostBottleneckLayout? layout = null)
    {
        var l = layout ?? GhostBottleneckLayout.Timm;
        X = x;
        int pad = (dwKernel - 1) / 2;
        _ghost1 = new GhostModule(pb, name + l.Ghost1, x, midChannels, relu: true);
        var h = _ghost1.Output;
        if (stride > 1)
        {
            var convDw = new Conv2d(pb, name + l.ConvDw, h, midChannels, dwKernel, stride, pad, depthwise: true);
            _dw = new ConvBn(convDw, new BatchNorm2d(pb, name + l.BnDw, convDw.Output, Activation.None));
            h = _dw.Output;
        }
        if (seRatio > 0)
        {
            _se = l.MakeSe?.Invoke(pb, name + l.Se, h, seRatio) ?? new SqueezeExcite(pb, name + l.Se, h, seRatio);
            h = _se.Output;
        }
        _ghost2 = new GhostModule(pb, name + l.Ghost2, h, outChannels, relu: false);
        if (x.C == outChannels && stride == 1) _shortcut = [];
        else
        {
            int k = l.ShortcutKernel ?? dwKernel;
            var dw = new Conv2d(pb, name + l.ShortcutDw, x, x.C, k, stride, (k - 1) / 2, depthwise: true);
            var bn = new BatchNorm2d(pb, name + l.ShortcutDwBn, dw.Output, ActivationOps.ReluIf(l.ShortcutRelu));
            var pw = new Conv2d(pb, name + l.ShortcutPw, bn.Output, outChannels, 1, 1, 0);
            var projected = pb.Activation(outChannels, pw.Output.H, pw.Output.W).WithGradientOf(_ghost2.Output);
            _shortcut = [new ConvBn(dw, bn), new ConvBn(pw, new BatchNorm2d(pb, name + l.ShortcutPwBn, pw.Output, Activation.None, projected))];
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

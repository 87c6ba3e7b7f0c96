using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Layers;

/// <summary>
/// nn.Conv2d without bias, in the three forms GhostNet uses: dense (groups = 1), pointwise
/// (1x1, stride 1: a GEMM) and depthwise (groups = in_channels, optionally with a channel multiplier).
/// </summary>
public sealed class Conv2d : ILayer
{
    public enum Form { Dense, Pointwise, Depthwise }

    public Conv2d(PlanBuilder pb, string name, Tensor x, int outChannels, int kernel, int stride, int padding, bool depthwise = false)
    {
        X = x;
        Geometry = new ConvGeometry(kernel, stride, padding);
        Kind = depthwise ? Form.Depthwise : kernel == 1 && stride == 1 && padding == 0 ? Form.Pointwise : Form.Dense;
        if (depthwise && outChannels % x.C != 0)
            throw new ArgumentException($"{name}: depthwise conv needs out_channels ({outChannels}) to be a multiple of in_channels ({x.C})");
        int inPerGroup = depthwise ? 1 : x.C;
        Weight = pb.ConvWeight(name + ".weight", outChannels, inPerGroup, kernel);
        Output = pb.Activation(outChannels, Geometry.OutputSize(x.H), Geometry.OutputSize(x.W));
        pb.Record(name, Kind.ToString().ToLowerInvariant() + " conv " + Geometry, Output, Weight.Count,
            (long)outChannels * Output.Plane * inPerGroup * kernel * kernel);
    }

    public Tensor X { get; }
    public Tensor Output { get; }
    public Parameter Weight { get; }
    public ConvGeometry Geometry { get; }
    public Form Kind { get; }

    public void Forward(IBackend b, bool training)
    {
        switch (Kind)
        {
            case Form.Pointwise: b.PointwiseConvForward(X, Weight.Value, Output); break;
            case Form.Depthwise: b.DepthwiseConvForward(X, Weight.Value, Output, Geometry); break;
            default: b.ConvForward(X, Weight.Value, Output, Geometry); break;
        }
    }

    /// <summary>Where the input gradient goes: none when the input has no gradient storage (the image).</summary>
    public Tensor InputGradient => X.Storage.Gradient is null ? default : X.Grad;

    public void Backward(IBackend b, bool accumulate)
    {
        var dx = InputGradient;
        switch (Kind)
        {
            case Form.Pointwise: b.PointwiseConvBackward(X, Weight.Value, Output.Grad, dx, accumulate, Weight.Grad); break;
            case Form.Depthwise: b.DepthwiseConvBackward(X, Weight.Value, Output.Grad, dx, accumulate, Weight.Grad, Geometry); break;
            default: b.ConvBackward(X, Weight.Value, Output.Grad, dx, accumulate, Weight.Grad, Geometry); break;
        }
    }
}

namespace GhostNet.Backends;

/// <summary>
/// The op families a training step is reported by: <see cref="ProfilingBackend"/> times each
/// <see cref="IBackend"/> call under one of these names, and the CUDA backend's launch recorder
/// attributes each kernel launch to the family of the call that made it, so modelled and
/// measured rows line up.
/// </summary>
public static class OpFamily
{
    public const string Upload = "upload";
    /// <summary>ToTensor and Normalize of uploaded pixels (<see cref="IBackend.NormalizeImages"/>).</summary>
    public const string Input = "input (normalise)";
    public const string Download = "download";
    public const string Fill = "fill";
    public const string DenseConvForward = "dense conv fwd";
    public const string DenseConvBackward = "dense conv bwd";
    public const string PointwiseConvForward = "pointwise conv fwd";
    public const string PointwiseConvBackward = "pointwise conv bwd";
    public const string DepthwiseConvForward = "depthwise conv fwd";
    public const string DepthwiseConvBackward = "depthwise conv bwd";
    public const string BatchNormForward = "batch norm fwd";
    public const string BatchNormBackward = "batch norm bwd";
    public const string Elementwise = "elementwise";
    public const string SqueezeExcite = "squeeze-excite";
    public const string Pooling = "pooling";
    public const string Linear = "linear";
    public const string Head = "head (dropout, loss, top-k)";
    public const string Sgd = "sgd";

    /// <summary>Every family, in the order reports list them.</summary>
    public static IReadOnlyList<string> All { get; } =
    [
        DenseConvForward, DenseConvBackward, PointwiseConvForward, PointwiseConvBackward, DepthwiseConvForward, DepthwiseConvBackward,
        BatchNormForward, BatchNormBackward, Elementwise, SqueezeExcite, Pooling, Linear, Head, Sgd, Fill, Input, Upload, Download,
    ];
}

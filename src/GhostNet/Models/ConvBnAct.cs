using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// timm's ConvBnAct (keys conv, bn1): conv without bias (kernel k, "same" padding), batch norm,
/// ReLU (or the given activation: MobileNetV3's last block has hard-swish). GhostNet's last block
/// uses it with k = 1; the benchmarks use it as the standard
/// convolution a Ghost module replaces. The pair is a <see cref="ConvBn"/>, so a 1x1 one's
/// backward may be fused.
/// </summary>
public sealed class ConvBnAct : ILayer
{
    private readonly ConvBn _pair;

    public ConvBnAct(PlanBuilder pb, string name, Tensor x, int outChannels, int kernel = 1, Activation activation = Activation.Relu)
    {
        var conv = new Conv2d(pb, name + ".conv", x, outChannels, kernel, 1, kernel / 2);
        _pair = new ConvBn(conv, new BatchNorm2d(pb, name + ".bn1", conv.Output, activation));
    }

    public Tensor Output => _pair.Output;

    public void Forward(IBackend b, bool training) => _pair.Forward(b, training);

    public void Backward(IBackend b, bool accumulate) => _pair.Backward(b, accumulate);
}

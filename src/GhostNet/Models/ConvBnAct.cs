using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// timm's ConvBnAct (keys conv, bn1): conv without bias (kernel k, "same" padding), batch norm,
/// ReLU. GhostNet's last block uses it with k = 1; the benchmarks use it as the standard
/// convolution a Ghost module replaces.
/// </summary>
public sealed class ConvBnAct : ILayer
{
    private readonly Conv2d _conv;
    private readonly BatchNorm2d _bn;

    public ConvBnAct(PlanBuilder pb, string name, Tensor x, int outChannels, int kernel = 1)
    {
        _conv = new Conv2d(pb, name + ".conv", x, outChannels, kernel, 1, kernel / 2);
        _bn = new BatchNorm2d(pb, name + ".bn1", _conv.Output, relu: true);
    }

    public Tensor Output => _bn.Output;

    public void Forward(IBackend b, bool training)
    {
        _conv.Forward(b, training);
        _bn.Forward(b, training);
    }

    public void Backward(IBackend b, bool accumulate)
    {
        _bn.Backward(b, false);
        _conv.Backward(b, accumulate);
    }
}

using GhostNet.Backends;

namespace GhostNet.Layers;

/// <summary>
/// A layer compiled for one input shape: its input, output and parameters are fixed views, so
/// forward and backward only launch kernels. Backward reads the gradient of <see cref="Output"/>
/// and writes the gradient of its input, adding to what is there when <c>accumulate</c> is true
/// (the input has another consumer whose backward already ran).
/// </summary>
public interface ILayer
{
    Tensor Output { get; }
    void Forward(IBackend b, bool training);
    void Backward(IBackend b, bool accumulate);
}

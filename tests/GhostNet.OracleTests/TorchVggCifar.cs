using GhostNet.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace GhostNet.OracleTests;

// An independent transcription of the CIFAR VGG-16 with batch norm (the usual nn.Sequential of
// conv, batch norm, ReLU and 2x2 max pools, then a linear layer on the pooled 512 channels), and
// of its Ghost twin, each conv and batch norm ghostnet.pytorch's GhostModule(kernel_size 3, ratio
// s, dw_size d) in the conv's slot (Identity in the two slots after it, so the indices stay).
// Only the layer table (VggCifarConfig.Layers) is shared with the product.
#pragma warning disable IDE1006 // snake_case: these names are the state-dict keys

internal sealed class TorchVggCifar : Module<Tensor, Tensor>
{
    private readonly Sequential features;
    private readonly Linear classifier;

    public TorchVggCifar(VggCifarConfig config) : base(nameof(TorchVggCifar))
    {
        var layers = new List<Module<Tensor, Tensor>>();
        long inChannels = 3;
        foreach (int channels in VggCifarConfig.Layers)
        {
            if (channels == 0)
            {
                layers.Add(MaxPool2d(2L, 2L));
                continue;
            }
            if (config.Ghost)
                layers.AddRange([new TorchGhostModule(inChannels, channels, relu: true, kernel: 3, config.GhostRatio, config.GhostDwSize), Identity(), Identity()]);
            else layers.AddRange([Conv2d(inChannels, channels, 3L, padding: 1L, bias: false), BatchNorm2d(channels), ReLU()]);
            inChannels = channels;
        }
        features = Sequential(layers.ToArray());
        classifier = Linear(512, config.NumClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => classifier.call(features.call(x).mean([2, 3]));
}

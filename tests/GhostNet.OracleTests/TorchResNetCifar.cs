using GhostNet.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace GhostNet.OracleTests;

// An independent transcription of the CIFAR ResNet (He et al. 2016, option B shortcuts) with
// torchvision's BasicBlock names, and of its Ghost twin, where each 3x3 conv and its batch norm
// are ghostnet.pytorch's GhostModule(kernel_size 3, ratio s, dw_size d, stride). Nothing of the
// product's ResNet is shared: only the configuration record that says depth, s and d.
#pragma warning disable IDE1006 // snake_case: these names are the state-dict keys

internal sealed class TorchBasicBlock : Module<Tensor, Tensor>
{
    // Declaration order is registration order: torchvision's.
    private readonly Module<Tensor, Tensor> conv1;
    private readonly BatchNorm2d? bn1;
    private readonly Module<Tensor, Tensor> conv2;
    private readonly BatchNorm2d? bn2;
    private readonly Sequential? downsample;

    public TorchBasicBlock(long inplanes, long planes, long stride, ResNetCifarConfig config) : base(nameof(TorchBasicBlock))
    {
        if (config.Ghost)
        {
            conv1 = new TorchGhostModule(inplanes, planes, relu: true, kernel: 3, config.GhostRatio, config.GhostDwSize, stride);
            conv2 = new TorchGhostModule(planes, planes, relu: false, kernel: 3, config.GhostRatio, config.GhostDwSize);
        }
        else
        {
            conv1 = Conv2d(inplanes, planes, 3L, stride: stride, padding: 1L, bias: false);
            bn1 = BatchNorm2d(planes);
            conv2 = Conv2d(planes, planes, 3L, stride: 1L, padding: 1L, bias: false);
            bn2 = BatchNorm2d(planes);
        }
        if (stride != 1 || inplanes != planes) downsample = Sequential(Conv2d(inplanes, planes, 1L, stride: stride, bias: false), BatchNorm2d(planes));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = conv1.call(x);
        if (bn1 is not null) h = functional.relu(bn1.call(h));
        h = conv2.call(h);
        if (bn2 is not null) h = bn2.call(h);
        return functional.relu(h + (downsample is null ? x : downsample.call(x)));
    }
}

internal sealed class TorchResNetCifar : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Sequential layer1, layer2, layer3;
    private readonly Linear fc;

    public TorchResNetCifar(ResNetCifarConfig config) : base(nameof(TorchResNetCifar))
    {
        int n = (config.Depth - 2) / 6;
        conv1 = Conv2d(3, 16, 3L, padding: 1L, bias: false);
        bn1 = BatchNorm2d(16);
        long inplanes = 16;
        Sequential Stage(long planes, long stride)
        {
            var blocks = new List<Module<Tensor, Tensor>>();
            for (int i = 0; i < n; i++)
            {
                blocks.Add(new TorchBasicBlock(inplanes, planes, i == 0 ? stride : 1, config));
                inplanes = planes;
            }
            return Sequential(blocks.ToArray());
        }
        layer1 = Stage(16, 1);
        layer2 = Stage(32, 2);
        layer3 = Stage(64, 2);
        fc = Linear(64, config.NumClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = functional.relu(bn1.call(conv1.call(x)));
        x = layer3.call(layer2.call(layer1.call(x)));
        return fc.call(x.mean([2, 3]));
    }
}

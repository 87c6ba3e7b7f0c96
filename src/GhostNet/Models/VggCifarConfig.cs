using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// VGG-16 with batch norm in the CIFAR layout (Simonyan and Zisserman 2015; the CIFAR form of
/// the Ghost paper's table 2: 3x3 convs in five stages of 64, 128, 256, 512, 512 channels, each
/// stage ending in a 2x2 max pool, then global average pool and one linear layer), and its Ghost
/// twin: every conv and its batch norm a Ghost module of ratio s with d x d cheap operations.
/// Keys are those of the usual CIFAR VGG's nn.Sequential: features.{i} counts conv, batch norm,
/// ReLU and pool slots (conv 0, bn 1, conv 3, bn 4, pool 6, ...); a Ghost module keeps its conv's
/// slot. Its convs have no bias (batch norm follows each), so a PyTorch file with conv biases
/// loads only through --pretrained.
/// </summary>
public sealed record VggCifarConfig(bool Ghost = false, int GhostRatio = 2, int GhostDwSize = 3, int NumClasses = 10, float DropRate = 0f,
    int InChannels = 3) : IModelConfig, IGhostTwin
{
    /// <summary>VGG-16's configuration "D": channels of each 3x3 conv, 0 for a max pool.</summary>
    public static readonly int[] Layers = [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0];

    internal static IEnumerable<RegisteredModel> Registrations =>
        from ghost in new[] { false, true }
        let name = ghost ? "ghost_vgg16_cifar" : "vgg16_cifar"
        select new RegisteredModel(name, ghost
                ? "Ghost-VGG-16 for CIFAR (Han et al. 2020): each conv a Ghost module (--ghost-ratio s, --ghost-dw-size d)"
                : "VGG-16 with batch norm for CIFAR (Simonyan and Zisserman 2015)",
            32, 10, o =>
            {
                ModelRegistry.Refuse(name, "width multiplier", o.Width, 1f);
                if (!ghost)
                {
                    ModelRegistry.Refuse(name, "ghost ratio", o.GhostRatio);
                    ModelRegistry.Refuse(name, "ghost dw size", o.GhostDwSize);
                }
                return new VggCifarConfig(ghost, o.GhostRatio ?? 2, o.GhostDwSize ?? 3, o.NumClasses, o.DropRate ?? 0f, o.InChannels);
            });

    public string Arch => Ghost ? "ghost_vgg16_cifar" : "vgg16_cifar";
    public float Width => 1f;
    public IModelConfig? Standard => Ghost ? this with { Ghost = false } : null;
    public ModelOptions Options => new(NumClasses, DropRate, null, Ghost ? GhostRatio : null, Ghost ? GhostDwSize : null, InChannels);
    public string Title => Ghost ? $"Ghost-VGG-16 s={GhostRatio} d={GhostDwSize}" : "VGG-16";

    public void Validate()
    {
        ModelChecks.Ghost(GhostRatio, GhostDwSize);
        ModelChecks.Common(NumClasses, DropRate, InChannels);
    }

    public Network Build(PlanBuilder pb, Tensor input) => new Vgg(pb, this, input);

    private sealed class Vgg : Network
    {
        public Vgg(PlanBuilder pb, VggCifarConfig config, Tensor input) : base(config, input)
        {
            var x = input;
            int slot = 0;
            foreach (int channels in Layers)
            {
                if (channels == 0)
                {
                    x = Add(new MaxPool2d(pb, $"features.{slot}", x, 2, 2)).Output;
                    slot++;
                    continue;
                }
                if (config.Ghost) x = Add(new GhostModule(pb, $"features.{slot}", x, channels, kernelSize: 3, config.GhostRatio, config.GhostDwSize)).Output;
                else
                {
                    var conv = new Conv2d(pb, $"features.{slot}", x, channels, 3, 1, 1);
                    x = Add(new ConvBn(conv, new BatchNorm2d(pb, $"features.{slot + 1}", conv.Output, Activation.Relu))).Output;
                }
                slot += 3; // conv, batch norm, ReLU
            }
            Logits = PoolAndClassify(pb, x, config.DropRate, config.NumClasses);
        }
    }
}

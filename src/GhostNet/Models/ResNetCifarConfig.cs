using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// The CIFAR ResNet of He et al. (2016, section 4.2) and its Ghost twin (Han et al. 2020, table
/// 3): a 3x3 conv of 16 channels, three stages of n basic blocks at 16, 32 and 64 channels (the
/// first block of stages 2 and 3 halves the plane), global average pool, linear; depth 6n + 2.
/// Shortcuts are option B: a 1x1 conv + batch norm where the shape changes (2,752 parameters
/// at depth 56 beyond option A's zero padding, which needs an op of its own and no state).
/// With <see cref="Ghost"/>, every 3x3 conv of the blocks and its batch norm become a Ghost
/// module of ratio s and cheap d x d depthwise ops; the stem and the 1x1 shortcuts stay convs.
/// Keys follow torchvision's ResNet: conv1, bn1, layer{1,2,3}.i.{conv1,bn1,conv2,bn2,downsample}, fc.
/// </summary>
public sealed record ResNetCifarConfig(int Depth = 56, bool Ghost = false, int GhostRatio = 2, int GhostDwSize = 3,
    int NumClasses = 10, float DropRate = 0f, int InChannels = 3) : IModelConfig, IGhostTwin
{
    public static readonly int[] StageChannels = [16, 32, 64];

    /// <summary>The registry's entries: ResNet-20 and -56 and their Ghost twins.</summary>
    internal static IEnumerable<RegisteredModel> Registrations =>
        from depth in new[] { 20, 56 }
        from ghost in new[] { false, true }
        let name = Name(depth, ghost)
        select new RegisteredModel(name, ghost
                ? $"Ghost-ResNet-{depth} for CIFAR (Han et al. 2020): each 3x3 conv a Ghost module (--ghost-ratio s, --ghost-dw-size d)"
                : $"ResNet-{depth} for CIFAR (He et al. 2016), option B shortcuts",
            32, 10, o =>
            {
                ModelRegistry.Refuse(name, "width multiplier", o.Width, 1f);
                if (!ghost)
                {
                    ModelRegistry.Refuse(name, "ghost ratio", o.GhostRatio);
                    ModelRegistry.Refuse(name, "ghost dw size", o.GhostDwSize);
                }
                return new ResNetCifarConfig(depth, ghost, o.GhostRatio ?? 2, o.GhostDwSize ?? 3, o.NumClasses, o.DropRate ?? 0f, o.InChannels);
            });

    private static string Name(int depth, bool ghost) => $"{(ghost ? "ghost_" : "")}resnet{depth}";

    public string Arch => Name(Depth, Ghost);
    public float Width => 1f;
    public string Head => "fc.";
    public IModelConfig? Standard => Ghost ? this with { Ghost = false } : null;
    public ModelOptions Options => new(NumClasses, DropRate, null, Ghost ? GhostRatio : null, Ghost ? GhostDwSize : null, InChannels);
    public string Title => Ghost ? $"Ghost-ResNet-{Depth} s={GhostRatio} d={GhostDwSize}" : $"ResNet-{Depth}";

    public void Validate()
    {
        if (Depth < 8 || (Depth - 2) % 6 != 0 || Depth > 1202) throw new ArgumentOutOfRangeException(nameof(Depth), $"ResNet depth {Depth} is not 6n + 2 for n in 1..200");
        ModelChecks.Ghost(GhostRatio, GhostDwSize);
        ModelChecks.Common(NumClasses, DropRate, InChannels);
    }

    public Network Build(PlanBuilder pb, Tensor input) => new ResNetCifar(pb, this, input);

    /// <summary>A 3x3 conv and its batch norm, or in the Ghost twin the Ghost module that replaces them.</summary>
    private ILayer ConvUnit(PlanBuilder pb, string name, string bnName, Tensor x, int channels, int stride, bool relu, bool ghostable = true)
    {
        if (Ghost && ghostable) return new GhostModule(pb, name, x, channels, kernelSize: 3, GhostRatio, GhostDwSize, stride, relu);
        var conv = new Conv2d(pb, name, x, channels, 3, stride, 1);
        return new ConvBn(conv, new BatchNorm2d(pb, bnName, conv.Output, ActivationOps.ReluIf(relu)));
    }

    private sealed class ResNetCifar : Network
    {
        public ResNetCifar(PlanBuilder pb, ResNetCifarConfig config, Tensor input) : base(config, input)
        {
            var x = Add(config.ConvUnit(pb, "conv1", "bn1", input, StageChannels[0], 1, relu: true, ghostable: false)).Output;
            int n = (config.Depth - 2) / 6;
            for (int stage = 0; stage < StageChannels.Length; stage++)
                for (int i = 0; i < n; i++)
                    x = Add(new BasicBlock(pb, config, $"layer{stage + 1}.{i}", x, StageChannels[stage], stage > 0 && i == 0 ? 2 : 1)).Output;
            Logits = PoolAndClassify(pb, x, config.DropRate, config.NumClasses, "fc");
        }
    }

    /// <summary>relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).</summary>
    private sealed class BasicBlock : ILayer
    {
        private readonly ILayer _conv1, _conv2;
        private readonly ConvBn? _downsample;
        private readonly Tensor _x, _shortcut, _sum;

        public BasicBlock(PlanBuilder pb, ResNetCifarConfig config, string name, Tensor x, int channels, int stride)
        {
            _x = x;
            _conv1 = config.ConvUnit(pb, name + ".conv1", name + ".bn1", x, channels, stride, relu: true);
            _conv2 = config.ConvUnit(pb, name + ".conv2", name + ".bn2", _conv1.Output, channels, 1, relu: false);
            var y = _conv2.Output;
            _shortcut = x;
            if (stride != 1 || x.C != channels)
            {
                var conv = new Conv2d(pb, name + ".downsample.0", x, channels, 1, stride, 0);
                _shortcut = pb.Activation(channels, y.H, y.W).WithGradientOf(y);
                _downsample = new ConvBn(conv, new BatchNorm2d(pb, name + ".downsample.1", conv.Output, Activation.None, _shortcut));
            }
            // The sum passes its gradient to both branches unchanged: the sum, the main branch's
            // output and a projecting shortcut's share one gradient buffer, so nothing is copied.
            _sum = pb.Activation(channels, y.H, y.W).WithGradientOf(y);
            Output = pb.Activation(channels, y.H, y.W);
            pb.Record(name, "basic block (sum, relu)", Output, 0, 0);
        }

        public Tensor Output { get; }

        public void Forward(IBackend b, bool training)
        {
            _conv1.Forward(b, training);
            _conv2.Forward(b, training);
            _downsample?.Forward(b, training);
            b.Add(_conv2.Output, _shortcut, _sum);
            b.Relu(_sum, Output);
        }

        public void Backward(IBackend b, bool accumulate)
        {
            b.ReluBackward(Output, Output.Grad, _sum.Grad, false);
            // The shortcut reads the shared gradient first: a Ghost module's backward adds its
            // cheap operation's part into the intrinsic half of it.
            if (_downsample is null) b.CopyOrAccumulate(_sum.Grad, _x.Grad, accumulate);
            else _downsample.Backward(b, accumulate);
            _conv2.Backward(b, false);
            _conv1.Backward(b, accumulate: true);
        }
    }
}

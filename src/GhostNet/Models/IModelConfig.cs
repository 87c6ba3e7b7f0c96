using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Models;

/// <summary>
/// A registered model's configuration: the values every model shares (what the plan, the
/// checkpoint and the CLI read) and <see cref="Build"/>, which declares its layers for one input.
/// A configuration is a value: two equal ones build the same network.
/// </summary>
public interface IModelConfig
{
    /// <summary>The registered name this configuration was made from (<see cref="ModelRegistry"/>).</summary>
    string Arch { get; }

    /// <summary>The channel multiplier; 1 for a model that has none.</summary>
    float Width { get; }

    int NumClasses { get; }
    float DropRate { get; }
    int InChannels { get; }

    /// <summary>The options that make this configuration again through its registered factory (what a checkpoint stores).</summary>
    ModelOptions Options { get; }

    /// <summary>The model and its options in a few words, e.g. "GhostNet width 1" or "Ghost-ResNet-56 s=2 d=3".</summary>
    string Title { get; }

    /// <summary>The name prefix of the layer that makes the logits: what fine-tuning to another class count starts afresh (timm's classifier, torchvision's fc).</summary>
    string Head => "classifier.";

    /// <summary>How the model's weights start when the caller does not say (the seed's ghost_net: its Kaiming-normal).</summary>
    InitScheme DefaultInit => InitScheme.PyTorchDefault;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first value out of range.</summary>
    void Validate();

    /// <summary>Declares the network's layers for <paramref name="input"/>: registers state on the first build, records the layer table.</summary>
    Network Build(PlanBuilder pb, Tensor input);
}

/// <summary>
/// What a user may choose of a registered model (timm's create_model keyword arguments). Null
/// means the model's default; a model refuses an option it does not have unless it is null.
/// </summary>
public sealed record ModelOptions(int NumClasses = 1000, float? DropRate = null, float? Width = null, int? GhostRatio = null, int? GhostDwSize = null, int InChannels = 3);

/// <summary>A model that can replace its convolutions with Ghost modules (the paper's "Ghost-" networks).</summary>
public interface IGhostTwin
{
    int GhostRatio { get; }
    int GhostDwSize { get; }

    /// <summary>The same network with standard convolutions where this one has Ghost modules; null when this one is the standard network.</summary>
    IModelConfig? Standard { get; }
}

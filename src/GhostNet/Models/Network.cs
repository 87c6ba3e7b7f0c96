using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Models;

/// <summary>
/// A network built for one input shape: its layers in forward order (which is also state-dict
/// order), the logits they end in, and its dropouts. A model's file derives from it and declares
/// its layers in the constructor with <see cref="Add"/>; the plan runs them.
/// </summary>
public abstract class Network
{
    private readonly List<ILayer> _layers = [];
    private readonly List<Dropout> _dropouts = [];

    /// <summary>Checks the configuration and that <paramref name="input"/> has its channels, before a derived network declares a layer.</summary>
    protected Network(IModelConfig config, in Tensor input)
    {
        config.Validate();
        if (input.C != config.InChannels) throw new ArgumentException($"input has {input.C} channels, the model expects {config.InChannels}");
    }

    /// <summary>The last layer's output (N x classes x 1 x 1); set once the constructor has declared it.</summary>
    public Tensor Logits { get; protected set; }

    /// <summary>Where every dropout mask's seed is read when the forward and backward run (two elements: a u64).</summary>
    public void SetDropoutSeedAt(in Tensor seed)
    {
        foreach (var d in _dropouts) d.SeedAt = seed;
    }

    public void Forward(IBackend b, bool training)
    {
        foreach (var layer in _layers) layer.Forward(b, training);
    }

    /// <summary>Backpropagates from the gradient already in <see cref="Logits"/>'s gradient view.</summary>
    public void Backward(IBackend b)
    {
        for (int i = _layers.Count - 1; i >= 0; i--) _layers[i].Backward(b, false);
    }

    protected T Add<T>(T layer) where T : ILayer
    {
        _layers.Add(layer);
        if (layer is Dropout d) _dropouts.Add(d);
        return layer;
    }

    /// <summary>Global average pool, then the classifier (with bias) and, before it, dropout when <paramref name="dropRate"/> is above 0.</summary>
    protected Tensor PoolAndClassify(PlanBuilder pb, Tensor x, float dropRate, int classes, string classifier = "classifier")
    {
        x = Add(new GlobalAvgPool(pb, "global_pool", x)).Output;
        if (dropRate > 0) x = Add(new Dropout(pb, x, dropRate)).Output;
        return Add(new Linear(pb, classifier, x, classes)).Output;
    }
}

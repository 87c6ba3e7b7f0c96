using GhostNet.Backends;

namespace GhostNet.Graph;

/// <summary>How a parameter is drawn at initialisation; fans are PyTorch's (fan_out ignores groups).</summary>
public enum ParamInit { ConvWeight, LinearWeight, Bias, One, Zero }

/// <summary>One state-dict entry: a learnable parameter, a running statistic, or a counter.</summary>
public abstract class StateEntry(string name, int[] shape)
{
    public string Name { get; } = name;
    /// <summary>PyTorch's shape, e.g. [16, 3, 3, 3] for conv_stem.weight; [] for a scalar counter.</summary>
    public int[] Shape { get; } = shape;
    public long Count { get; } = shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>The shape padded to 4-d (trailing ones) as the backend's tensors are.</summary>
    protected (int, int, int, int) Dims4 => (At(0), At(1), At(2), At(3));

    private int At(int i) => i < Shape.Length ? Shape[i] : 1;

    public override string ToString() => $"{Name} [{string.Join(", ", Shape)}]";
}

/// <summary>A learnable tensor with its gradient and momentum buffer at the same offset of their arenas.</summary>
public sealed class Parameter(string name, int[] shape, ParamInit init, int fanIn, int fanOut) : StateEntry(name, shape)
{
    public ParamInit Init { get; } = init;
    public int FanIn { get; } = fanIn;
    public int FanOut { get; } = fanOut;
    /// <summary>timm's rule for weight decay exemptions: 1-d tensors (norm weights and biases).</summary>
    public bool Decays => Shape.Length > 1;
    internal Storage? Storage { get; set; }
    internal Storage? MomentumStorage { get; set; }
    internal long Offset { get; set; } = -1;

    public Tensor Value => View(Storage);
    public Tensor Grad => Value.Grad;
    public Tensor Momentum => View(MomentumStorage);

    private Tensor View(Storage? storage)
    {
        if (storage is null || Offset < 0) throw new InvalidOperationException($"{Name} is not placed in memory yet");
        var (a, b, c, d) = Dims4;
        return new Tensor(storage, Offset, a, b, c, d);
    }
}

/// <summary>A running statistic of batch norm (not learned, saved with the model).</summary>
public sealed class StatBuffer(string name, int channels, float initial) : StateEntry(name, [channels])
{
    public float Initial { get; } = initial;
    internal Storage? Storage { get; set; }
    internal long Offset { get; set; } = -1;

    public Tensor Value => Storage is null || Offset < 0
        ? throw new InvalidOperationException($"{Name} is not placed in memory yet")
        : new Tensor(Storage, Offset, (int)Count, 1, 1, 1);
}

/// <summary>BatchNorm's num_batches_tracked: an int64 scalar kept on the host.</summary>
public sealed class Counter(string name) : StateEntry(name, [])
{
    public long Value { get; set; }
}

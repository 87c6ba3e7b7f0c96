using GhostNet.Backends;

namespace GhostNet.Graph;

/// <summary>One row of the layer table that <c>ghostcuda info</c> prints.</summary>
public sealed record LayerRecord(string Name, string Kind, int C, int H, int W, long Parameters, long MultiplyAdds);

/// <summary>
/// What layers see while a network is built for one input shape: it hands out activation views
/// (planned offsets in one arena, bound to memory at the end) and parameters (registered on the
/// first build, looked up by name afterwards), and records the layer table.
/// </summary>
public sealed class PlanBuilder
{
    public PlanBuilder(ParameterSet parameters, int batch, bool withGradients, ElementType activations = ElementType.Float32)
    {
        Parameters = parameters;
        Batch = batch;
        Activations = new Storage("activations", 0, activations);
        if (withGradients) Activations.WithGradient();
        Statistics = new Storage("batch_statistics");
    }

    public ParameterSet Parameters { get; }
    public int Batch { get; }
    public Storage Activations { get; }

    /// <summary>Per-channel vectors (saved batch statistics): fp32 whatever the activations are, and without gradients.</summary>
    public Storage Statistics { get; }
    public List<LayerRecord> Records { get; } = [];

    public Tensor Activation(int channels, int height, int width) =>
        new(Activations, Activations.Reserve((long)Batch * channels * height * width), Batch, channels, height, width);

    /// <summary>A per-channel vector (saved batch statistics), in <see cref="Statistics"/>.</summary>
    public Tensor Vector(int length) => new(Statistics, Statistics.Reserve(length), length, 1, 1, 1);

    public Parameter ConvWeight(string name, int outChannels, int inPerGroup, int kernel) =>
        Parameters.GetOrAdd(name, () => new Parameter(name, [outChannels, inPerGroup, kernel, kernel], ParamInit.ConvWeight,
            inPerGroup * kernel * kernel, outChannels * kernel * kernel));

    public Parameter LinearWeight(string name, int outFeatures, int inFeatures, bool asConv) =>
        Parameters.GetOrAdd(name, () => new Parameter(name, asConv ? [outFeatures, inFeatures, 1, 1] : [outFeatures, inFeatures],
            ParamInit.LinearWeight, inFeatures, outFeatures));

    public Parameter Bias(string name, int length, int fanIn) =>
        Parameters.GetOrAdd(name, () => new Parameter(name, [length], ParamInit.Bias, fanIn, length));

    public Parameter Constant(string name, int length, float value) =>
        Parameters.GetOrAdd(name, () => new Parameter(name, [length], value == 1f ? ParamInit.One : ParamInit.Zero, length, length));

    public StatBuffer Stat(string name, int length, float initial) =>
        Parameters.GetOrAdd(name, () => new StatBuffer(name, length, initial));

    public Counter Counter(string name) => Parameters.GetOrAdd(name, () => new Counter(name));

    public void Record(string name, string kind, in Tensor output, long parameters, long multiplyAdds) =>
        Records.Add(new LayerRecord(name, kind, output.C, output.H, output.W, parameters, multiplyAdds));
}

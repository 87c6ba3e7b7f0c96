using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Models;

/// <summary>
/// A registered model's state on one backend (<see cref="ModelRegistry"/>; the library's name is
/// GhostNet's, the model may be any): configuration and parameters (with gradients, momentum
/// and running statistics). <see cref="Compile"/> makes plans for particular input shapes; all
/// plans of a model share its parameters.
/// </summary>
public sealed class GhostNetModel : IDisposable
{
    /// <param name="init">How the weights start; null: the model's own (<see cref="IModelConfig.DefaultInit"/>).</param>
    public GhostNetModel(IModelConfig config, IBackend backend, int seed = 0, InitScheme? init = null)
    {
        config.Validate();
        Config = config;
        Backend = backend;
        Seed = seed;
        Parameters = new ParameterSet();
        // Building once for a nominal shape registers every state entry in timm's order.
        Build(Parameters, config, 32, 32);
        Parameters.Place(backend);
        Initializer.Initialize(Parameters, backend, init ?? config.DefaultInit, seed);
    }

    public IModelConfig Config { get; }
    /// <summary>Seeds initialisation and, through the plans, the dropout masks.</summary>
    public int Seed { get; }
    public IBackend Backend { get; }
    public ParameterSet Parameters { get; }

    /// <summary>A plan for batches of (batch, channels, height, width); without gradients it can only infer.</summary>
    public Plan Compile(int batch, int height, int width, bool withGradients = true) =>
        new(this, batch, height, width, withGradients);

    /// <summary>The layer table at one input size (no memory is allocated).</summary>
    public static IReadOnlyList<LayerRecord> Describe(IModelConfig config, int height, int width) =>
        Build(new ParameterSet(), config, height, width).Records;

    /// <summary>Learnable parameter count of a configuration, e.g. 5,182,508 for ghostnet_100, 855,770 for resnet56 at 10 classes.</summary>
    public static long CountParameters(IModelConfig config)
    {
        var set = new ParameterSet();
        Build(set, config, 32, 32);
        return set.ParameterCount;
    }

    /// <summary>
    /// The bytes a plan for this shape will allocate (input, activations and, for training, their
    /// gradients), computed without allocating: callers check it against free memory first.
    /// <paramref name="activations"/>: how the backend holds them (bf16 halves the largest part).
    /// </summary>
    public static long PlanBytes(IModelConfig config, int batch, int height, int width, bool withGradients, ElementType activations = ElementType.Float32)
    {
        if (batch < 1 || height < 1 || width < 1) throw new ArgumentOutOfRangeException(nameof(batch), $"bad plan shape {batch}x{height}x{width}");
        var pb = new PlanBuilder(new ParameterSet(), batch, withGradients, activations);
        long input = (long)batch * config.InChannels * height * width;
        _ = config.Build(pb, new Tensor(new Storage("input", input, activations), 0, batch, config.InChannels, height, width));
        long pixels = 2 * ((input + 3) / 4); // the batch's bytes as uploaded, four to an element, twice (Plan.SetBatch of pixels: the next batch lands beside)
        return activations.Bytes() * (input + pb.Activations.Length * (withGradients ? 2 : 1))
            + 4 * (pixels + pb.Statistics.Length + 3L * batch + BatchTotals.Words);
    }

    /// <summary>
    /// The host bytes a plan's uploads hold on a backend with page-locked stagings (CUDA): two of
    /// each of the pixel batch, the labels and the step's values (float image batches add two of
    /// the input, made only when first used). Host memory, beside the loader's buffers.
    /// </summary>
    public static long StagingBytes(IModelConfig config, int batch, int height, int width)
    {
        if (batch < 1 || height < 1 || width < 1) throw new ArgumentOutOfRangeException(nameof(batch), $"bad plan shape {batch}x{height}x{width}");
        long pixelWords = ((long)batch * config.InChannels * height * width + 3) / 4;
        return 2 * 4 * (pixelWords + batch + 4);
    }

    /// <summary>The bytes of a model's state: parameters, their gradients and momentum, running statistics.</summary>
    public static long StateBytes(IModelConfig config) => 4 * 3 * CountParameters(config);

    /// <summary>Builds the network for one image of the given size without memory: registers state, records layers.</summary>
    private static PlanBuilder Build(ParameterSet set, IModelConfig config, int height, int width)
    {
        var pb = new PlanBuilder(set, 1, withGradients: false);
        _ = config.Build(pb, new Tensor(new Storage("input", (long)config.InChannels * height * width), 0, 1, config.InChannels, height, width));
        return pb;
    }

    public void Dispose() => Parameters.Dispose();
}

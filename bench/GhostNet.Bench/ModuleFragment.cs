using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Layers;

namespace GhostNet.Bench;

/// <summary>
/// One layer (a Ghost module, or a standard conv + BN + ReLU) compiled on its own for a batch
/// shape, with random input, weights and output gradient: what the module benchmarks time.
/// </summary>
internal sealed class ModuleFragment : IDisposable
{
    private readonly Storage _input;
    private readonly ParameterSet _parameters = new();
    private readonly PlanBuilder _builder;
    private readonly IBackend _backend;

    public ModuleFragment(IBackend backend, int batch, int channels, int size, Func<PlanBuilder, Tensor, ILayer> build)
    {
        _backend = backend;
        _input = new Storage("input").WithGradient();
        var x = new Tensor(_input, _input.Reserve((long)batch * channels * size * size), batch, channels, size, size);
        _builder = new PlanBuilder(_parameters, batch, withGradients: true);
        Layer = build(_builder, x);
        _parameters.Place(backend);
        Initializer.Initialize(_parameters, backend, InitScheme.PyTorchDefault, seed: 0);
        _input.Bind(backend);
        _builder.Activations.Bind(backend);
        var rng = new Random(0);
        backend.Upload(Enumerable.Range(0, (int)x.Count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), x);
        var dy = Layer.Output.Grad;
        backend.Fill(dy, 0.01f); // a constant output gradient is enough for timing
    }

    public ILayer Layer { get; }

    public void Forward()
    {
        Layer.Forward(_backend, training: true);
        _backend.Synchronize();
    }

    public void ForwardBackward()
    {
        Layer.Forward(_backend, training: true);
        Layer.Backward(_backend, accumulate: false);
        _backend.Synchronize();
    }

    public void Dispose()
    {
        _input.Release();
        _builder.Activations.Release();
        _parameters.Dispose();
    }
}

using BenchmarkDotNet.Attributes;
using GhostNet.Cpu;
using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Bench;

/// <summary>
/// Whole-model CPU speed: one SGD training step (forward, loss, backward, update) and one
/// inference forward of GhostNet on random data. A step takes seconds on two cores, so each
/// invocation is one step and BenchmarkDotNet runs a handful of them.
/// </summary>
[Config(typeof(InProcessConfig))]
public class CpuTrainingBenchmarks
{
    private CpuBackend _backend = null!;
    private GhostNetModel _model = null!;
    private Plan _train = null!, _infer = null!;
    private SgdOptimizer _sgd = null!;

    [Params("ghostnet_100")]
    public string Arch { get; set; } = "ghostnet_100";

    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "32x224";

    public static IEnumerable<string> Shapes => ["32x224", "128x32"];

    private (int Batch, int Size) Parsed
    {
        get
        {
            var p = Shape.Split('x');
            return (int.Parse(p[0]), int.Parse(p[1]));
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        var (batch, size) = Parsed;
        _backend = new CpuBackend();
        _model = new GhostNetModel(GhostNetConfig.FromArch(Arch), _backend, seed: 0);
        _train = _model.Compile(batch, size, size);
        _infer = _model.Compile(batch, size, size, withGradients: false);
        _sgd = new SgdOptimizer(_model.Parameters, _backend, new SgdOptions());
        var rng = new Random(0);
        var images = new float[batch * 3 * size * size];
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 2 - 1);
        var labels = Enumerable.Range(0, batch).Select(_ => rng.Next(1000)).ToArray();
        _train.SetBatch(images, labels);
        _infer.SetBatch(images, labels);
    }

    [Benchmark(Description = "train step")]
    public float TrainStep()
    {
        _train.Forward(training: true);
        _train.Backward();
        _sgd.Step(0.01f);
        return _train.Loss();
    }

    [Benchmark(Description = "inference")]
    public float Inference()
    {
        _infer.Forward(training: false);
        return _infer.Loss();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _train.Dispose();
        _infer.Dispose();
        _model.Dispose();
        _backend.Dispose();
    }
}

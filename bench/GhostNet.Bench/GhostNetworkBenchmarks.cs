using BenchmarkDotNet.Attributes;
using GhostNet.Cpu;
using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Bench;

/// <summary>
/// Whole networks against their Ghost twins on the CPU backend (issue 14): VGG-16 and
/// Ghost-VGG-16 for s = 2..5, ResNet-56 and Ghost-ResNet-56, at 32x32, batch 16; GhostNet 1.0x
/// against MobileNetV3-Large 0.75x and 1.0x at 224x224, batch 4: a training step (forward,
/// backward, SGD) and an inference forward. The networks' FLOP ratio is the
/// paper's prediction; `ghostcuda compare` measures the same on a GPU.
/// </summary>
[Config(typeof(InProcessConfig))]
public class GhostNetworkBenchmarks
{
    public const int CifarBatch = 16, ImageNetBatch = 4;

    public static IEnumerable<string> Models() =>
        ["vgg16_cifar", "ghost_vgg16_cifar:2", "ghost_vgg16_cifar:3", "ghost_vgg16_cifar:4", "ghost_vgg16_cifar:5", "resnet56", "ghost_resnet56:2",
            "ghostnet_100", "mobilenetv3_large_075", "mobilenetv3_large_100"];

    [ParamsSource(nameof(Models))]
    public string Model { get; set; } = "";

    private CpuBackend _backend = null!;
    private GhostNetModel _model = null!;
    private Plan _train = null!, _infer = null!;
    private SgdOptimizer _sgd = null!;

    [GlobalSetup]
    public void Setup()
    {
        var parts = Model.Split(':');
        int? ratio = parts.Length > 1 ? int.Parse(parts[1]) : null;
        var config = ModelRegistry.Create(parts[0], new ModelOptions(10, GhostRatio: ratio));
        // Each at the size it was made for: the CIFAR networks at 32, GhostNet and MobileNetV3 at 224.
        int size = ModelRegistry.Get(parts[0]).InputSize, batch = size > 64 ? ImageNetBatch : CifarBatch;
        _backend = new CpuBackend();
        _model = new GhostNetModel(config, _backend, seed: 0);
        _train = _model.Compile(batch, size, size);
        _infer = _model.Compile(batch, size, size, withGradients: false);
        var rng = new Random(0);
        var images = Enumerable.Range(0, batch * 3 * size * size).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var labels = Enumerable.Range(0, batch).Select(i => i % 10).ToArray();
        _train.SetBatch(images, labels);
        _infer.SetBatch(images, labels);
        _sgd = new SgdOptimizer(_model.Parameters, _backend, new SgdOptions());
    }

    [Benchmark(Description = "train step")]
    public void TrainStep()
    {
        _train.Forward(training: true);
        _train.Backward();
        _sgd.Step(0.01f);
    }

    [Benchmark(Description = "inference")]
    public void Inference() => _infer.Forward(training: false);

    [GlobalCleanup]
    public void Cleanup()
    {
        _train.Dispose();
        _infer.Dispose();
        _model.Dispose();
        _backend.Dispose();
    }
}

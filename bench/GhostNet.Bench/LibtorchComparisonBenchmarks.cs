using BenchmarkDotNet.Attributes;
using GhostNet.Cpu;
using GhostNet.Graph;
using GhostNet.Models;
using GhostNet.OracleTests;
using GhostNet.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace GhostNet.Bench;

/// <summary>
/// Our CPU backend against libtorch (TorchSharp 0.107, libtorch 2.10) on the same GhostNet, same
/// weights, same thread count, in one process: training step (forward, loss, backward, SGD) and
/// inference. Run through bench/run-cpu-comparison.sh, which sets libtorch's allocator tunables
/// (FACTS.md: glibc malloc costs it 2-40x on this VM otherwise).
/// </summary>
[Config(typeof(InProcessConfig))]
public class LibtorchComparisonBenchmarks
{
    [Params("ghostnet_050", "ghostnet_100", "ghostnet_130")]
    public string Arch { get; set; } = "ghostnet_100";

    [Params("32x224", "1x224", "128x32")]
    public string Shape { get; set; } = "32x224";

    private CpuBackend _backend = null!;
    private GhostNetModel _model = null!;
    private Plan _train = null!, _infer = null!;
    private SgdOptimizer _sgd = null!;
    private TorchGhostNet _net = null!;
    private torch.optim.Optimizer _torchSgd = null!;
    private torch.Tensor _x = null!, _y = null!;
    private int _batch;

    [GlobalSetup]
    public void Setup()
    {
        var parts = Shape.Split('x');
        _batch = int.Parse(parts[0]);
        int size = int.Parse(parts[1]);
        torch.set_num_threads(Environment.ProcessorCount);
        var config = GhostNetConfig.FromArch(Arch, 1000, 0.2f);
        _backend = new CpuBackend();
        _model = new GhostNetModel(config, _backend, seed: 0);
        _train = _model.Compile(Math.Max(2, _batch), size, size);
        _infer = _model.Compile(_batch, size, size, withGradients: false);
        _sgd = new SgdOptimizer(_model.Parameters, _backend, new SgdOptions());
        var rng = new Random(0);
        var images = Enumerable.Range(0, Math.Max(2, _batch) * 3 * size * size).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var labels = Enumerable.Range(0, Math.Max(2, _batch)).Select(_ => rng.Next(1000)).ToArray();
        _train.SetBatch(images, labels);
        _infer.SetBatch(images.AsSpan(0, _batch * 3 * size * size), labels.AsSpan(0, _batch));

        _net = new TorchGhostNet(config);
        var state = _net.state_dict();
        using (no_grad())
            foreach (var t in StateDict.Read(_model.Parameters, _backend))
                if (t.DType == "F32") state[t.Name].copy_(torch.tensor(t.AsFloats()).reshape(state[t.Name].shape));
        _torchSgd = torch.optim.SGD(_net.parameters(), 1e-4, momentum: 0.9, weight_decay: 1e-4);
        _x = torch.tensor(images).reshape(Math.Max(2, _batch), 3, size, size);
        _y = torch.tensor(labels.Select(l => (long)l).ToArray());
    }

    [Benchmark(Description = "ours: train step")]
    public float OursTrain()
    {
        _train.Forward(training: true);
        _train.Backward();
        _sgd.Step(1e-4f);
        return _train.Loss();
    }

    [Benchmark(Description = "libtorch: train step")]
    public float TorchTrain()
    {
        using var scope = NewDisposeScope();
        _net.train();
        _torchSgd.zero_grad();
        var loss = F.cross_entropy(_net.call(_x), _y, label_smoothing: 0.1);
        loss.backward();
        _torchSgd.step();
        return loss.item<float>();
    }

    [Benchmark(Description = "ours: inference")]
    public float OursInfer()
    {
        _infer.Forward(training: false);
        return _infer.Loss();
    }

    [Benchmark(Description = "libtorch: inference")]
    public float TorchInfer()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        _net.eval();
        return _net.call(_batch == _x.shape[0] ? _x : _x.narrow(0, 0, _batch)).sum().item<float>();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _train.Dispose();
        _infer.Dispose();
        _model.Dispose();
        _backend.Dispose();
        _net.Dispose();
    }
}

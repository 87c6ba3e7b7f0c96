using GhostNet.Backends;
using GhostNet.Cuda;
using GhostNet.Models;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// The launch recorder against a device (the emulator in CI): what it records is what the
/// backend issues, recording without issuing leaves memory untouched, and a backend with no
/// device records the same launches as one with a device of the same SM count.
/// </summary>
[Category("Gpu")]
public class LaunchRecorderGpuTests
{
    // Random: a periodic pattern makes the two images equal, and a batch of two equal images
    // trains its batch norms on zero variance into NaN.
    private static readonly byte[] Pixels = RandomPixels();

    private static byte[] RandomPixels()
    {
        var bytes = new byte[2 * 3 * 32 * 32];
        new Random(1).NextBytes(bytes);
        return bytes;
    }

    /// <summary>A trainer's step on a batch as the loader gives it: the pixels normalised on the device, then the step (as TrainingStepModel.Record).</summary>
    private static List<LaunchRecord> StepLaunches(CudaBackend gpu, Plan plan, SgdOptimizer sgd)
    {
        var recorder = new LaunchRecorder();
        gpu.Recorder = recorder;
        try
        {
            plan.SetBatch(Pixels, [3, 7], Normalization.ImageNet);
            TrainingStepModel.Step(plan, sgd);
            gpu.Synchronize();
        }
        finally
        {
            gpu.Recorder = null;
        }
        return [.. recorder.Launches];
    }

    [Test]
    public void Recording_only_issuing_and_a_backend_without_a_device_make_the_same_launches_in_a_training_step()
    {
        GpuHarness.RequireGpu();
        using var gpu = new CudaBackend(0);
        var config = new GhostNetConfig(Width: 0.25f, NumClasses: 10);
        using var model = new GhostNetModel(config, gpu, seed: 0);
        using var plan = model.Compile(2, 32, 32);
        plan.SetBatch(Pixels, [3, 7], Normalization.ImageNet);
        var sgd = new SgdOptimizer(model.Parameters, gpu, new SgdOptions());
        TrainingStepModel.Step(plan, sgd);
        long before = gpu.IssuedLaunches;
        var issued = StepLaunches(gpu, plan, sgd);
        Assert.That(gpu.IssuedLaunches - before, Is.EqualTo(issued.Count), "every recorded launch was issued, and nothing else");
        Assert.That(float.IsFinite(plan.Loss()), "the issued step ran");

        gpu.IssueLaunches = false;
        before = gpu.IssuedLaunches;
        List<LaunchRecord> recordedOnly;
        try
        {
            recordedOnly = StepLaunches(gpu, plan, sgd);
        }
        finally
        {
            gpu.IssueLaunches = true;
        }
        Assert.That(gpu.IssuedLaunches, Is.EqualTo(before), "recording only issues nothing");
        Assert.That(recordedOnly, Is.EqualTo(issued), "the same kernels, families, grids and costs in the same order");

        var modelled = TrainingStepModel.Record(config, 2, 32, gpu.Device).Launches;
        Assert.That(modelled, Is.EqualTo(issued), $"a model-only backend with {gpu.Device.Multiprocessors} SMs makes the launches the device got");
        TestContext.Out.WriteLine($"{issued.Count} launches a step on {gpu.Name}");
    }

    [Test]
    public void A_launch_recorded_but_not_issued_leaves_its_outputs_untouched()
    {
        using var t = GpuHarness.Create();
        var x = t.Random(2, 8, 5, 5);
        var w = t.Random(6, 8, 1, 1);
        var y = t.New(2, 8, 5, 5); // poisoned with NaN
        var z = t.New(2, 6, 5, 5);
        var recorder = new LaunchRecorder();
        t.Gpu.Recorder = recorder;
        long before = t.Gpu.IssuedLaunches;
        t.Gpu.IssueLaunches = false;
        try
        {
            t.Gpu.Relu(x.G, y.G);
            t.Gpu.PointwiseConvForward(x.G, w.G, z.G);
        }
        finally
        {
            t.Gpu.IssueLaunches = true;
            t.Gpu.Recorder = null;
        }
        Assert.That(t.Gpu.IssuedLaunches, Is.EqualTo(before));
        Assert.That(recorder.Launches.Select(l => (l.Kernel[..Math.Min(l.Kernel.Length, 8)], l.Family)),
            Is.EqualTo(new[] { ("relu_fwd", OpFamily.Elementwise), ("gemm_f32", OpFamily.PointwiseConvForward) }), "relu, then one of gemm.cu's tiles");
        Assert.That(GpuHarness.Get(t.Gpu, y.G), Is.All.NaN, "relu output untouched");
        Assert.That(GpuHarness.Get(t.Gpu, z.G), Is.All.NaN, "GEMM output untouched");

        // Issued, the same launches write their outputs (so the check above can fail).
        t.Gpu.Relu(x.G, y.G);
        t.Cpu.Relu(x.C, y.C);
        t.Compare("relu issued", y, 0);
        Assert.That(t.Gpu.IssuedLaunches, Is.EqualTo(before + 1));
    }

    [Test]
    public void A_split_batch_norm_issues_the_two_launches_it_is_modelled_with()
    {
        using var t = GpuHarness.Create();
        // 2 channels over 4 x 64 x 64 values: fewer channels than 2 x SMs, so the statistics are split.
        var x = t.Random(4, 2, 64, 64);
        var y = t.New(4, 2, 64, 64);
        var p = Enumerable.Range(0, 6).Select(_ => t.Random(1, 2, 1, 1, 0.5f, 1f)).ToArray();
        var norm = new BatchNormTensors(p[0].G, p[1].G, p[2].G, p[3].G, p[4].G, p[5].G);
        var recorder = new LaunchRecorder();
        t.Gpu.Recorder = recorder;
        long before = t.Gpu.IssuedLaunches;
        t.Gpu.BatchNormTrainForward(x.G, y.G, norm, new BatchNormOptions());
        t.Gpu.Recorder = null;
        Assert.That(recorder.Launches.Select(l => l.Kernel), Is.EqualTo(new[] { "batch_norm_stats", "batch_norm_apply" }));
        Assert.That(t.Gpu.IssuedLaunches - before, Is.EqualTo(2));
        Assert.That(recorder.Launches[0].GridY, Is.GreaterThan(1u), "split into chunks");

        using var model = CudaBackend.ForModel(t.Gpu.Device);
        var s = new Storage("x", x.G.Count * 2 + 12 * 2).WithGradient();
        s.Bind(model);
        var mx = new Tensor(s, 0, 4, 2, 64, 64);
        var my = new Tensor(s, x.G.Count, 4, 2, 64, 64);
        Tensor V(int i) => new(s, 2 * x.G.Count + 2 * i, 1, 2, 1, 1);
        model.BatchNormTrainForward(mx, my, new BatchNormTensors(V(0), V(1), V(2), V(3), V(4), V(5)), new BatchNormOptions());
        Assert.That(model.Recorder!.Launches, Is.EqualTo(recorder.Launches), "the model-only backend records the same launches and costs");
    }
}

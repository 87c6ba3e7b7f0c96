using GhostNet.Backends;
using GhostNet.Cpu;
using GhostNet.Cuda;
using GhostNet.Cuda.Interop;
using GhostNet.Graph;
using GhostNet.Models;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// Whole GhostNet training on the CUDA backend against the CPU backend, from identical weights
/// (initialisation is drawn on the host).
/// </summary>
[Category("Gpu")]
public class CudaTrainingTests
{
    private const double Tolerance = 1e-4;

    /// <summary>All of a storage as one tensor.</summary>
    private static Tensor Whole(Storage s) => new(s, 0, checked((int)s.Length), 1, 1, 1);

    private static float[] RandomImages(Random rng, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    /// <summary>
    /// The backward pass runs on the GPU from the CPU's forward state (its whole activation arena,
    /// batch statistics and loss gradient, uploaded), so both devices take the same ReLU
    /// decisions. From each device's own forward, some ReLU input in the 7x7 stage (batch norm over
    /// 392 values a channel) lies within rounding of zero and decides differently in nearly every
    /// draw (20 of 20 on the emulator), moving every gradient upstream of it by ~1e-3: the forward
    /// is compared on its own, and the 50-step test below covers each device running alone.
    /// </summary>
    [Test]
    public void A_ghostnet_100_training_step_at_224_matches_the_cpu() =>
        TrainingStepMatchesTheCpu(GhostNetConfig.FromArch("ghostnet_100") with { DropRate = 0.2f }, 224);

    /// <summary>
    /// The same for the CIFAR ResNet at depth 8 (one block a stage: identity and projecting
    /// shortcuts) and its Ghost twins: s = 2 (a 3x3 dense primary conv, strided in the first
    /// blocks of stages 2 and 3, its batch norm writing a concat window) and s = 3 (the cheap
    /// operation a depthwise conv with channel multiplier 2, through the two-kernel backward).
    /// </summary>
    [TestCase(false, 2)]
    [TestCase(true, 2)]
    [TestCase(true, 3)]
    public void A_cifar_resnet_training_step_matches_the_cpu(bool ghost, int ratio) =>
        TrainingStepMatchesTheCpu(new ResNetCifarConfig(Depth: 8, Ghost: ghost, GhostRatio: ratio, NumClasses: 10, DropRate: 0.2f), 32);

    /// <summary>VGG-16 and its Ghost twin at 32x32, batch 4: the max pools, 3x3 Ghost modules at 512 channels on 2 x 2 planes.</summary>
    [TestCase(false)]
    [TestCase(true)]
    public void A_cifar_vgg16_training_step_matches_the_cpu(bool ghost) =>
        TrainingStepMatchesTheCpu(new VggCifarConfig(ghost, NumClasses: 10, DropRate: 0.2f), 32, batch: 4);

    /// <summary>The seed's ghost_net at 0.5x, 64x64: its Linear SE with the clamp gate, ReLU shortcuts, BatchNorm1d head.</summary>
    [Test]
    public void The_seeds_ghost_net_training_step_matches_the_cpu() => TrainingStepMatchesTheCpu(new SeedGhostNetConfig(0.5f, 10), 64);

    /// <summary>
    /// MobileNetV3-Small 0.5x and Large 0.75x at 64x64: hard-swish batch norms run unfused
    /// beside ReLU ones that fuse into their convs, conv_head's hard-swish in the GEMM epilogue.
    /// </summary>
    [TestCase(true, 0.5f)]
    [TestCase(false, 0.75f)]
    public void A_mobilenetv3_training_step_matches_the_cpu(bool small, float width) =>
        TrainingStepMatchesTheCpu(new MobileNetV3Config(small, width, NumClasses: 10, DropRate: 0.2f), 64);

    private static void TrainingStepMatchesTheCpu(IModelConfig config, int size, int batch = 8)
    {
        GpuHarness.RequireGpu();
        int seed = TestContext.CurrentContext.Random.Next();
        TestContext.Out.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        using var mc = new GhostNetModel(config, cpu, seed);
        using var mg = new GhostNetModel(config, gpu, seed);
        using var pc = mc.Compile(batch, size, size);
        using var pg = mg.Compile(batch, size, size);
        StateDict.Write(mg.Parameters, gpu, StateDict.Read(mc.Parameters, cpu));
        var images = RandomImages(rng, batch * 3 * size * size);
        var labels = Enumerable.Range(0, batch).Select(_ => rng.Next(config.NumClasses)).ToArray();
        foreach (var plan in new[] { pc, pg })
        {
            plan.SetBatch(images, labels);
            plan.Forward(training: true);
        }
        Assert.That(pg.Loss(), Is.EqualTo(pc.Loss()).Within(1e-5 * pc.Loss()), "loss");
        Assert.That(Rel(Download(gpu, pg.Logits), Download(cpu, pc.Logits)), Is.LessThanOrEqualTo(Tolerance), "logits");

        var arena = new Tensor(pc.Activations, 0, checked((int)pc.Activations.Length), 1, 1, 1);
        var gpuArena = new Tensor(pg.Activations, 0, checked((int)pg.Activations.Length), 1, 1, 1);
        gpu.Upload(Download(cpu, arena), gpuArena);
        gpu.Upload(Download(cpu, arena.Grad), gpuArena.Grad);
        gpu.Upload(Download(cpu, Whole(pc.Statistics)), Whole(pg.Statistics)); // the batch norms' saved statistics too
        pc.Backward();
        pg.Backward();
        // Biases that feed a conv + train-mode batch norm have zero gradient in exact arithmetic:
        // they are measured against 1% of the global gradient scale.
        var reference = mc.Parameters.Parameters.ToDictionary(p => p.Name, p => Download(cpu, p.Grad));
        double scale = Math.Sqrt(reference.Values.Sum(g => g.Sum(v => (double)v * v)) / reference.Count);
        var errors = mc.Parameters.Parameters
            .Select(p => (p.Name, Error: GpuHarness.RelativeError(Download(gpu, ((Parameter)mg.Parameters[p.Name]).Grad), reference[p.Name], 1e-2 * scale)))
            .ToList();
        TestContext.Out.WriteLine($"largest gradient error {errors.Max(e => e.Error):E2} ({errors.MaxBy(e => e.Error).Name})");
        var above = errors.Where(e => e.Error > Tolerance).ToList();
        Assert.That(above, Is.Empty, string.Join("; ", above.Take(5).Select(e => $"{e.Name} {e.Error:E2}")));

        var oc = new SgdOptimizer(mc.Parameters, cpu, new SgdOptions(0.9f, 4e-5f, Nesterov: true));
        var og = new SgdOptimizer(mg.Parameters, gpu, new SgdOptions(0.9f, 4e-5f, Nesterov: true));
        for (int step = 0; step < 3; step++)
        {
            // Each side steps with the CPU's gradients, so the update itself is what is compared.
            foreach (var p in mc.Parameters.Parameters) gpu.Upload(Download(cpu, p.Grad), ((Parameter)mg.Parameters[p.Name]).Grad);
            oc.Step(0.1f);
            og.Step(0.1f);
        }
        foreach (var p in mc.Parameters.Parameters)
            Assert.That(Rel(Download(gpu, ((Parameter)mg.Parameters[p.Name]).Value), Download(cpu, p.Value)), Is.LessThanOrEqualTo(1e-6), p.Name);
    }

    /// <summary>
    /// 50 SGD steps memorising one batch, each device on its own. The curves start equal and
    /// drift apart as rounding differences (and ReLU decisions near zero) compound (on the
    /// emulator: 7e-5 at step 5, 7e-3 at step 8, up to 8% later, in both directions). So the first
    /// five steps must agree to 2e-3, every later loss within a factor 1.5, and the GPU run must
    /// memorise the batch as the CPU run does. Width 0.25 at 64x64: at 32x32 the last stages are
    /// 1x1 and batch norm over 16 values makes the run chaotic within four steps.
    /// </summary>
    [Test]
    public void Fifty_steps_on_a_fixed_batch_track_the_cpu_loss_curve()
    {
        GpuHarness.RequireGpu();
        var rng = new Random(11);
        var config = new GhostNetConfig(0.25f, 10, 0f);
        const int batch = 16, size = 64;
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        using var mc = new GhostNetModel(config, cpu, 5);
        using var mg = new GhostNetModel(config, gpu, 5);
        using var pc = mc.Compile(batch, size, size);
        using var pg = mg.Compile(batch, size, size);
        var images = RandomImages(rng, batch * 3 * size * size);
        var labels = Enumerable.Range(0, batch).Select(_ => rng.Next(10)).ToArray();
        pc.SetBatch(images, labels);
        pg.SetBatch(images, labels);
        var oc = new SgdOptimizer(mc.Parameters, cpu, new SgdOptions(0.9f, 0f));
        var og = new SgdOptimizer(mg.Parameters, gpu, new SgdOptions(0.9f, 0f));
        var cpuLosses = new List<float>();
        var gpuLosses = new List<float>();
        for (int step = 0; step < 50; step++)
        {
            pc.Forward(true);
            pg.Forward(true);
            cpuLosses.Add(pc.Loss());
            gpuLosses.Add(pg.Loss());
            TestContext.Out.WriteLine($"step {step}: cpu {cpuLosses[^1]:F5} gpu {gpuLosses[^1]:F5}");
            pc.Backward();
            pg.Backward();
            oc.Step(0.02f);
            og.Step(0.02f);
        }
        for (int step = 0; step < 5; step++)
            Assert.That(gpuLosses[step], Is.EqualTo(cpuLosses[step]).Within(2e-3 * cpuLosses[step]), $"loss at step {step}");
        Assert.That(gpuLosses.All(float.IsFinite), "every GPU loss is finite");
        for (int step = 5; step < 50; step++)
            Assert.That(Math.Max(gpuLosses[step] / cpuLosses[step], cpuLosses[step] / gpuLosses[step]), Is.LessThanOrEqualTo(1.5), $"loss ratio at step {step}");
        Assert.That(cpuLosses[^1], Is.LessThan(0.05 * cpuLosses[0]), "the CPU run memorises the batch");
        Assert.That(gpuLosses[^1], Is.LessThan(0.05 * gpuLosses[0]), "the GPU run memorises the batch");
    }

    /// <summary>
    /// The fusions (depthwise conv + batch norm, v2.5 forward and v2.7 backward; split-K summed in
    /// the GEMM, v2.8; the pointwise backward through its batch norm, v2.9; and their successors to
    /// v2.18, squeeze-excite's gate in ghost2's GEMMs) change no bit of
    /// training: two steps of the same model, weights and batch on one device give the same
    /// activations, losses, running statistics, parameter gradients and weights with the fusions on
    /// and off. (Activation gradients are not compared: the fused backwards never write the convs'
    /// output gradients.) Width 0.5 at 64x64, batch 8, covers every depthwise variant
    /// GhostNet uses (3x3 and 5x5, stride 1 and 2) and split statistics and reductions (the first
    /// block's 4-channel cheap operation: 8 x 32 x 32 values a channel, 2 chunks on the emulator).
    /// </summary>
    [Test]
    public void The_fusions_change_no_bit_of_two_training_steps()
    {
        GpuHarness.RequireGpu();
        var rng = new Random(3);
        var config = new GhostNetConfig(0.5f, 10, 0f);
        const int batch = 8, size = 64;
        using var gpu = new CudaBackend(0);
        var images = RandomImages(rng, batch * 3 * size * size);
        var labels = Enumerable.Range(0, batch).Select(_ => rng.Next(10)).ToArray();
        gpu.Recorder = new LaunchRecorder();
        var runs = new[] { true, false }.Select(fuse =>
        {
            gpu.FuseDepthwiseBatchNorm = gpu.FuseGemmBatchNorm = gpu.SumSplitKInGemm = gpu.ApplyBatchNormInDepthwise = gpu.ReduceBatchNormInDepthwise = gpu.DepthwiseBackwardInOnePass = gpu.ActivationInGemm = gpu.FuseSqueezeExciteGradient = gpu.ResidualInBatchNorm = gpu.ActivationGradientInBiasSum = gpu.GateInGemm = fuse;
            using var model = new GhostNetModel(config, gpu, 5);
            using var plan = model.Compile(batch, size, size);
            var sgd = new SgdOptimizer(model.Parameters, gpu, new SgdOptions(0.9f, 4e-5f));
            var arena = new Tensor(plan.Activations, 0, checked((int)plan.Activations.Length), 1, 1, 1);
            gpu.Fill(arena, float.NaN); // what a run never writes stays NaN
            gpu.Fill(Whole(plan.Statistics), float.NaN);
            plan.SetBatch(images, labels);
            var losses = new List<float>();
            for (int step = 0; step < 2; step++)
            {
                plan.Forward(true);
                losses.Add(plan.Loss());
                plan.Backward();
                sgd.Step(0.05f);
            }
            var gradients = model.Parameters.Parameters.Select(p => Download(gpu, p.Grad)).ToArray();
            return (Losses: losses, Arena: Download(gpu, arena).Concat(Download(gpu, Whole(plan.Statistics))).ToArray(), Gradients: gradients, State: StateDict.Read(model.Parameters, gpu));
        }).ToArray();
        gpu.FuseDepthwiseBatchNorm = gpu.FuseGemmBatchNorm = gpu.SumSplitKInGemm = gpu.ApplyBatchNormInDepthwise = gpu.ReduceBatchNormInDepthwise = gpu.DepthwiseBackwardInOnePass = gpu.ActivationInGemm = gpu.FuseSqueezeExciteGradient = gpu.ResidualInBatchNorm = gpu.ActivationGradientInBiasSum = gpu.GateInGemm = true;
        var launches = gpu.Recorder.Launches;
        gpu.Recorder = null;
        foreach (var kernel in new[] { "depthwise_conv_fwd_stats", "depthwise_conv_fwd_stats_apply", "depthwise_conv_bwd_both_bn" })
            Assert.That(launches.Any(l => l.Kernel.StartsWith(kernel) && l.GridY > 1), $"some {kernel} launch is split");
        // The GEMMs with a batch-norm operand ran, some split in K (their pieces summed in the GEMM
        // in the fused run, by split_sum in the other).
        Assert.That(launches.Any(l => l.Kernel.StartsWith("gemm_f32_bn_") && l.GridZ > 1), "a batch-norm GEMM split in K or batched");
        Assert.That(launches.Any(l => l.Kernel == "split_sum"), "the unfused run splits some weight gradient");
        var (fused, unfused) = (runs[0], runs[1]);
        Assert.That(fused.Losses, Is.EqualTo(unfused.Losses), "losses");
        // The fused run leaves unwritten the outputs that a residual sum is written in place of
        // (v2.16): the ghost maps of each identity bottleneck's ghost2 and each projecting
        // shortcut's last output; and squeeze-excite's outputs, which ghost2's GEMMs read as x *
        // gate (v2.18). Everything else is the unfused run's, which writes every activation (what
        // it leaves NaN is the padding between them).
        var layers = GhostNetModel.Describe(config, size, size);
        long summedAway = batch * layers
            .Where(r => r.Name.EndsWith(".ghost2.cheap_operation.1") || r.Name.EndsWith(".shortcut.3"))
            .GroupBy(r => r.Name[..r.Name.IndexOf(r.Name.Contains(".shortcut.") ? ".shortcut." : ".ghost2.")])
            .Sum(block => block.Where(r => r.Name.EndsWith(".shortcut.3")).DefaultIfEmpty(block.First()).Sum(r => (long)r.C * r.H * r.W));
        // Squeeze-excite's output: conv_expand's channels on ghost2's planes.
        long gatedAway = batch * layers.Where(r => r.Name.EndsWith(".se.conv_expand"))
            .Sum(se => (long)se.C * layers.Single(r => r.Name == se.Name.Replace(".se.conv_expand", ".ghost2.primary_conv.1")).H
                * layers.Single(r => r.Name == se.Name.Replace(".se.conv_expand", ".ghost2.primary_conv.1")).W);
        Assert.That(gatedAway, Is.GreaterThan(0), "the model has squeeze-excite");
        Assert.That(fused.Arena.LongCount(float.IsNaN) - unfused.Arena.LongCount(float.IsNaN), Is.EqualTo(summedAway + gatedAway),
            "the fused run leaves unwritten what it sums or gates away, and only that");
        Assert.That(fused.Arena.Where(v => !float.IsNaN(v)), Is.EqualTo(unfused.Arena.Where((_, i) => !float.IsNaN(fused.Arena[i]))), "activations");
        for (int i = 0; i < fused.Gradients.Length; i++)
            Assert.That(fused.Gradients[i], Is.EqualTo(unfused.Gradients[i]), $"gradient of parameter {i}");
        Assert.That(fused.State.Select(t => t.Name), Is.EqualTo(unfused.State.Select(t => t.Name)));
        foreach (var (a, b) in fused.State.Zip(unfused.State))
            Assert.That(a.Data, Is.EqualTo(b.Data), a.Name);
    }

    [Test]
    public void A_training_step_allocates_no_managed_memory_after_the_first()
    {
        GpuHarness.RequireGpu();
        // As on the CPU (TrainingStepTests): launches, uploads and the loss read-back format no
        // strings and box nothing on the way, so a step leaves the garbage collector idle.
        var rng = new Random(2);
        using var gpu = new CudaBackend(0);
        using var model = new GhostNetModel(new GhostNetConfig(0.25f, 10, 0.2f), gpu, 1);
        using var plan = model.Compile(4, 32, 32);
        var sgd = new SgdOptimizer(model.Parameters, gpu, new SgdOptions(0.9f, 4e-5f, NoDecayOnNormAndBias: true));
        var images = RandomImages(rng, 4 * 3 * 32 * 32);
        int[] labels = [1, 2, 3, 4];
        void Step()
        {
            plan.SetBatch(images, labels);
            plan.Forward(training: true);
            plan.Loss();
            plan.Backward();
            sgd.Step(0.01f);
            plan.CountCorrect();
        }
        Step();
        Step();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 3; i++) Step();
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero, "bytes allocated on the managed heap by three training steps");
    }

    [Test]
    public void Disposing_a_plan_returns_its_device_memory()
    {
        GpuHarness.RequireGpu();
        using var gpu = new CudaBackend(0);
        using var model = new GhostNetModel(GhostNetConfig.FromArch("ghostnet_100"), gpu, 1);
        gpu.Synchronize();
        Driver.cuMemGetInfo(out nuint before, out _);
        using (var plan = model.Compile(32, 224, 224))
        {
            Driver.cuMemGetInfo(out nuint during, out _);
            Assert.That((long)before - (long)during, Is.GreaterThan(100L << 20), "a plan for batch 32 at 224 holds activations");
        }
        Driver.cuMemGetInfo(out nuint after, out _);
        Assert.That(after, Is.EqualTo(before), "free device memory after disposing the plan");
    }

    [Test]
    public void Eval_logits_match_the_cpu()
    {
        GpuHarness.RequireGpu();
        var rng = new Random(3);
        var config = GhostNetConfig.FromArch("ghostnet_050");
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        using var mc = new GhostNetModel(config, cpu, 9);
        using var mg = new GhostNetModel(config, gpu, 9);
        using var pc = mc.Compile(4, 224, 224, withGradients: false);
        using var pg = mg.Compile(4, 224, 224, withGradients: false);
        var images = RandomImages(rng, 4 * 3 * 224 * 224);
        pc.SetBatch(images, [1, 2, 3, 4]);
        pg.SetBatch(images, [1, 2, 3, 4]);
        pc.Forward(false);
        pg.Forward(false);
        Assert.That(Rel(Download(gpu, pg.Logits), Download(cpu, pc.Logits)), Is.LessThanOrEqualTo(1e-5));
    }

    private static float[] Download(IBackend b, in Tensor t)
    {
        var v = new float[t.Count];
        b.Download(t, v);
        return v;
    }

    private static double Rel(float[] a, float[] b) => GpuHarness.RelativeError(a, b);
}

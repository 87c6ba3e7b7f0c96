using GhostNet.Cli;
using GhostNet.Data;
using GhostNet.Training;
using GhostNet.Tests.Cli;
using NUnit.Framework;
using static GhostNet.Tests.Cli.TrainCommandTests;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// `ghostcuda train | eval | predict --device cuda` end to end: the loader feeding the device,
/// checkpoints read from and written to device memory, resume onto the device. Width 0.25 at
/// 32x32 on a small generated ImageFolder (6 steps of 16 an epoch), so that the CUDA emulator
/// (tools/cuda-emulator) runs them in CI.
/// </summary>
[Category("Gpu"), NonParallelizable]
public class CudaTrainCommandTests : TempFolderTest
{
    private string Data => Path.Combine(Folder, "data");

    [SetUp]
    public void WriteData()
    {
        GpuHarness.RequireGpu();
        SyntheticImageFolder.Write(Path.Combine(Data, "train"), classes: 6, perClass: 16, width: 40, height: 32, seed: 1);
        SyntheticImageFolder.Write(Path.Combine(Data, "val"), classes: 6, perClass: 8, width: 40, height: 32, seed: 2);
    }

    private string[] SmallRun(string outDir, int epochs, params string[] overrides) =>
        Train(outDir, epochs, ["--data", Data, "-b", "16", .. overrides]);

    /// <summary>The dtypes a safetensors file's header names (its first 8 bytes give the JSON's length).</summary>
    private static string[] CheckpointDTypes(string path)
    {
        var bytes = File.ReadAllBytes(path);
        long length = BitConverter.ToInt64(bytes, 0);
        using var json = System.Text.Json.JsonDocument.Parse(bytes.AsMemory(8, (int)length));
        return json.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__").Select(p => p.Value.GetProperty("dtype").GetString()!).Distinct().ToArray();
    }

    private static double[] EpochRow(string run, int epoch) =>
        File.ReadAllLines(Path.Combine(run, "log.csv"))[epoch].Split(',').Skip(2).Take(6).Select(double.Parse).ToArray();

    private static (double Loss, double Top1) EvalSummary(string output)
    {
        var m = System.Text.RegularExpressions.Regex.Match(output, @"evaluated 48 images .*: loss ([0-9.]+), top-1 ([0-9.]+)%");
        Assert.That(m.Success, output);
        return (double.Parse(m.Groups[1].Value), double.Parse(m.Groups[2].Value));
    }

    [Test]
    public void A_cuda_run_tracks_the_cpu_run_and_eval_and_predict_use_the_gpu()
    {
        string cpu = Path.Combine(Folder, "cpu"), gpu = Path.Combine(Folder, "gpu");
        var c = Run(SmallRun(cpu, 1));
        Assert.That(c.Code, Is.Zero, c.Err);
        var g = Run(SmallRun(gpu, 1, "--device", "cuda"));
        Assert.That(g.Code, Is.Zero, g.Err);
        Assert.That(g.Out, Does.Contain("cuda:0"));
        // Same initial weights, batches and dropout masks; rounding differences grow with every
        // SGD step of a tiny network (after 30 steps: 1% in the train loss, 4% in the validation
        // loss), so this is a coarse check: the step-level comparisons are in CudaTrainingTests.
        double[] rc = EpochRow(cpu, 1), rg = EpochRow(gpu, 1);
        TestContext.Out.WriteLine($"cpu {string.Join(' ', rc)}\ngpu {string.Join(' ', rg)}");
        Assert.That(rg[0], Is.EqualTo(rc[0]).Within(0.05 * rc[0]), "train loss");

        // The same checkpoint evaluated on both devices: the same network, so close agreement.
        string checkpoint = Path.Combine(gpu, "checkpoint.safetensors");
        var onGpu = Run("eval", "--checkpoint", checkpoint, "--device", "cuda");
        var onCpu = Run("eval", "--checkpoint", checkpoint, "--device", "cpu");
        Assert.That(onGpu.Code, Is.Zero, onGpu.Err);
        Assert.That(onCpu.Code, Is.Zero, onCpu.Err);
        var (lossGpu, top1Gpu) = EvalSummary(onGpu.Out);
        var (lossCpu, top1Cpu) = EvalSummary(onCpu.Out);
        TestContext.Out.WriteLine($"eval on cpu: loss {lossCpu} top-1 {top1Cpu}; on gpu: loss {lossGpu} top-1 {top1Gpu}");
        Assert.That(lossGpu, Is.EqualTo(lossCpu).Within(2e-4 * lossCpu + 1e-4), "validation loss (printed to 4 decimals)");
        Assert.That(top1Gpu, Is.EqualTo(top1Cpu).Within(100.0 / 48 + 1e-9), "top-1 (one image may sit on a tie)");
        string image = Directory.GetFiles(Path.Combine(Data, "val", "disc")).First();
        var predict = Run("predict", "--checkpoint", checkpoint, "--device", "cuda", image);
        Assert.That(predict.Code, Is.Zero, predict.Err);
        Assert.That(predict.Out, Does.Contain(image));
    }

    [Test]
    public void A_tf32_cuda_run_trains_on_the_tensor_cores_and_tracks_the_cpu_run()
    {
        string cpu = Path.Combine(Folder, "cpu"), gpu = Path.Combine(Folder, "tf32");
        var c = Run(SmallRun(cpu, 1));
        Assert.That(c.Code, Is.Zero, c.Err);
        var g = Run(SmallRun(gpu, 1, "--device", "cuda", "--precision", "tf32"));
        Assert.That(g.Code, Is.Zero, g.Err);
        Assert.That(g.Out, Does.Contain("cuda:0").And.Contain("(GEMMs in Tf32)"));
        // tf32 rounds every GEMM operand to a 10-bit mantissa (2^-11 relative): after 6 SGD steps
        // the train loss stays within a few percent of the fp32 CPU run; a wrong tensor-core
        // result would not.
        double[] rc = EpochRow(cpu, 1), rg = EpochRow(gpu, 1);
        TestContext.Out.WriteLine($"cpu {string.Join(' ', rc)}\ntf32 {string.Join(' ', rg)}");
        Assert.That(rg[0], Is.EqualTo(rc[0]).Within(0.05 * rc[0]), "train loss");
    }

    /// <summary>
    /// --precision bf16 end to end: the run says so, tracks the fp32 CPU run, writes an fp32
    /// checkpoint that the CPU evaluates as the GPU does in bf16, and predict and bench take it too.
    /// </summary>
    [Test]
    public void A_bf16_cuda_run_tracks_the_cpu_run_and_its_checkpoint_stays_fp32()
    {
        string cpu = Path.Combine(Folder, "cpu"), gpu = Path.Combine(Folder, "bf16");
        var c = Run(SmallRun(cpu, 1));
        Assert.That(c.Code, Is.Zero, c.Err);
        var g = Run(SmallRun(gpu, 1, "--device", "cuda", "--precision", "bf16"));
        Assert.That(g.Code, Is.Zero, g.Err);
        Assert.That(g.Out, Does.Contain("cuda:0").And.Contain("(bf16 activations, GEMMs in Fp32)"));
        double[] rc = EpochRow(cpu, 1), rg = EpochRow(gpu, 1);
        TestContext.Out.WriteLine($"cpu {string.Join(' ', rc)}\nbf16 {string.Join(' ', rg)}");
        Assert.That(rg[0], Is.EqualTo(rc[0]).Within(0.05 * rc[0]), "train loss");
        string checkpoint = Path.Combine(gpu, "checkpoint.safetensors");
        Assert.That(CheckpointDTypes(checkpoint), Is.SubsetOf(new[] { "F32", "I64" }).And.Contains("F32"), "the checkpoint holds fp32 weights");
        var onGpu = Run("eval", "--checkpoint", checkpoint, "--device", "cuda", "--precision", "bf16");
        var onCpu = Run("eval", "--checkpoint", checkpoint, "--device", "cpu");
        Assert.That(onGpu.Code, Is.Zero, onGpu.Err);
        Assert.That(onCpu.Code, Is.Zero, onCpu.Err);
        var (lossGpu, _) = EvalSummary(onGpu.Out);
        var (lossCpu, _) = EvalSummary(onCpu.Out);
        TestContext.Out.WriteLine($"eval on cpu (fp32): loss {lossCpu}; on gpu (bf16): loss {lossGpu}");
        Assert.That(lossGpu, Is.EqualTo(lossCpu).Within(0.02 * lossCpu), "validation loss, bf16 against fp32");
        string image = Directory.GetFiles(Path.Combine(Data, "val", "disc")).First();
        var predict = Run("predict", "--checkpoint", checkpoint, "--device", "cuda", "--precision", "bf16", image);
        Assert.That(predict.Code, Is.Zero, predict.Err);
        Assert.That(predict.Out, Does.Contain(image));
        var wrong = Run("eval", "--checkpoint", checkpoint, "--precision", "fp16");
        Assert.That(wrong.Code, Is.Not.Zero);
        Assert.That(wrong.Err.Trim(), Does.Contain("--precision fp16: expected fp32, tf32, tf32x3 or bf16").And.Not.Contain("   at "));
    }

    [Test]
    public void Devices_and_bench_with_its_per_op_profile_run_on_cuda()
    {
        var devices = Run("devices");
        Assert.That(devices.Code, Is.Zero, devices.Err);
        Assert.That(devices.Out, Does.Contain("cuda:0"));
        var bench = Run("bench", "--device", "cuda", "--width", "0.25", "--size", "32", "--train-batches", "4", "--infer-batches", "1",
            "--steps", "1", "--warmup", "0", "--profile");
        Assert.That(bench.Code, Is.Zero, bench.Err);
        Assert.That(bench.Out, Does.Contain("| train | 4 |").And.Contain("| inference | 1 |").And.Contain("pointwise conv bwd"));
        // The emulator's times are the host's: measured apart, the model on H200's figures (its SM count: 132).
        Assert.That(bench.Out, Does.Contain("emulated, not GPU time").And.Contain("Modelled training step (GhostNet width 0.25 at 32x32, batch 4) on NVIDIA H200 SXM")
            .And.Contain("| launches per step | <= 350 |").And.Not.Contain("measured ms"));
        Assert.That(bench.Out, Does.Match(@"Launches issued in the measured step: \d+ \(modelled with 132 SMs: \d+\)"));
    }

    [Test]
    public void An_interrupted_and_resumed_cuda_run_ends_bit_identical_to_an_uninterrupted_one()
    {
        // The kernels use no atomics, so a GPU run is as reproducible as a CPU run.
        string straight = Path.Combine(Folder, "straight"), broken = Path.Combine(Folder, "broken");
        var settings = Settings(straight, 2) with { Device = "cuda", Data = Data, BatchSize = 16 };
        Assert.That(new TrainRun(settings).Execute(CancellationToken.None), Is.Zero);
        // 6 steps an epoch: stop in the middle of the second epoch, then resume.
        Assert.That(new TrainRun(settings with { Out = broken }) { InterruptAfterSteps = 8 }.Execute(CancellationToken.None), Is.EqualTo(130));
        string path = Path.Combine(broken, "checkpoint.safetensors");
        Assert.That(new TrainRun(settings with { Out = broken, Resume = path }).Execute(CancellationToken.None), Is.Zero);

        var a = Checkpoint.Read(Path.Combine(straight, "checkpoint.safetensors")).Tensors;
        var b = Checkpoint.Read(path).Tensors;
        Assert.That(b.Select(t => t.Name), Is.EqualTo(a.Select(t => t.Name)));
        for (int i = 0; i < a.Count; i++) Assert.That(b[i].Data, Is.EqualTo(a[i].Data), $"{a[i].Name} differs after resume");
    }

    [Test]
    public void No_cuda_graphs_launches_call_by_call_to_the_same_bits()
    {
        // One epoch replayed as graphs and one launched call by call (--no-cuda-graphs), through
        // the command line: the same checkpoint, bit for bit, validation included.
        string graphs = Path.Combine(Folder, "graphs"), eager = Path.Combine(Folder, "eager");
        var replayed = Run(SmallRun(graphs, 1, "--device", "cuda"));
        Assert.That(replayed.Code, Is.Zero, replayed.Err);
        Assert.That(replayed.Out, Does.Contain("steps replayed as CUDA graphs"));
        var called = Run(SmallRun(eager, 1, "--device", "cuda", "--no-cuda-graphs", "true"));
        Assert.That(called.Code, Is.Zero, called.Err);
        Assert.That(called.Out, Does.Contain("steps launched call by call"));
        Assert.That(EpochRow(eager, 1), Is.EqualTo(EpochRow(graphs, 1)), "the epoch's losses and accuracies");
        var a = Checkpoint.Read(Path.Combine(graphs, "checkpoint.safetensors")).Tensors;
        var b = Checkpoint.Read(Path.Combine(eager, "checkpoint.safetensors")).Tensors;
        for (int i = 0; i < a.Count; i++) Assert.That(b[i].Data, Is.EqualTo(a[i].Data), a[i].Name);
    }
}

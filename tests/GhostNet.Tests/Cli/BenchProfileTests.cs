using System.Text.RegularExpressions;
using GhostNet.Cuda;
using GhostNet.Models;
using NUnit.Framework;
using static GhostNet.Tests.Cli.TrainCommandTests;

namespace GhostNet.Tests.Cli;

/// <summary>`ghostcuda bench --profile` and `--profile-only` on a machine without a GPU: the modelled table, its totals and the targets.</summary>
[NonParallelizable]
public class BenchProfileTests
{
    private static readonly string[] Small = ["bench", "--device", "cpu", "--width", "0.5", "--size", "64"];

    private static Match TotalRow(string output)
    {
        var m = Regex.Match(output, @"^\| total \| (\d+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|", RegexOptions.Multiline);
        Assert.That(m.Success, output);
        return m;
    }

    [Test]
    public void Precision_picks_the_gemm_kernels_of_the_model_and_a_wrong_one_is_refused_in_one_line()
    {
        var (code, output, err) = Run([.. Small, "--profile-only", "--profile-batch", "8", "--precision", "tf32"]);
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("| gemm_tf32_").And.Not.Contain("| gemm_f32_"), "every GEMM on the tensor cores");
        var x3 = new CostSummary(TrainingStepModel.Record(new GhostNetConfig(Width: 0.5f), 8, 64, GpuFigures.H200.AsDevice(), GemmPrecision.Tf32x3).Launches, GpuFigures.H200);
        (code, output, err) = Run([.. Small, "--profile-only", "--profile-batch", "8", "--precision", "TF32x3"]);
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("| gemm_tf32x3_"));
        Assert.That(long.Parse(TotalRow(output).Groups[1].Value), Is.EqualTo(x3.Total.Launches));
        // bf16 activations: the SIMT GEMMs with the weight in A or B, and half the bytes of the
        // activations. The fp32 parameters' traffic (weights read, SGD: 24 bytes a parameter) stays,
        // a large share at batch 8 and 64x64: 0.77 here (0.51 at batch 256 and 224: docs/kernels.md).
        (code, var fp32, err) = Run([.. Small, "--profile-only", "--profile-batch", "8"]);
        Assert.That(code, Is.Zero, err);
        (code, output, err) = Run([.. Small, "--profile-only", "--profile-batch", "8", "--precision", "bf16"]);
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("_wa |").And.Contain("_wb |").And.Not.Contain("| gemm_tf32"));
        double mb16 = double.Parse(TotalRow(output).Groups[2].Value), mb32 = double.Parse(TotalRow(fp32).Groups[2].Value);
        Assert.That(mb16 / mb32, Is.InRange(0.5, 0.8), $"DRAM bytes in bf16 against fp32: {mb16} / {mb32} MB");
        (code, _, err) = Run([.. Small, "--profile-only", "--precision", "fp16"]);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim(), Is.EqualTo("error: --precision fp16: expected fp32, tf32, tf32x3 or bf16"));
    }

    [Test]
    public void Profile_only_prints_the_modelled_table_per_op_family_and_kernel_and_the_targets()
    {
        var (code, output, err) = Run([.. Small, "--profile-only", "--profile-batch", "8"]);
        Assert.That(code, Is.Zero, err);
        TestContext.Out.WriteLine(output);
        Assert.That(output, Does.Contain("Modelled training step (GhostNet width 0.5 at 64x64, batch 8) on NVIDIA H200 SXM: 4.3 TB/s DRAM, 67 TFLOP/s fp32"));
        Assert.That(output, Does.Contain("| op family | launches | MB | MB per image | GFLOP | DRAM ms | math ms | roofline ms | launch overhead ms |\n"));
        Assert.That(output, Does.Contain("| pointwise conv bwd |").And.Contain("| batch norm fwd |").And.Contain("| sgd |"));
        Assert.That(output, Does.Contain("| kernel | launches |").And.Contain("| gemm_f32_"));
        Assert.That(output, Does.Contain("| launches per step | <= 350 |").And.Contain("| DRAM traffic per training image | <= 120 MB |")
            .And.Contain("| modelled step (roofline + launch overhead) | <= 25 ms |"));
        Assert.That(output, Does.Not.Contain("| train |"), "no timing");
        Assert.That(output, Does.Not.Contain("measured ms"));

        // The table's total is the recorder's: the same launches, bytes and FLOPs.
        var s = new CostSummary(TrainingStepModel.Record(new GhostNetConfig(Width: 0.5f), 8, 64, GpuFigures.H200.AsDevice()).Launches, GpuFigures.H200);
        var total = TotalRow(output);
        Assert.That(long.Parse(total.Groups[1].Value), Is.EqualTo(s.Total.Launches));
        Assert.That(double.Parse(total.Groups[2].Value), Is.EqualTo(s.Total.Bytes / 1e6).Within(0.05));
        Assert.That(double.Parse(total.Groups[3].Value), Is.EqualTo(s.Total.Bytes / 1e6 / 8).Within(0.005));
        // Sum of the family rows' launches = the total's.
        long families = Regex.Matches(output, @"^\| ([a-z][^|]*) \| (\d+) \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|", RegexOptions.Multiline)
            .Where(m => m.Groups[1].Value.Trim() != "total" && !m.Groups[1].Value.Contains('_')).Sum(m => long.Parse(m.Groups[2].Value));
        Assert.That(families, Is.EqualTo(s.Total.Launches));
    }

    [Test]
    public void Profile_gpu_picks_the_figures_and_their_SM_count_and_an_unknown_gpu_is_refused()
    {
        var (code, output, err) = Run([.. Small, "--profile-only", "--profile-batch", "4", "--profile-gpu", "A100"]);
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("on NVIDIA A100 80GB: 1.8 TB/s DRAM, 20 TFLOP/s fp32").And.Contain("108 SMs"));
        Assert.That(output, Does.Contain("on A100: compare with care"), "the targets are for H200");
        var s = new CostSummary(TrainingStepModel.Record(new GhostNetConfig(Width: 0.5f), 4, 64, GpuFigures.Named("A100").AsDevice()).Launches, GpuFigures.Named("A100"));
        Assert.That(long.Parse(TotalRow(output).Groups[1].Value), Is.EqualTo(s.Total.Launches));

        (code, _, err) = Run([.. Small, "--profile-only", "--profile-gpu", "V100"]);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim(), Does.StartWith("error: --profile-gpu: no figures for GPU 'V100'").And.Not.Contain("\n"));
    }

    [Test]
    public void Profile_on_the_cpu_prints_the_measured_host_times_apart_from_the_model()
    {
        var (code, output, err) = Run("bench", "--device", "cpu", "--width", "0.25", "--size", "32", "--train-batches", "2", "--infer-batches", "1",
            "--steps", "1", "--warmup", "0", "--profile");
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("| train | 2 |"));
        Assert.That(output, Does.Match(@"Where a training step goes on cpu[^\n]*\(batch 2, each op synchronised"));
        Assert.That(output, Does.Contain("Modelled training step (GhostNet width 0.25 at 32x32, batch 2) on NVIDIA H200 SXM"));
        Assert.That(output, Does.Not.Contain("measured ms"), "host times do not go beside a GPU model");
    }

    [Test]
    public void On_a_real_gpu_the_measured_time_of_each_family_goes_beside_its_model()
    {
        // No GPU here: the measured times are made up; what is checked is where they go.
        var config = new GhostNetConfig(Width: 0.25f, NumClasses: 10);
        var s = new CostSummary(TrainingStepModel.Record(config, 2, 32, GpuFigures.H200.AsDevice()).Launches, GpuFigures.H200);
        var measured = s.Families.ToDictionary(r => r.Name, r => (r.Launches, 1e-3));
        measured[GhostNet.Backends.OpFamily.Upload] = (2, 5e-3);
        var output = new StringWriter();
        var previous = Console.Out;
        Console.SetOut(output);
        try
        {
            GhostNet.Cli.BenchCommand.PrintModel(s, config, 2, 32, measured, issued: s.Total.Launches);
        }
        finally
        {
            Console.SetOut(previous);
        }
        string text = output.ToString();
        Assert.That(text, Does.Contain("| roofline ms | launch overhead ms | measured ms |"));
        Assert.That(text, Does.Match(@"\| pointwise conv fwd \| \d+ \|[^\n]*\| 1\.000 \|\n"));
        Assert.That(text, Does.Contain("| upload (no kernels) | 0 |").And.Contain("| 5.000 |"));
        Assert.That(text, Does.Match($@"\| total \| {s.Total.Launches} \|[^\n]*\| {s.Families.Count + 5}\.000 \|\n"), "measured total: every family's and the upload's");
        Assert.That(text, Does.Contain($"Launches issued in the measured step: {s.Total.Launches} (modelled with 132 SMs: {s.Total.Launches})"));
    }
}

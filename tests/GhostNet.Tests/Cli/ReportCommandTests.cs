using System.Text.Json;
using GhostNet.Cli;
using NUnit.Framework;
using static GhostNet.Tests.Cli.TrainCommandTests;

namespace GhostNet.Tests.Cli;

/// <summary>
/// The GPU check's machine-readable path (issue 13): `bench --json` writes its rows, and
/// `ghostcuda report` turns a results.json (ours and PyTorch's from one call) into the tables,
/// with the ratios and issue 13's targets worked out from the numbers, not typed in.
/// </summary>
[NonParallelizable]
public class ReportCommandTests
{
    private string _dir = null!;

    [SetUp]
    public void MakeFolder() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), $"ghostnet-report-{Guid.NewGuid():N}"));

    [TearDown]
    public void RemoveFolder() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void Bench_json_holds_the_rows_it_printed()
    {
        string path = Path.Combine(_dir, "bench.json");
        var (code, output, err) = Run("bench", "--device", "cpu", "--width", "0.25", "--size", "32", "--train-batches", "2", "--infer-batches", "1,3",
            "--steps", "1", "--warmup", "0", "--threads", "1", "--json", path);
        Assert.That(code, Is.Zero, err);
        var run = JsonSerializer.Deserialize<BenchRun>(File.ReadAllText(path), BenchRuns.Options)!;
        Assert.That(run.Width, Is.EqualTo(0.25f));
        Assert.That(run.Size, Is.EqualTo(32));
        Assert.That(run.Precision, Is.EqualTo("fp32"));
        Assert.That(run.Rows.Select(r => (r.Mode, r.Batch)), Is.EqualTo(new[] { ("train", 2), ("inference", 1), ("inference", 3) }));
        foreach (var row in run.Rows)
        {
            Assert.That(row.Ms, Is.GreaterThan(0));
            Assert.That(output, Does.Contain($"| {row.Mode} | {row.Batch} | {row.Ms:F2} |"), "the printed row");
            Assert.That(row.HostWaitsPerStep, Is.Null, "the CPU has no device to wait for");
        }
        Assert.That(Directory.GetFiles(_dir), Is.EqualTo(new[] { path }), "no temporary file left");

        (code, _, err) = Run("bench", "--device", "cpu", "--width", "0.25", "--size", "32", "--train-batches", "2", "--infer-batches", "1",
            "--steps", "1", "--warmup", "0", "--threads", "1", "--json", "/proc/no-such-folder/bench.json");
        Assert.That(code, Is.EqualTo(2), "an unwritable --json path is bad input");
        Assert.That(err.Trim(), Does.StartWith("error: ").And.Contain("/proc/no-such-folder").And.Not.Contain("\n"));
    }

    private static string Results(bool withBf16) => $$"""
        {
          "date": "2026-12-03", "commit": "abc1234", "device": "NVIDIA H200", "gpu_tests": { "total": 300 },
          "ghostcuda": [
            { "device": "cuda:0", "width": 1.0, "size": 224, "precision": "fp32", "steps": 10, "warmup": 3, "rows": [
              { "mode": "train", "batch": 256, "ms": 80.0, "images_per_second": 3200, "host_waits_per_step": 1.0, "host_ms_per_step": 2.0 },
              { "mode": "inference", "batch": 1, "ms": 0.8, "images_per_second": 1250, "host_waits_per_step": 0.0, "host_ms_per_step": 0.01 },
              { "mode": "inference", "batch": 256, "ms": 20.0, "images_per_second": 12800, "host_waits_per_step": 0.0, "host_ms_per_step": 0.01 } ] },
            { "device": "cuda:0", "width": 1.0, "size": 224, "precision": "{{(withBf16 ? "bf16" : "tf32")}}", "steps": 10, "warmup": 3, "rows": [
              { "mode": "train", "batch": 256, "ms": 40.0, "images_per_second": 6400, "host_waits_per_step": 1.0, "host_ms_per_step": 2.0 },
              { "mode": "inference", "batch": 1, "ms": 0.4, "images_per_second": 2500, "host_waits_per_step": 0.0, "host_ms_per_step": 0.01 } ] },
            { "device": "cuda:0", "width": 0.25, "size": 32, "precision": "fp32", "steps": 1, "warmup": 0, "rows": [
              { "mode": "train", "batch": 256, "ms": 1.0, "images_per_second": 1, "host_waits_per_step": null, "host_ms_per_step": null } ] }
          ],
          "pytorch": { "torch": "2.11.0", "timm": "1.0", "device": "NVIDIA H200", "rows": [
            { "mode": "train", "batch": 256, "dtype": "fp32", "layout": "NCHW", "compiled": false, "cudnn_benchmark": true, "ms": 100.0, "error": null },
            { "mode": "train", "batch": 256, "dtype": "bf16", "layout": "NHWC", "compiled": false, "cudnn_benchmark": true, "ms": 50.0, "error": null },
            { "mode": "train", "batch": 256, "dtype": "bf16", "layout": "NHWC", "compiled": true, "cudnn_benchmark": true, "ms": 30.0, "error": null },
            { "mode": "infer", "batch": 1, "dtype": "fp32", "layout": "NCHW", "compiled": false, "cudnn_benchmark": true, "ms": 4.0, "error": null },
            { "mode": "infer", "batch": 256, "dtype": "bf16", "layout": "NHWC", "compiled": true, "cudnn_benchmark": true, "ms": null, "error": "RuntimeError: x" }
          ] }
        }
        """;

    [Test]
    public void Report_puts_ours_beside_pytorch_and_works_out_the_targets()
    {
        string path = Path.Combine(_dir, "results.json");
        File.WriteAllText(path, Results(withBf16: false));
        var (code, output, err) = Run("report", path);
        Assert.That(code, Is.Zero, err);
        TestContext.Out.WriteLine(output);
        Assert.That(output, Does.Contain("# GPU check 2026-12-03: NVIDIA H200, commit abc1234"));
        Assert.That(output, Does.Contain("| mode | batch | ghostcuda fp32 | ghostcuda tf32 | PyTorch eager fp32 NCHW | PyTorch eager bf16 NHWC | torch.compile bf16 NHWC | best PyTorch / best ghostcuda |"));
        // Best of ours 40 ms against PyTorch's best 30 ms (compiled); the 0.25x run at 32 is not GhostNet 1.0x at 224.
        Assert.That(output, Does.Contain("| train | 256 | 80.00 | 40.00 | 100.00 | 50.00 | 30.00 | 0.75x |"));
        Assert.That(output, Does.Contain("| inference | 1 | 0.80 | 0.40 | 4.00 | - | - | 10.00x |"));
        Assert.That(output, Does.Contain("| inference | 256 | 20.00 | - | - | - | - | - |"), "a failed PyTorch row is no number");
        Assert.That(output, Does.Contain("| train 256: >= 1.5x PyTorch eager bf16 NHWC (no bf16 run: ghostcuda's best precision stands in) | 40.00 | 50.00 | no (1.25x) |"));
        Assert.That(output, Does.Contain("| train 256: >= 1.0x torch.compile (no bf16 run: ghostcuda's best precision stands in) | 40.00 | 30.00 | no (0.75x) |"));
        Assert.That(output, Does.Contain("| inference 1: <= 0.5 ms | 0.40 | 4.00 | yes |"));
        Assert.That(output, Does.Contain("| inference 256: >= torch.compile | 20.00 | - | not measured |"));

        File.WriteAllText(path, Results(withBf16: true));
        (code, output, err) = Run("report", path);
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("| train 256: >= 1.5x PyTorch eager bf16 NHWC | 40.00 | 50.00 | no (1.25x) |"), "the bf16 run itself");
    }

    [Test]
    public void A_file_that_is_no_results_json_is_one_line()
    {
        string path = Path.Combine(_dir, "results.json");
        File.WriteAllText(path, "{ \"ghostcuda\": 3");
        var (code, _, err) = Run("report", path);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim(), Does.StartWith($"error: {path} is not a GPU check's results.json:").And.Not.Contain("\n"));
        (code, _, err) = Run("report", Path.Combine(_dir, "missing.json"));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim(), Does.StartWith("error: ").And.Contain("missing.json").And.Not.Contain("\n"));
    }
}

using System.CommandLine;
using System.Globalization;

namespace GhostNet.Cli;

/// <summary>
/// `ghostcuda report results.json`: the GPU check's numbers (tools/gpu/run.sh) as the tables of
/// docs/kernels.md and the README. Ours beside PyTorch's, measured in the same call on the same
/// GPU, as ratios (PyTorch's time over ours: above 1 we are faster), and issue 13's targets.
/// </summary>
internal static class ReportCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("results") { Description = "results.json written by tools/gpu/run.sh" };
        var command = new Command("report", "Tables of a GPU check's results.json: ghostcuda beside PyTorch, and the targets.");
        command.Arguments.Add(file);
        command.SetAction(r =>
        {
            Console.Write(Render(BenchRuns.ReadResults(r.GetValue(file)!)));
            return 0;
        });
        return command;
    }

    private static string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);

    public static string Render(GpuResults results)
    {
        var w = new StringWriter { NewLine = "\n" };
        var ours = (results.Ghostcuda ?? []).Where(run => run.Arch.StartsWith("ghostnet_", StringComparison.Ordinal) && run.Width == 1.0f && run.Size == 224).ToList();
        var torch = (results.Pytorch?.Rows ?? []).Where(row => row.Ms is > 0).ToList();
        w.WriteLine($"# GPU check {results.Date ?? "(undated)"}: {results.Device ?? "(device not named)"}, commit {results.Commit ?? "?"}");
        w.WriteLine();
        if (results.Pytorch is { } p) w.WriteLine($"PyTorch {p.Torch ?? "?"}, timm {p.Timm ?? "?"}; GhostNet 1.0x at 224, ms per step (median), measured in one call.");
        w.WriteLine();
        string[] precisions = ours.Select(run => run.Precision).Distinct().ToArray();
        if (precisions.Length == 0)
        {
            w.WriteLine("No ghostcuda run of GhostNet 1.0x at 224 in this file: nothing to compare.");
            return w.ToString();
        }
        var baselines = new (string Name, Func<TorchRow, bool> Is)[]
        {
            ("PyTorch eager fp32 NCHW", t => t is { Dtype: "fp32", Layout: "NCHW", Compiled: false }),
            ("PyTorch eager bf16 NHWC", t => t is { Dtype: "bf16", Layout: "NHWC", Compiled: false }),
            ("torch.compile bf16 NHWC", t => t is { Dtype: "bf16", Layout: "NHWC", Compiled: true }),
        };
        w.WriteLine("| mode | batch | " + string.Join(" | ", precisions.Select(p => $"ghostcuda {p}")) + " | " +
                    string.Join(" | ", baselines.Select(b => b.Name)) + " | best PyTorch / best ghostcuda |");
        w.WriteLine("|---|---:|" + string.Concat(precisions.Select(_ => "---:|")) + string.Concat(baselines.Select(_ => "---:|")) + "---:|");
        var keys = ours.SelectMany(run => run.Rows).Select(row => (row.Mode, row.Batch)).Distinct().OrderByDescending(k => k.Mode).ThenBy(k => k.Batch); // train first
        double? OursBest(string mode, int batch, string? precision = null) => ours.Where(run => precision is null || run.Precision == precision)
            .SelectMany(run => run.Rows).Where(row => row.Mode == mode && row.Batch == batch).Select(row => (double?)row.Ms).Min();
        foreach (var (mode, batch) in keys)
        {
            var mine = precisions.Select(p => OursBest(mode, batch, p)).ToArray();
            var theirs = baselines.Select(b => Best(torch, mode, batch, b.Is)).ToArray();
            double? bestMine = mine.Min(), bestTheirs = Best(torch, mode, batch, _ => true);
            string ratio = bestMine is { } m && bestTheirs is { } t ? $"{F(t / m)}x" : "-";
            w.WriteLine($"| {mode} | {batch} | " + string.Join(" | ", mine.Select(Ms)) + " | " + string.Join(" | ", theirs.Select(Ms)) + $" | {ratio} |");
        }
        w.WriteLine();
        w.WriteLine("Issue 13's targets (GhostNet 1.0x at 224):");
        w.WriteLine();
        w.WriteLine("| target | ghostcuda | PyTorch | met |");
        w.WriteLine("|---|---:|---:|---|");
        bool bf16 = precisions.Contains("bf16");
        string note = bf16 ? "" : " (no bf16 run: ghostcuda's best precision stands in)";
        Target(w, $"train 256: >= 1.5x PyTorch eager bf16 NHWC{note}", OursBest("train", 256, bf16 ? "bf16" : null),
            Best(torch, "train", 256, baselines[1].Is), ratio: 1.5);
        Target(w, $"train 256: >= 1.0x torch.compile{note}", OursBest("train", 256, bf16 ? "bf16" : null), Best(torch, "train", 256, t => t.Compiled), ratio: 1.0);
        var one = OursBest("inference", 1);
        w.WriteLine($"| inference 1: <= 0.5 ms | {Ms(one)} | {Ms(Best(torch, "inference", 1, _ => true))} | {(one is { } o ? o <= 0.5 ? "yes" : "no" : "not measured")} |");
        Target(w, "inference 256: >= torch.compile", OursBest("inference", 256), Best(torch, "inference", 256, t => t.Compiled), ratio: 1.0);
        return w.ToString();
    }

    /// <summary>PyTorch's fastest matching row; its "infer" is our "inference".</summary>
    private static double? Best(IEnumerable<TorchRow> rows, string mode, int batch, Func<TorchRow, bool> match) =>
        rows.Where(t => (t.Mode == "infer" ? "inference" : t.Mode) == mode && t.Batch == batch && match(t)).Select(t => t.Ms).Min();

    private static string Ms(double? ms) => ms is { } v ? F(v) : "-";

    /// <summary>A "ours at least <paramref name="ratio"/> times as fast" row: met when their time over ours reaches it.</summary>
    private static void Target(StringWriter w, string what, double? ours, double? theirs, double ratio)
    {
        string met = ours is { } o && theirs is { } t ? (t / o >= ratio ? "yes" : "no") + $" ({F(t / o)}x)" : "not measured";
        w.WriteLine($"| {what} | {Ms(ours)} | {Ms(theirs)} | {met} |");
    }
}

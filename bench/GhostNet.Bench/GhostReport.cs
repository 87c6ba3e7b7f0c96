using System.Globalization;
using BenchmarkDotNet.Reports;
using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Models;
using ScottPlot;

namespace GhostNet.Bench;

/// <summary>
/// Turns a GhostModuleBenchmarks summary into the table people read (multiply-adds, parameters,
/// theoretical r_s, measured times and speed-ups per layer) and a plot of measured against
/// theoretical speed-up over s and d.
/// </summary>
internal static class GhostReport
{
    public static void Write(Summary summary, string folder)
    {
        var times = summary.Reports.Where(r => r.ResultStatistics is not null).ToDictionary(
            r => (Case: (GhostCase)r.BenchmarkCase.Parameters["Case"], Method: r.BenchmarkCase.Descriptor.WorkloadMethodDisplayInfo.Trim('\'')),
            r => r.ResultStatistics!.Median / 1e6); // medians: the first iterations of a case can hit page faults
        var cases = times.Keys.Select(k => k.Case).Distinct().ToList();
        var c = CultureInfo.InvariantCulture;
        var lines = new List<string>
        {
            $"# Ghost module against standard convolution (CPU backend, {Environment.ProcessorCount} threads, {DateTime.UtcNow:yyyy-MM-dd})",
            "",
            "Each row: one layer, the Ghost module (primary conv to c_out / s channels + d x d cheap depthwise, BN + ReLU each) against",
            "conv + BN + ReLU with the same output. MACs and parameters are the convolutions'; r_s is the paper's c k^2 / (c k^2 / s + (s-1)/s d^2).",
            "Times are medians of five invocations (BenchmarkDotNet, in process).",
            "",
            "| layer | batch | s | d | MACs std | MACs ghost | params std | params ghost | r_s | std fwd ms | ghost fwd ms | fwd speed-up | std fwd+bwd ms | ghost fwd+bwd ms | fwd+bwd speed-up |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        };
        var points = new List<(GhostCase Case, double Measured)>();
        foreach (var k in cases)
        {
            var (stdMacs, stdParams) = Describe(k, ghost: false);
            var (ghostMacs, ghostParams) = Describe(k, ghost: true);
            double T(string m) => times.TryGetValue((k, m), out var v) ? v : double.NaN;
            double sf = T("standard fwd"), gf = T("ghost fwd"), sb = T("standard fwd+bwd"), gb = T("ghost fwd+bwd");
            points.Add((k, sf / gf));
            lines.Add(string.Format(c, "| {0} | {1} | {2} | {3} | {4:N0} | {5:N0} | {6:N0} | {7:N0} | {8:F2} | {9:F3} | {10:F3} | {11:F2} | {12:F3} | {13:F3} | {14:F2} |",
                k.Name, k.Batch, k.Ratio, k.Cheap, stdMacs, ghostMacs, stdParams, ghostParams, k.TheoreticalSpeedup, sf, gf, sf / gf, sb, gb, sb / gb));
        }
        Directory.CreateDirectory(folder);
        string stem = Path.Combine(folder, $"{DateTime.UtcNow:yyyy-MM-dd}-cpu-ghost-vs-standard");
        File.WriteAllLines(stem + ".md", lines);
        Plot(points, stem + ".png");
        Console.WriteLine($"wrote {stem}.md and .png");
    }

    private static (long Macs, long Params) Describe(GhostCase k, bool ghost)
    {
        var set = new ParameterSet();
        var pb = new PlanBuilder(set, 1, withGradients: false);
        var x = new Tensor(new Storage("x", (long)k.In * k.Size * k.Size), 0, 1, k.In, k.Size, k.Size);
        _ = ghost ? new GhostModule(pb, "ghost", x, k.Out, k.Kernel, k.Ratio, k.Cheap) : (Layers.ILayer)new ConvBnAct(pb, "standard", x, k.Out, k.Kernel);
        return (pb.Records.Sum(r => r.MultiplyAdds), set.ParameterCount);
    }

    private static void Plot(List<(GhostCase Case, double Measured)> points, string path)
    {
        string font = Path.Combine(AppContext.BaseDirectory, "DejaVuSans.ttf");
        if (File.Exists(font)) { Fonts.AddFontFile("DejaVu Sans", font); Fonts.Default = "DejaVu Sans"; }
        var plot = new Plot();
        foreach (var group in points.GroupBy(p => (p.Case.Name.StartsWith("vgg"), p.Case.Batch)))
        {
            var s = plot.Add.Scatter(group.Select(p => p.Case.TheoreticalSpeedup).ToArray(), group.Select(p => p.Measured).ToArray());
            s.LineWidth = 0;
            s.MarkerSize = 8;
            s.LegendText = $"{(group.Key.Item1 ? "VGG-16 layers (k=3)" : "GhostNet layers (k=1)")}, batch {group.Key.Batch}";
        }
        double max = points.Max(p => Math.Max(p.Case.TheoreticalSpeedup, p.Measured)) * 1.1;
        var ideal = plot.Add.Line(0, 0, max, max);
        ideal.LegendText = "measured = theoretical";
        ideal.LinePattern = LinePattern.Dashed;
        plot.Title("Ghost module vs standard conv: forward speed-up (CPU)");
        plot.XLabel("theoretical speed-up r_s");
        plot.YLabel("measured speed-up (standard time / ghost time)");
        plot.ShowLegend();
        plot.SavePng(path, 900, 600);
    }
}

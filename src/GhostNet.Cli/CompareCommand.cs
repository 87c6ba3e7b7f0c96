using System.CommandLine;
using System.Globalization;
using System.Text;
using GhostNet.IO;
using GhostNet.Models;
using ScottPlot;

namespace GhostNet.Cli;

/// <summary>
/// `ghostcuda compare`: models side by side in one run on one device, the paper's question put
/// to the hardware: parameters and multiply-adds (the FLOP ratio is the theoretical speed-up,
/// the paper's r_s for a Ghost twin) against measured training-step and inference times. The
/// first model is the reference of every ratio. With --out, the table as compare.md and a plot
/// of multiply-adds against the measured step time as compare.png (both replaced atomically).
/// </summary>
internal static class CompareCommand
{
    public static Command Create()
    {
        var models = new Argument<string[]>("models")
        {
            Description = "Registered models, each NAME or NAME:s=S,d=D (a Ghost twin's ratio and cheap-op size); the first is the reference",
            Arity = ArgumentArity.OneOrMore,
        };
        var device = Devices.Option();
        var size = new Option<int?>("--size") { Description = "Input size (default: the first model's)" };
        var batch = new Option<int>("--batch", "-b") { Description = "Training and inference batch size", DefaultValueFactory = _ => 32 };
        var steps = new Option<int>("--steps") { Description = "Timed steps per model and mode (the median is reported)", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 1 };
        var output = new Option<string?>("--out") { Description = "Folder for compare.md and compare.png" };
        var command = new Command("compare", "Time models side by side: parameters and multiply-adds against measured training and inference time.");
        command.Arguments.Add(models);
        foreach (var o in new Option[] { device, size, batch, steps, warmup, output }) command.Options.Add(o);
        command.SetAction(r =>
        {
            var configs = r.GetValue(models)!.Select(Parse).ToList();
            int s = r.GetValue(size) ?? ModelRegistry.Get(configs[0].Arch).InputSize, b = r.GetValue(batch), n = r.GetValue(steps), w = r.GetValue(warmup);
            if (s is < Training.CheckpointInfo.MinInputSize or > Training.CheckpointInfo.MaxInputSize)
                throw new ArgumentException($"--size must lie in {Training.CheckpointInfo.MinInputSize}..{Training.CheckpointInfo.MaxInputSize}");
            if (b is < 2 or > 65536) throw new ArgumentException("--batch must lie in 2..65536");
            if (n is < 1 or > 10_000) throw new ArgumentException("--steps must lie in 1..10000");
            if (w is < 0 or > 10_000) throw new ArgumentException("--warmup must lie in 0..10000");
            using var backend = Devices.Create(r.GetValue(device)!, 0);
            if (backend is Cpu.CpuBackend)
                MemoryBudget.Require(configs.Max(c => GhostNetModel.PlanBytes(c, b, s, s, withGradients: true) + GhostNetModel.StateBytes(c)), $"--batch {b} at --size {s}");
            var rows = new List<Row>();
            foreach (var config in configs)
            {
                Console.Error.WriteLine($"timing {config.Title} ...");
                var records = GhostNetModel.Describe(config, s, s);
                using var model = new GhostNetModel(config, backend, seed: 0);
                var train = BenchCommand.TimeTraining(model, backend, b, s, n, w, graphs: true);
                var infer = BenchCommand.TimeInference(model, backend, b, s, n, w, graphs: true);
                rows.Add(new Row(config.Title, records.Sum(x => x.Parameters), records.Sum(x => x.MultiplyAdds), train.Ms, infer.Ms));
            }
            string table = Table(rows, $"{backend.Name}, batch {b} at {s}x{s}, median of {n} steps after {w} warm-up");
            Console.Write(table);
            if (r.GetValue(output) is { } dir)
            {
                Directory.CreateDirectory(dir);
                AtomicFile.WriteAllText(Path.Combine(dir, "compare.md"), table);
                Plot(Path.Combine(dir, "compare.png"), rows, $"Training step on {backend.Name}, batch {b} at {s}x{s}");
                Console.WriteLine($"wrote {Path.Combine(dir, "compare.md")} and compare.png");
            }
            return 0;
        });
        return command;
    }

    private sealed record Row(string Model, long Parameters, long MultiplyAdds, double TrainMs, double InferMs);

    /// <summary>NAME or NAME:s=S,d=D.</summary>
    private static IModelConfig Parse(string entry)
    {
        var parts = entry.Split(':', 2);
        int? ratio = null, dw = null;
        if (parts.Length == 2)
            foreach (var option in parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries))
            {
                var kv = option.Split('=', 2);
                if (kv.Length != 2 || !int.TryParse(kv[1], CultureInfo.InvariantCulture, out int v))
                    throw new ArgumentException($"model '{entry}': '{option}' is not s=N or d=N");
                switch (kv[0].Trim())
                {
                    case "s": ratio = v; break;
                    case "d": dw = v; break;
                    default: throw new ArgumentException($"model '{entry}': unknown option '{kv[0]}' (s or d)");
                }
            }
        if (!ModelRegistry.Contains(parts[0])) throw new ArgumentException($"model '{parts[0]}' is not registered (ghostcuda models lists them)");
        if (ratio is < 2 or > 16) throw new ArgumentException($"model '{entry}': s must lie in 2..16");
        if (dw is { } d && (d < 1 || d > 9 || d % 2 == 0)) throw new ArgumentException($"model '{entry}': d must be odd, 1..9");
        try
        {
            return ModelRegistry.Create(parts[0], new ModelOptions(ModelRegistry.Get(parts[0]).NumClasses, GhostRatio: ratio, GhostDwSize: dw));
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"model '{entry}': {e.Message}", e); // "resnet20 has no ghost ratio option (given 3)"
        }
    }

    private static string Table(List<Row> rows, string caption)
    {
        var first = rows[0];
        var text = new StringBuilder();
        text.AppendLine($"Side by side on {caption}; ratios against {first.Model}.");
        text.AppendLine();
        text.AppendLine("| model | params | MACs per image | fewer MACs | train ms | train speed-up | inference ms | inference speed-up |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
            text.AppendLine(FormattableString.Invariant(
                $"| {r.Model} | {r.Parameters / 1e6:F2} M | {r.MultiplyAdds / 1e6:F1} M | {(double)first.MultiplyAdds / r.MultiplyAdds:F2}x | {r.TrainMs:F1} | {first.TrainMs / r.TrainMs:F2}x | {r.InferMs:F1} | {first.InferMs / r.InferMs:F2}x |"));
        return text.ToString();
    }

    private static void Plot(string path, List<Row> rows, string title)
    {
        try
        {
            _ = Plots.FontReady.Value;
            using var plot = new Plot();
            foreach (var r in rows)
            {
                var point = plot.Add.Scatter(new[] { r.MultiplyAdds / 1e6 }, new[] { r.TrainMs });
                point.LegendText = r.Model;
                point.MarkerSize = 9;
            }
            plot.Title(title);
            plot.XLabel("multiply-adds per image (M)");
            plot.YLabel("measured training step (ms)");
            plot.ShowLegend();
            using var image = plot.GetImage(800, 500);
            AtomicFile.WriteAllBytes(path, image.GetImageBytes(ImageFormat.Png));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Console.Error.WriteLine($"warning: plot not drawn ({e.Message})");
        }
    }
}

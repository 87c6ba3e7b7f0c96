using System.CommandLine;
using GhostNet.Graph;
using GhostNet.Models;
using Spectre.Console;

namespace GhostNet.Cli;

/// <summary>`ghostcuda info`: the layer table of a GhostNet with output shapes, parameters and multiply-adds.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var arch = new ArchOptions();
        var size = new Option<int>("--size") { Description = "Input height and width", DefaultValueFactory = _ => 224 };
        var classes = new Option<int>("--classes") { Description = "Number of classes", DefaultValueFactory = _ => 1000 };
        var all = new Option<bool>("--all") { Description = "One row per primitive layer instead of per block" };
        var command = new Command("info", "Print the per-layer table of a GhostNet and its totals.");
        arch.AddTo(command);
        command.Options.Add(size);
        command.Options.Add(classes);
        command.Options.Add(all);
        command.SetAction(result =>
        {
            var config = arch.Config(result, result.GetValue(classes), 0.2f);
            int s = result.GetValue(size);
            if (s is < Training.CheckpointInfo.MinInputSize or > Training.CheckpointInfo.MaxInputSize)
                throw new ArgumentException($"--size must lie in {Training.CheckpointInfo.MinInputSize}..{Training.CheckpointInfo.MaxInputSize}");
            if (s < 1) throw new ArgumentOutOfRangeException(nameof(size), "--size must be positive");
            Print(config, s, GhostNetModel.Describe(config, s, s), result.GetValue(all));
            return 0;
        });
        return command;
    }

    private static void Print(GhostNetConfig config, int size, IReadOnlyList<LayerRecord> records, bool all)
    {
        var rows = all ? records.Select(r => (r.Name, r.Kind, r.C, r.H, r.W, r.Parameters, r.MultiplyAdds)).ToList() : Group(records);
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("layer").AddColumn("kind").AddColumn(new TableColumn("output").RightAligned())
            .AddColumn(new TableColumn("params").RightAligned()).AddColumn(new TableColumn("MACs").RightAligned());
        foreach (var r in rows)
            table.AddRow(Markup.Escape(r.Name), Markup.Escape(r.Kind), $"{r.C}x{r.H}x{r.W}", $"{r.Parameters:N0}", $"{r.MultiplyAdds:N0}");
        long parameters = records.Sum(r => r.Parameters), macs = records.Sum(r => r.MultiplyAdds);
        table.AddEmptyRow();
        table.AddRow("[bold]total[/]", "", "", $"[bold]{parameters:N0}[/]", $"[bold]{macs:N0}[/]");
        AnsiConsole.MarkupLine($"GhostNet width {config.Width} ({config.NumClasses} classes) at {size}x{size}");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"{parameters / 1e6:F2} M parameters, {macs / 1e6:F1} M multiply-adds per image");
    }

    /// <summary>One row per Ghost bottleneck (blocks.i.j), per stem layer and per head layer.</summary>
    private static List<(string Name, string Kind, int C, int H, int W, long Parameters, long MultiplyAdds)> Group(IReadOnlyList<LayerRecord> records)
    {
        static string Key(string name)
        {
            var parts = name.Split('.');
            return parts[0] == "blocks" ? string.Join('.', parts.Take(3)) : parts[0];
        }
        return records.GroupBy(r => Key(r.Name)).Select(g =>
        {
            var last = g.Last();
            string kind = g.Count() == 1 ? last.Kind : g.Any(r => r.Kind.StartsWith("ghost bottleneck")) ? "ghost bottleneck" : "conv + bn + relu";
            if (kind == "ghost bottleneck" && g.Any(r => r.Name.Contains(".se."))) kind += " +SE";
            if (g.Any(r => r.Name.Contains(".conv_dw"))) kind += " s2";
            return (g.Key, kind, last.C, last.H, last.W, g.Sum(r => r.Parameters), g.Sum(r => r.MultiplyAdds));
        }).ToList();
    }
}

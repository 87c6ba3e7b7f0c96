using System.CommandLine;
using GhostNet.Graph;
using GhostNet.Models;
using Spectre.Console;

namespace GhostNet.Cli;

/// <summary>`ghostcuda info`: the layer table of a registered model with output shapes, parameters and multiply-adds.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var arch = new ArchOptions();
        var size = new Option<int?>("--size") { Description = "Input height and width (default: the model's, 224 for GhostNet, 32 for the CIFAR models)" };
        var classes = new Option<int?>("--classes") { Description = "Number of classes (default: the model's, 1000 or 10)" };
        var all = new Option<bool>("--all") { Description = "One row per primitive layer instead of per block" };
        var command = new Command("info", "Print the per-layer table of a registered model and its totals.");
        arch.AddTo(command);
        command.Options.Add(size);
        command.Options.Add(classes);
        command.Options.Add(all);
        command.SetAction(result =>
        {
            var registered = ModelRegistry.Get(result.GetValue(arch.Arch)!);
            var config = arch.Config(result, result.GetValue(classes) ?? registered.NumClasses, null);
            int s = result.GetValue(size) ?? registered.InputSize;
            if (s is < Training.CheckpointInfo.MinInputSize or > Training.CheckpointInfo.MaxInputSize)
                throw new ArgumentException($"--size must lie in {Training.CheckpointInfo.MinInputSize}..{Training.CheckpointInfo.MaxInputSize}");
            if (s < 1) throw new ArgumentOutOfRangeException(nameof(size), "--size must be positive");
            Print(config, s, GhostNetModel.Describe(config, s, s), result.GetValue(all));
            return 0;
        });
        return command;
    }

    private static void Print(IModelConfig config, int size, IReadOnlyList<LayerRecord> records, bool all)
    {
        var rows = all ? records.Select(r => (r.Name, r.Kind, r.C, r.H, r.W, r.Parameters, r.MultiplyAdds)).ToList() : Group(records, size);
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("layer").AddColumn("kind").AddColumn(new TableColumn("output").RightAligned())
            .AddColumn(new TableColumn("params").RightAligned()).AddColumn(new TableColumn("MACs").RightAligned());
        foreach (var r in rows)
            table.AddRow(Markup.Escape(r.Name), Markup.Escape(r.Kind), $"{r.C}x{r.H}x{r.W}", $"{r.Parameters:N0}", $"{r.MultiplyAdds:N0}");
        long parameters = records.Sum(r => r.Parameters), macs = records.Sum(r => r.MultiplyAdds);
        table.AddEmptyRow();
        table.AddRow("[bold]total[/]", "", "", $"[bold]{parameters:N0}[/]", $"[bold]{macs:N0}[/]");
        AnsiConsole.MarkupLine(Markup.Escape($"{config.Title} ({config.NumClasses} classes) at {size}x{size}"));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"{parameters / 1e6:F2} M parameters, {macs / 1e6:F1} M multiply-adds per image");
        if (config is IGhostTwin { Standard: { } standard } ghost)
        {
            var twin = GhostNetModel.Describe(standard, size, size);
            long twinParameters = twin.Sum(r => r.Parameters), twinMacs = twin.Sum(r => r.MultiplyAdds);
            AnsiConsole.MarkupLine(Markup.Escape(
                $"Ghost modules s = {ghost.GhostRatio}, d = {ghost.GhostDwSize}: the paper's speed-up of one over its k x k conv of c inputs is " +
                $"r_s = c*k*k / (c*k*k/s + (s-1)/s*d*d) ~ s*c/(s+c-1) ~ {ghost.GhostRatio}; against {standard.Arch} " +
                $"({twinParameters / 1e6:F2} M parameters, {twinMacs / 1e6:F1} M multiply-adds) this network has " +
                $"{(double)twinParameters / parameters:F2}x fewer parameters and {(double)twinMacs / macs:F2}x fewer multiply-adds"));
        }
    }

    /// <summary>
    /// One row per block (the layers under blocks.i.j, layer1.i, features.i: a name's parts up to
    /// its first number and a number right after it) and per layer outside blocks. A block that
    /// records itself ("ghost bottleneck (sum)") gives the row its kind, else its last layer does
    /// ("conv + batch norm + relu"); a block whose plane shrinks is marked with its stride.
    /// </summary>
    private static List<(string Name, string Kind, int C, int H, int W, long Parameters, long MultiplyAdds)> Group(IReadOnlyList<LayerRecord> records, int inputSize)
    {
        static bool Number(string part) => part.Length > 0 && part.All(char.IsAsciiDigit);
        static string Key(string name)
        {
            var parts = name.Split('.');
            int first = Array.FindIndex(parts, Number);
            if (first < 0) return parts[0];
            int take = first + 1 < parts.Length && Number(parts[first + 1]) ? first + 2 : first + 1;
            return string.Join('.', parts.Take(take));
        }
        int plane = inputSize;
        var rows = new List<(string, string, int, int, int, long, long)>();
        foreach (var g in records.GroupBy(r => Key(r.Name)))
        {
            var last = g.Last();
            var block = g.FirstOrDefault(r => r.Name == g.Key && g.Count() > 1);
            string kind = block is not null ? block.Kind.Split(" (")[0] : g.Count() == 1 ? last.Kind : "conv + " + last.Kind;
            if (g.Any(r => r.Name.Contains(".se."))) kind += " +SE";
            if (g.Count() > 1 && last.H < plane && last.H > 1) kind += $" s{(plane + last.H - 1) / last.H}";
            plane = last.H;
            rows.Add((g.Key, kind, last.C, last.H, last.W, g.Sum(r => r.Parameters), g.Sum(r => r.MultiplyAdds)));
        }
        return rows;
    }
}

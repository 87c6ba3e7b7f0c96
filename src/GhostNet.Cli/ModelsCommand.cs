using System.CommandLine;
using GhostNet.Models;
using Spectre.Console;

namespace GhostNet.Cli;

/// <summary>`ghostcuda models`: every registered model with its parameters and multiply-adds at the size and class count it was made for.</summary>
internal static class ModelsCommand
{
    public static Command Create()
    {
        var command = new Command("models", "List the registered models (--arch) with their parameters and multiply-adds.");
        command.SetAction(_ =>
        {
            var table = new Table().Border(TableBorder.Simple)
                .AddColumn(new TableColumn("arch").NoWrap()).AddColumn(new TableColumn("input").RightAligned()).AddColumn(new TableColumn("classes").RightAligned())
                .AddColumn(new TableColumn("params").RightAligned()).AddColumn(new TableColumn("MACs").RightAligned().NoWrap()).AddColumn("description");
            foreach (var m in ModelRegistry.All)
            {
                var config = ModelRegistry.Create(m.Name, new ModelOptions(m.NumClasses));
                var records = GhostNetModel.Describe(config, m.InputSize, m.InputSize);
                table.AddRow(Markup.Escape(m.Name), $"{m.InputSize}x{m.InputSize}", $"{m.NumClasses}",
                    $"{records.Sum(r => r.Parameters) / 1e6:F2} M", $"{records.Sum(r => r.MultiplyAdds) / 1e6:F1} M", Markup.Escape(m.Description));
            }
            AnsiConsole.Write(table);
            return 0;
        });
        return command;
    }
}

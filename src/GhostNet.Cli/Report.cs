using GhostNet.Training;
using Spectre.Console;

namespace GhostNet.Cli;

/// <summary>Evaluation results as people read them: totals, per-class accuracy and the most frequent confusions.</summary>
internal static class Report
{
    /// <summary>A model whose logits hold NaN or Inf is broken whatever its accuracy: the command fails.</summary>
    public static bool Broken(EvalResult r)
    {
        if (r.NonFinite == 0 && double.IsFinite(r.Loss)) return false;
        Console.Error.WriteLine($"error: {r.NonFinite:N0} of {r.Images:N0} images gave NaN or infinite logits (loss {r.Loss}): the model is broken");
        return true;
    }

    public static void Evaluation(EvalResult r, IReadOnlyList<string> classes, int skipped)
    {
        Console.WriteLine($"evaluated {r.Images:N0} images in {r.Seconds:F1} s: loss {r.Loss:F4}, top-1 {r.Top1:F2}%, top-5 {r.Top5:F2}%" +
                          (skipped > 0 ? $"; {skipped:N0} unreadable images left out" : ""));
        int k = classes.Count;
        var table = new Table().Border(TableBorder.Simple).AddColumn("class").AddColumn(new TableColumn("images").RightAligned())
            .AddColumn(new TableColumn("top-1").RightAligned()).AddColumn("most often mistaken for");
        var perClass = Enumerable.Range(0, k).Select(c =>
        {
            long total = Enumerable.Range(0, k + 1).Sum(p => r.Confusion[c, p]);
            int worst = Enumerable.Range(0, k).Where(p => p != c).OrderByDescending(p => r.Confusion[c, p]).FirstOrDefault();
            return (c, total, acc: total == 0 ? 0 : 100.0 * r.Confusion[c, c] / total, worst, wrong: k > 1 ? r.Confusion[c, worst] : 0);
        }).ToList();
        foreach (var (c, total, acc, worst, wrong) in perClass.OrderBy(x => x.acc).Take(Math.Min(k, 20)))
            table.AddRow(Markup.Escape(classes[c]), $"{total:N0}", $"{acc:F2}%", wrong > 0 ? $"{Markup.Escape(classes[worst])} ({wrong})" : "-");
        if (k > 20) table.Caption($"the 20 weakest of {k} classes");
        AnsiConsole.Write(table);
    }
}

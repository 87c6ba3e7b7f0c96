using GhostNet.IO;
using GhostNet.Training;
using ScottPlot;

namespace GhostNet.Cli;

/// <summary>loss.png and accuracy.png of a run, redrawn from its history after every epoch (each file replaced atomically).</summary>
internal static class Plots
{
    public const string LossFile = "loss.png", AccuracyFile = "accuracy.png";

    internal static readonly Lazy<bool> FontReady = new(() =>
    {
        string font = System.IO.Path.Combine(AppContext.BaseDirectory, "DejaVuSans.ttf");
        if (!File.Exists(font)) return false;
        Fonts.AddFontFile("DejaVu Sans", font);
        Fonts.Default = "DejaVu Sans";
        return true;
    });

    public static void Refresh(string outDir, IReadOnlyList<EpochRecord> rows)
    {
        if (rows.Count == 0) return;
        try
        {
            _ = FontReady.Value;
            double[] epochs = rows.Select(r => (double)r.Epoch).ToArray();
            Save(System.IO.Path.Combine(outDir, LossFile), "Loss (the training loss includes label smoothing)", "loss", epochs,
                ("train", rows.Select(r => r.TrainLoss).ToArray()), ("val", rows.Select(r => r.ValLoss).ToArray()));
            Save(System.IO.Path.Combine(outDir, AccuracyFile), "Accuracy", "top-1 / top-5 (%)", epochs,
                ("train top-1", rows.Select(r => r.TrainTop1).ToArray()), ("val top-1", rows.Select(r => r.ValTop1).ToArray()),
                ("val top-5", rows.Select(r => r.ValTop5).ToArray()));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Console.Error.WriteLine($"warning: plots not drawn ({e.Message})"); // a plot is never worth a failed run
        }
    }

    private static void Save(string path, string title, string yLabel, double[] epochs, params (string Name, double[] Values)[] series)
    {
        using var plot = new Plot();
        foreach (var (name, values) in series)
        {
            var line = plot.Add.Scatter(epochs, values);
            line.LegendText = name;
            line.MarkerSize = epochs.Length > 30 ? 0 : 5;
        }
        plot.Title(title);
        plot.XLabel("epoch");
        plot.YLabel(yLabel);
        plot.ShowLegend();
        using var image = plot.GetImage(800, 500);
        AtomicFile.WriteAllBytes(path, image.GetImageBytes(ImageFormat.Png));
    }
}

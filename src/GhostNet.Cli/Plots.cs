using ScottPlot;

namespace GhostNet.Cli;

/// <summary>loss.png and accuracy.png of a run, redrawn from log.csv after every epoch.</summary>
internal static class Plots
{
    private static readonly Lazy<bool> FontReady = new(() =>
    {
        string font = System.IO.Path.Combine(AppContext.BaseDirectory, "DejaVuSans.ttf");
        if (!File.Exists(font)) return false;
        Fonts.AddFontFile("DejaVu Sans", font);
        Fonts.Default = "DejaVu Sans";
        return true;
    });

    public static void Refresh(string outDir, RunLog log)
    {
        var rows = log.Rows();
        if (rows.Count == 0) return;
        try
        {
            _ = FontReady.Value;
            double[] epochs = rows.Select(r => r[0]).ToArray();
            Save(System.IO.Path.Combine(outDir, "loss.png"), "Loss (the training loss includes label smoothing)", "loss", epochs, ("train", rows.Select(r => r[2]).ToArray()), ("val", rows.Select(r => r[5]).ToArray()));
            Save(System.IO.Path.Combine(outDir, "accuracy.png"), "Accuracy", "top-1 / top-5 (%)", epochs,
                ("train top-1", rows.Select(r => r[3]).ToArray()), ("val top-1", rows.Select(r => r[6]).ToArray()), ("val top-5", rows.Select(r => r[7]).ToArray()));
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or IOException)
        {
            Console.Error.WriteLine($"warning: plots not drawn ({e.Message})"); // a plot is never worth a failed run
        }
    }

    private static void Save(string path, string title, string yLabel, double[] epochs, params (string Name, double[] Values)[] series)
    {
        var plot = new Plot();
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
        plot.SavePng(path, 800, 500);
    }
}

using System.Globalization;
using GhostNet.IO;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>
/// The per-epoch CSV log, rewritten whole (atomically) from the run's history after every epoch
/// and on resume, so that it always matches the checkpoint it was written with.
/// </summary>
internal static class RunLog
{
    public const string Header = "epoch,lr,train_loss,train_top1,train_top5,val_loss,val_top1,val_top5,seconds,img_per_s";

    public static void Write(string path, IReadOnlyList<EpochRecord> history)
    {
        var c = CultureInfo.InvariantCulture;
        var text = new System.Text.StringBuilder(Header + "\n");
        foreach (var r in history)
            text.AppendLine(string.Join(',', r.Epoch.ToString(c), r.Lr.ToString("G6", c), r.TrainLoss.ToString("F5", c), r.TrainTop1.ToString("F3", c),
                r.TrainTop5.ToString("F3", c), r.ValLoss.ToString("F5", c), r.ValTop1.ToString("F3", c), r.ValTop5.ToString("F3", c),
                r.Seconds.ToString("F1", c), r.ImagesPerSecond.ToString("F1", c)));
        AtomicFile.WriteAllText(path, text.ToString().ReplaceLineEndings("\n"));
    }

    /// <summary>The rows of an existing log (none if it is missing or not ours); a malformed row ends the reading.</summary>
    public static List<EpochRecord> Read(string path)
    {
        var rows = new List<EpochRecord>();
        if (!File.Exists(path)) return rows;
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0 || lines[0] != Header) return rows;
        var c = CultureInfo.InvariantCulture;
        foreach (var line in lines.Skip(1))
        {
            var f = line.Split(',');
            var v = new double[f.Length];
            if (f.Length != 10 || !f.Select((x, i) => double.TryParse(x, NumberStyles.Float, c, out v[i])).All(ok => ok)) break;
            rows.Add(new EpochRecord((int)v[0], (float)v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]));
        }
        return rows;
    }
}

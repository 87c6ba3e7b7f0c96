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
}

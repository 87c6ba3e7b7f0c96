using System.Globalization;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>The per-epoch CSV log (appended to on resume) and its rows for the plots.</summary>
internal sealed class RunLog(string path)
{
    public const string Header = "epoch,lr,train_loss,train_top1,train_top5,val_loss,val_top1,val_top5,seconds,img_per_s";

    public string Path { get; } = path;

    public void Append(int epoch, float lr, EpochStats train, EvalResult val)
    {
        if (!File.Exists(Path)) File.WriteAllText(Path, Header + "\n");
        var c = CultureInfo.InvariantCulture;
        File.AppendAllText(Path, string.Join(',',
            epoch.ToString(c), lr.ToString("G6", c), train.Loss.ToString("F5", c), train.Top1.ToString("F3", c), train.Top5.ToString("F3", c),
            val.Loss.ToString("F5", c), val.Top1.ToString("F3", c), val.Top5.ToString("F3", c), train.Seconds.ToString("F1", c),
            train.ImagesPerSecond.ToString("F1", c)) + "\n");
    }

    public List<double[]> Rows() =>
        File.Exists(Path)
            ? File.ReadAllLines(Path).Skip(1).Where(l => l.Length > 0).Select(l => l.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToList()
            : [];
}

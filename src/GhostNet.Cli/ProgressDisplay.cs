using GhostNet.Training;
using Spectre.Console;

namespace GhostNet.Cli;

/// <summary>
/// Training progress: on a terminal, one live line redrawn in place (loss, top-1/top-5, lr,
/// img/s, data-wait share, ETA); when output is redirected, a plain line every print-freq steps.
/// </summary>
internal sealed class ProgressDisplay(int printFreq) : IDisposable
{
    private readonly bool _live = !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Ansi;
    private bool _drawn;

    public void Step(StepReport r)
    {
        string text = $"epoch {r.Epoch} [{r.Batch,5}/{r.Batches}] loss {r.AverageLoss:F4} top-1 {r.Top1:F2}% top-5 {r.Top5:F2}% " +
                      $"lr {r.LearningRate:G4} {r.ImagesPerSecond:F0} img/s data-wait {100 * r.DataWaitShare:F0}% eta {r.EpochEta:hh\\:mm\\:ss}";
        if (_live)
        {
            Console.Write("\r" + text + "\u001b[K");
            _drawn = true;
        }
        else if (r.Batch % printFreq == 0 || r.Batch == r.Batches) Console.WriteLine(text);
    }

    /// <summary>A line of its own among the progress (the live line is redrawn after it).</summary>
    public void Note(string text)
    {
        Stop();
        Console.WriteLine(text);
    }

    /// <summary>Ends the live line so the next output starts on a fresh one.</summary>
    public void Stop()
    {
        if (!_drawn) return;
        Console.WriteLine();
        _drawn = false;
    }

    public void Dispose() => Stop();
}

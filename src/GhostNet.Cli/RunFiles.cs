using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>
/// The files of a run folder and the order they are written in. Each is replaced atomically, so
/// a crash at any moment leaves every file either as it was or complete; the checkpoint carries
/// the epoch history, so log.csv and the plots can always be rebuilt from it.
/// </summary>
internal sealed class RunFiles(string outDir, GhostNetModel model, CheckpointInfo info)
{
    private string? _lastSaved;

    public string Checkpoint { get; } = Path.Combine(outDir, "checkpoint.safetensors");
    public string Best { get; } = Path.Combine(outDir, "model_best.safetensors");
    public string Log { get; } = Path.Combine(outDir, "log.csv");

    /// <summary>A sentence naming the newest checkpoint that holds a finite model, for error messages.</summary>
    public string LastGood => _lastSaved ?? (File.Exists(Checkpoint) ? $"The last good checkpoint is {Checkpoint}." : "No checkpoint was written in this run.");

    public void Save(TrainingState state, IReadOnlyList<EpochRecord> history)
    {
        Write(Checkpoint, state, history);
        _lastSaved = $"The last good checkpoint is {Checkpoint} (epoch {state.Epoch}, batch {state.BatchInEpoch}).";
    }

    public void SaveBest(TrainingState state, IReadOnlyList<EpochRecord> history) => Write(Best, state, history);

    public void WriteLog(IReadOnlyList<EpochRecord> history)
    {
        RunLog.Write(Log, history);
        Plots.Refresh(outDir, history);
    }

    /// <summary>
    /// Fails before the first step when the folder's disk cannot take a checkpoint, model_best and
    /// the temporary copy of one of them being replaced: a full disk found after an epoch loses it.
    /// </summary>
    public void RequireDiskSpace()
    {
        long checkpoint = 4 * (2 * model.Parameters.ParameterCount + model.Parameters.Stats.Length) + (1 << 20);
        long needed = 3 * checkpoint;
        long free;
        try
        {
            free = new DriveInfo(Path.GetFullPath(outDir)).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return; // unknown: the atomic writes still protect the previous files
        }
        if (free < needed)
            throw new IOException($"{outDir} has {MemoryBudget.Format(free)} free, but a run needs {MemoryBudget.Format(needed)} for its checkpoints; free space or choose another --out");
    }

    private void Write(string path, TrainingState state, IReadOnlyList<EpochRecord> history)
    {
        try
        {
            Training.Checkpoint.Save(path, model, info with { State = state, History = [.. history] });
        }
        catch (IOException e)
        {
            throw new IOException($"cannot write {path} ({e.Message}); the previous {Path.GetFileName(path)}, if any, is intact", e);
        }
    }
}

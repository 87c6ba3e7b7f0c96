using GhostNet.IO;
using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>
/// The files of a run folder and the order they are written in. Each is replaced atomically, so
/// a crash at any moment leaves every file either as it was or complete; the checkpoint carries
/// the epoch history, so log.csv and the plots can always be rebuilt from it.
/// </summary>
internal sealed class RunFiles : IDisposable
{
    private const string LockName = ".ghostcuda.lock", ProbeName = ".ghostcuda-probe";

    /// <summary>The names of the files a run writes in its folder.</summary>
    private IEnumerable<string> Written => [Path.GetFileName(Checkpoint), Path.GetFileName(Best), Path.GetFileName(Log), Plots.LossFile, Plots.AccuracyFile];
    private const int SharingViolation = unchecked((int)0x80070020); // what .NET reports for a held flock
    private readonly string outDir;
    private readonly GhostNetModel model;
    private readonly CheckpointInfo info;
    private readonly FileStream _lock;
    private string? _lastSaved;

    private RunFiles(string outDir, GhostNetModel model, CheckpointInfo info, FileStream runLock)
    {
        this.outDir = outDir;
        this.model = model;
        this.info = info;
        _lock = runLock;
        Checkpoint = Path.Combine(outDir, "checkpoint.safetensors");
        Best = Path.Combine(outDir, "model_best.safetensors");
        Log = Path.Combine(outDir, "log.csv");
    }

    /// <summary>
    /// A fresh run (not resuming from this folder) must not replace another run's results: the
    /// folder's checkpoint and model_best are the only copies of that run.
    /// </summary>
    public static void RefuseOverwrite(string outDir, string? resume)
    {
        string checkpoint = Path.Combine(outDir, "checkpoint.safetensors");
        if (!File.Exists(checkpoint) && !File.Exists(Path.Combine(outDir, "model_best.safetensors"))) return;
        // Only the folder's own checkpoint continues its run; resuming its model_best (or a copy) would replace the later checkpoint.
        bool resumesHere = resume is not null && string.Equals(Path.GetFullPath(resume), Path.GetFullPath(checkpoint), StringComparison.Ordinal);
        if (!resumesHere)
            throw new ArgumentException($"--out {outDir} already holds a run; continue it with --resume {checkpoint}, or choose another --out (or remove the folder)");
    }

    /// <summary>The lock file is never deleted (a run that deletes it could let two others lock two different files); it alone is an empty folder.</summary>
    public static bool IsLockFile(string path) => Path.GetFileName(path) == LockName;

    /// <summary>
    /// Takes the run folder before the first step: creates it, locks it against a second run,
    /// removes the partial files of killed runs, and proves it writable and roomy enough, so that
    /// none of these is found after an epoch of training.
    /// </summary>
    public static RunFiles Open(string outDir, GhostNetModel model, CheckpointInfo info, string? resume)
    {
        try
        {
            Directory.CreateDirectory(outDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"--out {outDir}: the folder cannot be created ({e.Message})", e);
        }
        FileStream runLock;
        try
        {
            // FileShare.None is an exclusive advisory lock on Linux: it ends with the process, even after kill -9.
            runLock = new FileStream(Path.Combine(outDir, LockName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"--out {outDir} is not writable ({e.Message})", e);
        }
        catch (IOException e) when (e.HResult == SharingViolation || e.Message.Contains("being used by another process", StringComparison.Ordinal))
        {
            throw new IOException($"--out {outDir} is in use by another ghostcuda run", e);
        }
        catch (IOException e)
        {
            throw new IOException($"--out {outDir} cannot be written ({e.Message})", e);
        }
        var files = new RunFiles(outDir, model, info, runLock);
        try
        {
            RefuseOverwrite(outDir, resume); // again, under the lock: another run may have finished here since the first look
            foreach (var stale in AtomicFile.RemoveStale(outDir, [.. files.Written, ProbeName])) Console.Error.WriteLine($"note: removed {Path.Combine(outDir, stale)}, a partial file of a run that was killed");
            files.RequireWritable();
            files.RequireDiskSpace();
        }
        catch
        {
            files.Dispose();
            throw;
        }
        return files;
    }

    public string Checkpoint { get; }
    public string Best { get; }
    public string Log { get; }

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

    /// <summary>Every file the run will replace can be written: none is a folder, and the folder takes new files.</summary>
    private void RequireWritable()
    {
        foreach (string path in Written.Select(name => Path.Combine(outDir, name)))
            if (Directory.Exists(path)) throw new IOException($"--out {outDir}: {Path.GetFileName(path)} is a folder; the run cannot write it");
        string probe = Path.Combine(outDir, ProbeName);
        try
        {
            AtomicFile.WriteAllText(probe, "ghostcuda checks that the run folder is writable\n");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"--out {outDir} is not writable ({e.Message})", e);
        }
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

    /// <summary>Releases the lock; the file stays (see <see cref="IsLockFile"/>): it locks nothing while no run holds it open.</summary>
    public void Dispose() => _lock.Dispose();
}

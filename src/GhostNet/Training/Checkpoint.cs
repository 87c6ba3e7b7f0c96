using System.Text.Json;
using GhostNet.Graph;
using GhostNet.Models;

namespace GhostNet.Training;

/// <summary>What a checkpoint says about its run besides the tensors.</summary>
public sealed record CheckpointInfo(
    string Arch, float Width, int NumClasses, float DropRate, int InputSize, string Dataset, string Normalization,
    IReadOnlyList<string> Classes, TrainingState State, IReadOnlyDictionary<string, string> Options)
{
    public GhostNetConfig Config => new(Width, NumClasses, DropRate);

    /// <summary>Every finished epoch of the run so far, oldest first (the source of log.csv).</summary>
    public IReadOnlyList<EpochRecord> History { get; init; } = [];
}

/// <summary>
/// A checkpoint is one safetensors file: the model's state dict under timm's names (so PyTorch
/// loads it as is), the SGD momentum buffers as optimizer.momentum_buffer.&lt;name&gt;, and the
/// run's <see cref="CheckpointInfo"/> as JSON in the header's __metadata__. Written to a temporary
/// file, flushed and renamed: a crash leaves the previous checkpoint intact.
/// </summary>
public static class Checkpoint
{
    public const string MomentumPrefix = "optimizer.momentum_buffer.";
    private const string InfoKey = "ghostnet.checkpoint";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public static void Save(string path, GhostNetModel model, CheckpointInfo info)
    {
        var tensors = StateDict.Read(model.Parameters, model.Backend);
        foreach (var p in model.Parameters.Parameters)
        {
            var values = new float[p.Count];
            model.Backend.Download(p.Momentum, values);
            tensors.Add(SafetensorsTensor.Floats(MomentumPrefix + p.Name, p.Shape.Select(d => (long)d).ToArray(), values));
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        Safetensors.Write(path, tensors, new Dictionary<string, string> { [InfoKey] = JsonSerializer.Serialize(info, Json) });
    }

    /// <summary>Reads a checkpoint; a truncated or foreign file is an <see cref="InvalidDataException"/> that says so.</summary>
    public static (CheckpointInfo Info, List<SafetensorsTensor> Tensors) Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint {path} does not exist", path);
        var (tensors, metadata) = Safetensors.Read(path);
        if (!metadata.TryGetValue(InfoKey, out var json))
            throw new InvalidDataException($"{path} is a safetensors file without ghostcuda's run information (a plain state dict?); use --pretrained for weights only");
        var info = JsonSerializer.Deserialize<CheckpointInfo>(json, Json) ?? throw new InvalidDataException($"{path}: empty run information");
        return (info, tensors);
    }

    /// <summary>Loads the model state (and the momentum buffers when <paramref name="withOptimizer"/>), strictly by name and shape.</summary>
    public static void Apply(GhostNetModel model, IReadOnlyList<SafetensorsTensor> tensors, bool withOptimizer)
    {
        StateDict.Write(model.Parameters, model.Backend, tensors.Where(t => !t.Name.StartsWith(MomentumPrefix)));
        if (!withOptimizer) return;
        var momentum = tensors.Where(t => t.Name.StartsWith(MomentumPrefix)).ToDictionary(t => t.Name[MomentumPrefix.Length..]);
        foreach (var p in model.Parameters.Parameters)
        {
            if (!momentum.TryGetValue(p.Name, out var t)) throw new InvalidDataException($"the checkpoint has no momentum buffer for {p.Name}");
            model.Backend.Upload(t.AsFloats(), p.Momentum);
        }
    }

    /// <summary>
    /// Fine-tuning: loads every tensor whose name and shape match, skipping the classifier when the
    /// class count differs (a new head, freshly initialised). Returns the names skipped.
    /// </summary>
    public static List<string> ApplyPretrained(GhostNetModel model, IReadOnlyList<SafetensorsTensor> tensors)
    {
        var skipped = new List<string>();
        var usable = new List<SafetensorsTensor>();
        foreach (var t in tensors.Where(t => !t.Name.StartsWith(MomentumPrefix)))
        {
            if (model.Parameters.Contains(t.Name) && model.Parameters[t.Name].Shape.Select(d => (long)d).SequenceEqual(t.Shape)) usable.Add(t);
            else skipped.Add(t.Name);
        }
        var missing = model.Parameters.Entries.Select(e => e.Name).Except(usable.Select(t => t.Name)).ToList();
        if (missing.Any(n => !n.StartsWith("classifier.")))
            throw new InvalidDataException($"the pretrained weights do not fit this architecture: missing or mismatched {string.Join(", ", missing.Take(5))}");
        StateDict.Write(model.Parameters, model.Backend, usable, strict: false);
        return skipped;
    }
}

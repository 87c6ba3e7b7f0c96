using GhostNet.Graph;
using GhostNet.Models;

namespace GhostNet.Training;

/// <summary>
/// A checkpoint is one safetensors file: the model's state dict under timm's names (so PyTorch
/// loads it as is), the SGD momentum buffers as optimizer.momentum_buffer.&lt;name&gt;, and the
/// run's <see cref="CheckpointInfo"/> as JSON in the header's __metadata__. Written to a temporary
/// file, flushed and renamed: a crash leaves the previous checkpoint intact. Loading checks every
/// tensor before it uploads any, so a file that does not fit never leaves a model half-loaded.
/// </summary>
public static class Checkpoint
{
    public const string MomentumPrefix = "optimizer.momentum_buffer.";
    private const string InfoKey = "ghostnet.checkpoint";

    public static void Save(string path, GhostNetModel model, CheckpointInfo info)
    {
        string json = info.ToJson(); // refuses run information that could not be read back, before anything is written
        var tensors = StateDict.Read(model.Parameters, model.Backend);
        foreach (var p in model.Parameters.Parameters)
        {
            var values = new float[p.Count];
            model.Backend.Download(p.Momentum, values);
            tensors.Add(SafetensorsTensor.Floats(MomentumPrefix + p.Name, p.Shape.Select(d => (long)d).ToArray(), values));
        }
        Safetensors.Write(path, tensors, new Dictionary<string, string> { [InfoKey] = json });
    }

    /// <summary>Reads a checkpoint; a truncated, foreign or malformed file is an <see cref="InvalidDataException"/> that names it and says why.</summary>
    public static (CheckpointInfo Info, List<SafetensorsTensor> Tensors) Read(string path)
    {
        if (Directory.Exists(path)) throw new InvalidDataException($"{path} is a directory, not a checkpoint file");
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint {path} does not exist", path);
        var (tensors, metadata) = Safetensors.Read(path);
        if (!metadata.TryGetValue(InfoKey, out var json))
            throw new InvalidDataException($"{path} is a safetensors file without ghostcuda's run information (a plain state dict?); use --pretrained for weights only");
        return (CheckpointInfo.FromJson(json, path), tensors);
    }

    /// <summary>The names of the floating-point tensors that hold a NaN or an infinity, in the given order.</summary>
    public static List<string> NonFiniteTensors(IEnumerable<SafetensorsTensor> tensors) =>
        tensors.Where(t => t.HoldsNonFinite()).Select(t => t.Name).ToList();

    /// <summary>
    /// Loads the model state (and the momentum buffers when <paramref name="withOptimizer"/>),
    /// strictly by name, shape and dtype; nothing is uploaded unless everything fits.
    /// <paramref name="source"/> (the file) is named in the errors.
    /// </summary>
    public static void Apply(GhostNetModel model, IReadOnlyList<SafetensorsTensor> tensors, bool withOptimizer, string? source = null)
    {
        var state = tensors.Where(t => !t.Name.StartsWith(MomentumPrefix, StringComparison.Ordinal)).ToList();
        var momentum = new List<(Parameter, SafetensorsTensor)>();
        if (withOptimizer)
        {
            var byName = StateDict.ByName(tensors.Where(t => t.Name.StartsWith(MomentumPrefix, StringComparison.Ordinal)), source);
            string? unexpected = byName.Keys.FirstOrDefault(n => !model.Parameters.Contains(n[MomentumPrefix.Length..]) || model.Parameters[n[MomentumPrefix.Length..]] is not Parameter);
            if (unexpected is not null) throw StateDict.Bad(source, $"momentum buffer '{unexpected}' belongs to no parameter of the model");
            foreach (var p in model.Parameters.Parameters)
            {
                if (!byName.TryGetValue(MomentumPrefix + p.Name, out var t)) throw StateDict.Bad(source, $"the checkpoint has no momentum buffer for {p.Name}");
                StateDict.Check(p, t, source);
                momentum.Add((p, t));
            }
        }
        StateDict.Write(model.Parameters, model.Backend, state, strict: true, source);
        foreach (var (p, t) in momentum) model.Backend.Upload(t.AsFloats(), p.Momentum);
    }

    /// <summary>
    /// Fine-tuning: loads every tensor whose name and shape match, skipping the classifier (the
    /// model's <see cref="IModelConfig.Head"/>) when the class count differs (a new head, freshly
    /// initialised). Returns the names skipped.
    /// </summary>
    public static List<string> ApplyPretrained(GhostNetModel model, IReadOnlyList<SafetensorsTensor> tensors, string? source = null)
    {
        var skipped = new List<string>();
        var usable = new List<SafetensorsTensor>();
        foreach (var t in tensors.Where(t => !t.Name.StartsWith(MomentumPrefix, StringComparison.Ordinal)))
        {
            if (model.Parameters.Contains(t.Name) && model.Parameters[t.Name].Shape.Select(d => (long)d).SequenceEqual(t.Shape)) usable.Add(t);
            else skipped.Add(t.Name);
        }
        var missing = model.Parameters.Entries.Select(e => e.Name).Except(usable.Select(t => t.Name)).ToList();
        if (missing.Any(n => !n.StartsWith(model.Config.Head, StringComparison.Ordinal)))
            throw StateDict.Bad(source, $"the pretrained weights do not fit this architecture: missing or mismatched {string.Join(", ", missing.Take(5))}");
        StateDict.Write(model.Parameters, model.Backend, usable, strict: false, source);
        return skipped;
    }
}

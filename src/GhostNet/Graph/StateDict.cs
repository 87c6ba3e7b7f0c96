using GhostNet.Backends;

namespace GhostNet.Graph;

/// <summary>
/// A model's state dict on the host: every entry of a <see cref="ParameterSet"/> by timm name,
/// parameters and running statistics as F32, num_batches_tracked as an I64 scalar, exactly what
/// <c>model.state_dict()</c> holds in PyTorch. Loads and saves safetensors files.
/// </summary>
public static class StateDict
{
    public static List<SafetensorsTensor> Read(ParameterSet set, IBackend backend)
    {
        var tensors = new List<SafetensorsTensor>(set.Entries.Count);
        foreach (var entry in set.Entries)
        {
            long[] shape = entry.Shape.Select(d => (long)d).ToArray();
            switch (entry)
            {
                case Counter c:
                    tensors.Add(SafetensorsTensor.Int64Scalar(c.Name, c.Value));
                    break;
                default:
                    var values = new float[entry.Count];
                    backend.Download(ValueOf(entry), values);
                    tensors.Add(SafetensorsTensor.Floats(entry.Name, shape, values));
                    break;
            }
        }
        return tensors;
    }

    /// <summary>
    /// Writes the given tensors into the set. With <paramref name="strict"/>, every entry must be
    /// given and nothing else; shapes must always match.
    /// </summary>
    public static void Write(ParameterSet set, IBackend backend, IEnumerable<SafetensorsTensor> tensors, bool strict = true)
    {
        var byName = tensors.ToDictionary(t => t.Name);
        if (strict)
        {
            var missing = set.Entries.Select(e => e.Name).Where(n => !byName.ContainsKey(n)).ToList();
            var unexpected = byName.Keys.Where(n => !set.Contains(n)).ToList();
            if (missing.Count > 0 || unexpected.Count > 0)
                throw new InvalidDataException($"state dict does not match the model: missing {Describe(missing)}; unexpected {Describe(unexpected)}");
        }
        foreach (var entry in set.Entries)
        {
            if (!byName.TryGetValue(entry.Name, out var t)) continue;
            if (!t.Shape.SequenceEqual(entry.Shape.Select(d => (long)d)))
                throw new InvalidDataException($"'{entry.Name}': file has shape {SafetensorsTensor.Format(t.Shape)}, the model {entry}");
            if (entry is Counter c) c.Value = t.AsInt64Scalar();
            else backend.Upload(t.AsFloats(), ValueOf(entry));
        }
    }

    public static void Save(ParameterSet set, IBackend backend, string path, IReadOnlyDictionary<string, string>? metadata = null) =>
        Safetensors.Write(path, Read(set, backend), metadata);

    public static Dictionary<string, string> Load(ParameterSet set, IBackend backend, string path, bool strict = true)
    {
        var (tensors, metadata) = Safetensors.Read(path);
        Write(set, backend, tensors, strict);
        return metadata;
    }

    private static Tensor ValueOf(StateEntry entry) => entry switch
    {
        Parameter p => p.Value,
        StatBuffer s => s.Value,
        _ => throw new ArgumentException($"'{entry.Name}' has no tensor value"),
    };

    private static string Describe(List<string> names) =>
        names.Count == 0 ? "none" : string.Join(", ", names.Take(5)) + (names.Count > 5 ? $" and {names.Count - 5} more" : "");
}

using GhostNet.Backends;

namespace GhostNet.Graph;

/// <summary>
/// A model's state dict on the host: every entry of a <see cref="ParameterSet"/> by timm name,
/// parameters and running statistics as F32, num_batches_tracked as an I64 scalar, exactly what
/// <c>model.state_dict()</c> holds in PyTorch. Loads and saves safetensors files. Loading checks
/// every tensor first and uploads only when all fit, so a bad file never half-loads a model.
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
    /// given and nothing else; names may not repeat, and shapes and dtypes must always match.
    /// Nothing is written unless every tensor passes. <paramref name="source"/> (a file) is named in the errors.
    /// </summary>
    public static void Write(ParameterSet set, IBackend backend, IEnumerable<SafetensorsTensor> tensors, bool strict = true, string? source = null)
    {
        var byName = ByName(tensors, source);
        if (strict)
        {
            var missing = set.Entries.Select(e => e.Name).Where(n => !byName.ContainsKey(n)).ToList();
            var unexpected = byName.Keys.Where(n => !set.Contains(n)).ToList();
            if (missing.Count > 0 || unexpected.Count > 0)
                throw Bad(source, $"state dict does not match the model: missing {Describe(missing)}; unexpected {Describe(unexpected)}");
        }
        var checkedPairs = new List<(StateEntry Entry, SafetensorsTensor Tensor)>();
        foreach (var entry in set.Entries)
        {
            if (!byName.TryGetValue(entry.Name, out var t)) continue;
            Check(entry, t, source);
            checkedPairs.Add((entry, t));
        }
        foreach (var (entry, t) in checkedPairs)
        {
            if (entry is Counter c) c.Value = t.AsInt64Scalar();
            else backend.Upload(t.AsFloats(), ValueOf(entry));
        }
    }

    public static void Save(ParameterSet set, IBackend backend, string path, IReadOnlyDictionary<string, string>? metadata = null) =>
        Safetensors.Write(path, Read(set, backend), metadata);

    public static Dictionary<string, string> Load(ParameterSet set, IBackend backend, string path, bool strict = true)
    {
        var (tensors, metadata) = Safetensors.Read(path);
        Write(set, backend, tensors, strict, path);
        return metadata;
    }

    /// <summary>
    /// The name of the first parameter or running statistic, in state-dict order, that holds a NaN
    /// or an infinity; null when all are finite. Downloads each arena once (one copy per call).
    /// </summary>
    public static string? FirstNonFinite(ParameterSet set, IBackend backend)
    {
        var values = Download(set.Values, backend);
        var stats = Download(set.Stats, backend);
        foreach (var entry in set.Entries)
        {
            var span = entry switch
            {
                Parameter p => values.AsSpan((int)p.Offset, (int)p.Count),
                StatBuffer s => stats.AsSpan((int)s.Offset, (int)s.Count),
                _ => default,
            };
            if (NonFinite.Any(span)) return entry.Name;
        }
        return null;
    }

    /// <summary>Checks that <paramref name="t"/> can be loaded into <paramref name="entry"/>: shape, dtype and byte count.</summary>
    internal static void Check(StateEntry entry, SafetensorsTensor t, string? source)
    {
        if (!t.Shape.SequenceEqual(entry.Shape.Select(d => (long)d)))
            throw Bad(source, $"'{t.Name}' has shape {SafetensorsTensor.Format(t.Shape)}, the model [{string.Join(", ", entry.Shape)}]");
        string dtype = entry is Counter ? "I64" : "F32";
        if (t.DType != dtype) throw Bad(source, $"'{t.Name}' is {t.DType}, the model needs {dtype}");
        if (t.Data.Length != entry.Count * (dtype == "I64" ? sizeof(long) : sizeof(float)))
            throw Bad(source, $"'{t.Name}' has {t.Data.Length} bytes, {t.DType}{SafetensorsTensor.Format(t.Shape)} needs {entry.Count * (dtype == "I64" ? 8 : 4)}");
    }

    internal static Dictionary<string, SafetensorsTensor> ByName(IEnumerable<SafetensorsTensor> tensors, string? source)
    {
        var byName = new Dictionary<string, SafetensorsTensor>(StringComparer.Ordinal);
        foreach (var t in tensors)
            if (!byName.TryAdd(t.Name, t)) throw Bad(source, $"'{t.Name}' is given twice");
        return byName;
    }

    internal static InvalidDataException Bad(string? source, string what) => new(source is null ? what : $"{source}: {what}");

    private static float[] Download(Storage storage, IBackend backend)
    {
        var values = new float[storage.Length];
        if (storage.Length > 0) backend.Download(new Tensor(storage, 0, 1, 1, 1, checked((int)storage.Length)), values);
        return values;
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

using System.Text;
using System.Text.Json;

namespace GhostNet.Graph;

/// <summary>Where one tensor lives in the data region, as the header says.</summary>
internal readonly record struct SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>
/// Reads and checks a safetensors header. Every value is checked for its JSON type before it is
/// used (a number where a string belongs, a float or a string in a shape, an overflowing
/// product), names may not repeat, and, as in Hugging Face's reader, the tensors must tile the
/// data region exactly: no overlaps, no holes, nothing after the last one. So every header that
/// passes describes at most the bytes the file holds, and every fault is an
/// <see cref="InvalidDataException"/> that starts with the file's path.
/// </summary>
internal static class SafetensorsHeader
{
    public const string MetadataKey = "__metadata__";
    private const int MaxDepth = 16; // the format nests three deep; more is not a safetensors header
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static readonly IReadOnlyDictionary<string, int> ElementSizes = new Dictionary<string, int>
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1,
        ["U64"] = 8, ["U32"] = 4, ["U16"] = 2, ["U8"] = 1, ["BOOL"] = 1,
    };

    public static (List<SafetensorsEntry> Entries, Dictionary<string, string> Metadata) Parse(byte[] json, long dataLength, string path)
    {
        string text;
        try
        {
            text = StrictUtf8.GetString(json);
        }
        catch (DecoderFallbackException)
        {
            throw Bad(path, "the header is not UTF-8 text");
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = MaxDepth });
        }
        catch (JsonException e)
        {
            throw Bad(path, $"the header is not valid JSON ({e.Message})");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Bad(path, $"the header is a JSON {Kind(root)}, not an object");
            var entries = new List<SafetensorsEntry>();
            var metadata = new Dictionary<string, string>();
            foreach (var property in Properties(root, "the header", path))
            {
                if (property.Name == MetadataKey) ReadMetadata(property.Value, metadata, path);
                else entries.Add(ReadEntry(property.Name, property.Value, dataLength, path));
            }
            CheckTiling(entries, dataLength, path);
            return (entries, metadata);
        }
    }

    private static void ReadMetadata(JsonElement node, Dictionary<string, string> metadata, string path)
    {
        if (node.ValueKind != JsonValueKind.Object) throw Bad(path, $"{MetadataKey} is a JSON {Kind(node)}, not an object of strings");
        foreach (var p in Properties(node, MetadataKey, path))
        {
            if (p.Value.ValueKind != JsonValueKind.String) throw Bad(path, $"{MetadataKey} '{Clip(p.Name)}' is a JSON {Kind(p.Value)}, not a string");
            metadata[p.Name] = p.Value.GetString()!;
        }
    }

    private static SafetensorsEntry ReadEntry(string name, JsonElement node, long dataLength, string path)
    {
        string what = $"'{Clip(name)}'";
        if (node.ValueKind != JsonValueKind.Object) throw Bad(path, $"{what} is a JSON {Kind(node)}, not an object with dtype, shape and data_offsets");
        var fields = Properties(node, what, path).ToDictionary(p => p.Name, p => p.Value);

        if (!fields.TryGetValue("dtype", out var d)) throw Bad(path, $"{what} has no dtype");
        if (d.ValueKind != JsonValueKind.String) throw Bad(path, $"{what}: dtype is a JSON {Kind(d)}, not a string such as \"F32\"");
        string dtype = d.GetString()!;
        if (!ElementSizes.TryGetValue(dtype, out int size))
            throw Bad(path, $"{what} has unknown dtype \"{Clip(dtype)}\" (known: {string.Join(", ", ElementSizes.Keys)})");

        long[] shape = Integers(fields, "shape", what, path, length: null);
        long[] offsets = Integers(fields, "data_offsets", what, path, length: 2);
        long bytes;
        try
        {
            bytes = checked(shape.Aggregate(1L, (a, n) => checked(a * n)) * size);
        }
        catch (OverflowException)
        {
            throw Bad(path, $"{what}: shape {SafetensorsTensor.Format(shape)} of {dtype} holds more bytes than a 64-bit count");
        }
        var (begin, end) = (offsets[0], offsets[1]);
        if (end < begin || end - begin != bytes)
            throw Bad(path, $"{what}: {dtype}{SafetensorsTensor.Format(shape)} needs {bytes} bytes, but data_offsets say {begin}..{end}");
        if (end > dataLength) throw Bad(path, $"{what} ends at byte {end} of the data, but the file holds only {dataLength} (truncated?)");
        if (bytes > Array.MaxLength) throw Bad(path, $"{what} has {bytes} bytes, more than one array can hold");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    /// <summary>A field that must be an array of non-negative integers (of the given length).</summary>
    private static long[] Integers(Dictionary<string, JsonElement> fields, string field, string what, string path, int? length)
    {
        if (!fields.TryGetValue(field, out var node)) throw Bad(path, $"{what} has no {field}");
        if (node.ValueKind != JsonValueKind.Array) throw Bad(path, $"{what}: {field} is a JSON {Kind(node)}, not an array of integers");
        int count = node.GetArrayLength();
        if (length is { } n && count != n) throw Bad(path, $"{what}: {field} has {count} values, not {n}");
        var values = new long[count];
        int i = 0;
        foreach (var item in node.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number) throw Bad(path, $"{what}: {field}[{i}] is a JSON {Kind(item)}, not an integer");
            if (!item.TryGetInt64(out long v)) throw Bad(path, $"{what}: {field}[{i}] = {Clip(item.GetRawText())} is not a 64-bit integer");
            if (v < 0) throw Bad(path, $"{what}: {field}[{i}] = {v} is negative");
            values[i++] = v;
        }
        return values;
    }

    /// <summary>The tensors sorted by offset must follow one another from byte 0 to the end of the data.</summary>
    private static void CheckTiling(List<SafetensorsEntry> entries, long dataLength, string path)
    {
        long at = 0;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin < at) throw Bad(path, $"'{Clip(e.Name)}' (data bytes {e.Begin}..{e.End}) overlaps the tensor before it, which ends at {at}");
            if (e.Begin > at) throw Bad(path, $"data bytes {at}..{e.Begin} belong to no tensor (a hole before '{Clip(e.Name)}')");
            at = e.End;
        }
        if (at != dataLength) throw Bad(path, $"data bytes {at}..{dataLength} belong to no tensor (a hole after the last one)");
    }

    private static IEnumerable<JsonProperty> Properties(JsonElement obj, string what, string path)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in obj.EnumerateObject())
        {
            if (!seen.Add(p.Name)) throw Bad(path, $"{what} names '{Clip(p.Name)}' twice");
            yield return p;
        }
    }

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.True or JsonValueKind.False => "boolean",
        var k => k.ToString().ToLowerInvariant(),
    };

    /// <summary>Names and values from a hostile file are shortened before they go into a message.</summary>
    private static string Clip(string s) => s.Length <= 80 ? s : s[..77] + "...";

    private static InvalidDataException Bad(string path, string what) => new($"{path}: {what}");
}

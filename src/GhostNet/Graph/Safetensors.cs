using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace GhostNet.Graph;

/// <summary>One tensor of a safetensors file: its dtype (F32, I64, ...), shape and raw little-endian bytes.</summary>
public sealed record SafetensorsTensor(string Name, string DType, long[] Shape, byte[] Data)
{
    public long ElementCount => Shape.Aggregate(1L, (a, d) => a * d);

    public float[] AsFloats()
    {
        if (DType != "F32") throw new InvalidDataException($"tensor '{Name}' is {DType}, expected F32");
        var values = new float[ElementCount];
        Buffer.BlockCopy(Data, 0, values, 0, Data.Length);
        return values;
    }

    public long AsInt64Scalar()
    {
        if (DType != "I64" || ElementCount != 1) throw new InvalidDataException($"tensor '{Name}' is {DType}{Format(Shape)}, expected an I64 scalar");
        return BinaryPrimitives.ReadInt64LittleEndian(Data);
    }

    public static SafetensorsTensor Floats(string name, long[] shape, ReadOnlySpan<float> values)
    {
        var data = new byte[values.Length * sizeof(float)];
        values.CopyTo(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(data.AsSpan()));
        return new SafetensorsTensor(name, "F32", shape, data);
    }

    public static SafetensorsTensor Int64Scalar(string name, long value)
    {
        var data = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(data, value);
        return new SafetensorsTensor(name, "I64", [], data);
    }

    internal static string Format(long[] shape) => "[" + string.Join(", ", shape) + "]";
}

/// <summary>
/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// mapping each name to {dtype, shape, data_offsets} (plus string pairs under "__metadata__"),
/// then the tensors' bytes. Files are written to a temporary name, flushed and renamed, so a
/// crash never leaves a half-written file under the real name. Reading checks every offset and
/// size against the file before trusting it.
/// </summary>
public static class Safetensors
{
    private const long MaxHeaderBytes = 100 << 20;

    private static readonly Dictionary<string, int> ElementSizes = new()
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1,
    };

    public static void Write(string path, IEnumerable<SafetensorsTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        foreach (var t in list)
        {
            if (!ElementSizes.TryGetValue(t.DType, out int size)) throw new ArgumentException($"unknown dtype {t.DType} for '{t.Name}'");
            if (t.ElementCount * size != t.Data.Length)
                throw new ArgumentException($"'{t.Name}': {t.Data.Length} bytes do not hold {t.DType}{SafetensorsTensor.Format(t.Shape)}");
            if (header.ContainsKey(t.Name)) throw new ArgumentException($"duplicate tensor name '{t.Name}'");
            header[t.Name] = new JsonObject
            {
                ["dtype"] = t.DType,
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + t.Data.Length),
            };
            offset += t.Data.Length;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8; // the format allows trailing spaces; 8 keeps the data aligned
        IO.AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
            stream.Write(length);
            stream.Write(json);
            for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
            foreach (var t in list) stream.Write(t.Data);
        });
    }

    public static (List<SafetensorsTensor> Tensors, Dictionary<string, string> Metadata) Read(string path)
    {
        using var stream = File.OpenRead(path);
        long fileLength = stream.Length;
        if (fileLength < 8) throw new InvalidDataException($"{path}: {fileLength} bytes is too short for a safetensors file");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > MaxHeaderBytes || (long)headerLength > fileLength - 8)
            throw new InvalidDataException($"{path}: header length {headerLength} does not fit a file of {fileLength} bytes (truncated or not safetensors)");
        var json = new byte[headerLength];
        stream.ReadExactly(json);
        JsonObject header;
        try
        {
            header = JsonNode.Parse(json)?.AsObject() ?? throw new InvalidDataException($"{path}: empty header");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: header is not valid JSON ({e.Message})", e);
        }
        long dataStart = 8 + (long)headerLength, dataLength = fileLength - dataStart;
        var metadata = new Dictionary<string, string>();
        var entries = new List<(string Name, string DType, long[] Shape, long Begin, long End)>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                foreach (var (k, v) in node!.AsObject()) metadata[k] = v?.GetValue<string>() ?? "";
                continue;
            }
            var o = node?.AsObject() ?? throw new InvalidDataException($"{path}: entry '{name}' is not an object");
            string dtype = o["dtype"]?.GetValue<string>() ?? throw new InvalidDataException($"{path}: '{name}' has no dtype");
            if (!ElementSizes.TryGetValue(dtype, out int size)) throw new InvalidDataException($"{path}: '{name}' has unknown dtype {dtype}");
            long[] shape = o["shape"]?.AsArray().Select(d => d!.GetValue<long>()).ToArray() ?? throw new InvalidDataException($"{path}: '{name}' has no shape");
            var offsets = o["data_offsets"]?.AsArray().Select(d => d!.GetValue<long>()).ToArray();
            if (offsets is not { Length: 2 }) throw new InvalidDataException($"{path}: '{name}' has no data_offsets pair");
            if (shape.Any(d => d < 0)) throw new InvalidDataException($"{path}: '{name}' has a negative dimension");
            long expected = shape.Aggregate(1L, (a, d) => checked(a * d)) * size;
            if (offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] - offsets[0] != expected)
                throw new InvalidDataException($"{path}: '{name}' {dtype}{SafetensorsTensor.Format(shape)} needs {expected} bytes, offsets say {offsets[0]}..{offsets[1]}");
            if (offsets[1] > dataLength)
                throw new InvalidDataException($"{path}: '{name}' ends at byte {offsets[1]} of the data, but the file holds only {dataLength} (truncated?)");
            entries.Add((name, dtype, shape, offsets[0], offsets[1]));
        }
        var tensors = new List<SafetensorsTensor>(entries.Count);
        foreach (var e in entries.OrderBy(e => e.Begin))
        {
            var data = new byte[e.End - e.Begin];
            stream.Position = dataStart + e.Begin;
            stream.ReadExactly(data);
            tensors.Add(new SafetensorsTensor(e.Name, e.DType, e.Shape, data));
        }
        return (tensors, metadata);
    }
}

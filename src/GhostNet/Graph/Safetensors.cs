using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace GhostNet.Graph;

/// <summary>
/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// mapping each name to {dtype, shape, data_offsets} (plus string pairs under "__metadata__"),
/// then the tensors' bytes. Files are written through <see cref="IO.AtomicFile"/>, so a crash
/// never leaves a half-written file under the real name. Reading trusts nothing: the header is
/// checked whole (<see cref="SafetensorsHeader"/>) against the file's length before a byte of
/// tensor data is allocated, and any fault is an <see cref="InvalidDataException"/> naming the file.
/// </summary>
public static class Safetensors
{
    private const long MaxHeaderBytes = 100 << 20; // Hugging Face's limit
    private const int MinHeaderBytes = 2; // "{}"

    public static void Write(string path, IEnumerable<SafetensorsTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header[SafetensorsHeader.MetadataKey] = meta;
        }
        long offset = 0;
        foreach (var t in list)
        {
            // Refuse here what Read would refuse, so that every file written can be read back.
            if (t.Name == SafetensorsHeader.MetadataKey) throw new ArgumentException($"a tensor cannot be named {SafetensorsHeader.MetadataKey}");
            if (!SafetensorsHeader.ElementSizes.TryGetValue(t.DType, out int size)) throw new ArgumentException($"unknown dtype {t.DType} for '{t.Name}'");
            if (t.Shape.Any(d => d < 0)) throw new ArgumentException($"'{t.Name}': shape {SafetensorsTensor.Format(t.Shape)} has a negative dimension");
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
        if (Directory.Exists(path)) throw new InvalidDataException($"{path} is a directory, not a safetensors file");
        // Before opening: a FIFO or a device reports no length, and opening a FIFO waits for a writer forever.
        if (new FileInfo(path) is { Exists: true, Length: < 8 } small)
            throw new InvalidDataException($"{path}: {small.Length} bytes is too short for a safetensors file (truncated, or not a regular file?)");
        using var stream = File.OpenRead(path);
        try
        {
            return Read(stream, path);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"{path}: the file became shorter while it was read");
        }
    }

    private static (List<SafetensorsTensor>, Dictionary<string, string>) Read(FileStream stream, string path)
    {
        long fileLength = stream.Length;
        if (fileLength < 8) throw new InvalidDataException($"{path}: {fileLength} bytes is too short for a safetensors file (truncated?)");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength < MinHeaderBytes) throw new InvalidDataException($"{path}: header length {headerLength} is too short for a JSON header");
        if (headerLength > MaxHeaderBytes) throw new InvalidDataException($"{path}: header length {headerLength} is over the format's limit of {MaxHeaderBytes} (not a safetensors file?)");
        if ((long)headerLength > fileLength - 8)
            throw new InvalidDataException($"{path}: header length {headerLength} does not fit a file of {fileLength} bytes (truncated or not safetensors)");
        var json = new byte[headerLength];
        stream.ReadExactly(json);
        long dataStart = 8 + (long)headerLength;
        var (entries, metadata) = SafetensorsHeader.Parse(json, fileLength - dataStart, path);
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

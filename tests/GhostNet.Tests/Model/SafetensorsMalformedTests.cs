using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using GhostNet.Graph;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Model;

/// <summary>
/// Every field of a real checkpoint's header broken in turn, and the file cut short in every
/// region: each must be an InvalidDataException that names the file and the fault, never
/// another exception type, and reading must not allocate more than the file could hold.
/// </summary>
public partial class SafetensorsMalformedTests : TempFolderTest
{
    /// <summary>One way to break a file, and a word the error must contain (besides the path).</summary>
    private sealed record Case(string Name, Func<byte[], byte[]> Make, string? Expect = null);

    private byte[] _file = [];
    private string _header = "";
    private byte[] _data = [];
    private string _first = "", _second = "", _last = "";

    [SetUp]
    public void MakeCheckpoint()
    {
        _file = SmallCheckpoint.Save(Path.Combine(Folder, "base.safetensors"));
        (_header, _data) = SmallCheckpoint.Split(_file);
        var names = JsonNode.Parse(_header)!.AsObject().Select(p => p.Key).Where(k => k != "__metadata__").ToList();
        (_first, _second, _last) = (names[0], names[1], names[^1]);
    }

    private Case Json(string name, Action<JsonObject> mutate, string? expect = null) => new(name, _ =>
    {
        var header = JsonNode.Parse(_header)!.AsObject();
        mutate(header);
        return SmallCheckpoint.Join(header.ToJsonString(), _data);
    }, expect);

    private Case Entry(string name, Action<JsonObject> mutate, string? expect = null) => Json(name, h => mutate(h[_first]!.AsObject()), expect);

    private Case Text(string name, Func<string, string> mutate, string? expect = null) => new(name, _ => SmallCheckpoint.Join(mutate(_header), _data), expect);

    private Case Length(string name, ulong length, string? expect = null) => new(name, f =>
    {
        var copy = f.ToArray();
        BinaryPrimitives.WriteUInt64LittleEndian(copy, length);
        return copy;
    }, expect);

    private static JsonArray Arr(params JsonNode?[] items) => new(items);

    /// <summary>Cut points: inside the length, inside the header, at its end, inside several tensors, one byte short.</summary>
    private IEnumerable<int> Cuts()
    {
        int length = (int)BinaryPrimitives.ReadUInt64LittleEndian(_file);
        int dataStart = 8 + length;
        var header = JsonNode.Parse(_header)!.AsObject();
        var inside = header.Where(p => p.Key != "__metadata__").Take(6)
            .Select(p => p.Value!["data_offsets"]!.AsArray()).Select(o => dataStart + (int)(((long)o[0]! + (long)o[1]!) / 2));
        return new[] { 0, 1, 4, 7, 8, 9, 8 + length / 2, dataStart - 1, dataStart, dataStart + 1 }
            .Concat(inside).Concat([(int)(dataStart + FirstEnd()), _file.Length - 4, _file.Length - 1]).Distinct();
    }

    [Test]
    public void Every_malformed_header_is_an_InvalidDataException_naming_the_file_and_the_fault()
    {
        var failures = HeaderCases().Concat(FramingCases()).Select(c => Check(c.Name, c.Make(_file), c.Expect)).OfType<string>().ToList();
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    [Test]
    public void A_checkpoint_truncated_anywhere_is_an_InvalidDataException_naming_the_file()
    {
        var failures = Cuts().Select(n => Check($"cut at byte {n} of {_file.Length}", _file[..n], null)).OfType<string>().ToList();
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    [Test]
    public void A_header_length_over_the_limit_is_refused_without_reading_it()
    {
        string path = Path.Combine(Folder, "huge.safetensors");
        using (var f = File.Create(path))
        {
            var length = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, 200 << 20);
            f.Write(length);
            f.SetLength((200 << 20) + 64); // sparse: costs no disk
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<InvalidDataException>(() => Safetensors.Read(path));
        Assert.That(ex!.Message, Does.Contain(path).And.Contain("header"));
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.LessThan(1 << 20));
    }

    [Test]
    public void The_unbroken_checkpoint_reads_and_the_spaces_that_pad_its_header_are_allowed()
    {
        string path = Path.Combine(Folder, "ok.safetensors");
        File.WriteAllBytes(path, SmallCheckpoint.Join(_header + "   \t\n ", _data));
        Assert.DoesNotThrow(() => Checkpoint.Read(path));
    }

    [Test]
    public void A_folder_is_named_as_a_folder()
    {
        var a = Assert.Throws<InvalidDataException>(() => Safetensors.Read(Folder));
        var b = Assert.Throws<InvalidDataException>(() => Checkpoint.Read(Folder));
        Assert.That(a!.Message, Does.Contain(Folder).And.Contain("is a directory"));
        Assert.That(b!.Message, Does.Contain(Folder).And.Contain("is a directory, not a checkpoint file"));
    }

    /// <summary>Null when the bytes are refused as they should be; otherwise what went wrong.</summary>
    private string? Check(string name, byte[] bytes, string? expect)
    {
        string path = Path.Combine(Folder, "case.safetensors");
        File.WriteAllBytes(path, bytes);
        foreach (var (reader, read) in new (string, Action)[] { ("Safetensors.Read", () => Safetensors.Read(path)), ("Checkpoint.Read", () => Checkpoint.Read(path)) })
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                read();
                return $"{name}: {reader} accepted it";
            }
            catch (InvalidDataException e)
            {
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                if (!e.Message.Contains(path)) return $"{name}: {reader}: the message does not name the file: {e.Message}";
                if (expect is not null && reader == "Safetensors.Read" && !e.Message.Contains(expect, StringComparison.OrdinalIgnoreCase))
                    return $"{name}: {reader}: the message does not say '{expect}': {e.Message}";
                if (allocated > 4L * _file.Length + (16 << 20)) return $"{name}: {reader} allocated {allocated:N0} bytes for a {bytes.Length:N0}-byte file";
            }
            catch (Exception e)
            {
                return $"{name}: {reader} threw {e.GetType().Name}: {e.Message}";
            }
        }
        return null;
    }

    private long FirstEnd() => (long)JsonNode.Parse(_header)![_first]!["data_offsets"]![1]!;

    private static void Shift(JsonNode entry, long by)
    {
        var o = entry["data_offsets"]!.AsArray();
        entry["data_offsets"] = Arr((long)o[0]! + by, (long)o[1]! + by);
    }

    private static string ReplaceFirst(string text, string what, string with)
    {
        int i = text.IndexOf(what, StringComparison.Ordinal);
        Assert.That(i, Is.GreaterThanOrEqualTo(0), $"'{what}' not in the header");
        return text[..i] + with + text[(i + what.Length)..];
    }

    private static byte[] Patch(byte[] file, int at, params byte[] bytes)
    {
        var copy = file.ToArray();
        bytes.CopyTo(copy, at);
        return copy;
    }
}

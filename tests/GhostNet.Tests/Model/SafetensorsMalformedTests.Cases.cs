using System.Buffers.Binary;
using System.Text.Json.Nodes;

namespace GhostNet.Tests.Model;

/// <summary>The broken headers, as data: one case per way a field or the framing can be wrong.</summary>
public partial class SafetensorsMalformedTests
{
    private IEnumerable<Case> HeaderCases()
    {
        long firstEnd = FirstEnd();
        yield return Text("top level is an array", h => "[" + h + "]", "array");
        yield return Text("top level is a string", _ => "\"F32\"", "string");
        yield return Text("top level is a number", _ => "42", "number");
        yield return Text("top level is null", _ => "null", "null");
        yield return Text("header is only spaces", _ => "        ", "JSON");
        yield return Text("no tensors, data left over", _ => "{}", "hole");
        yield return Text("trailing garbage after the object", h => h + "x", "JSON");
        yield return Text("trailing NUL bytes", h => h + "\0\0\0", "JSON");
        yield return Text("a comment", h => "/*c*/" + h, "JSON");
        yield return Text("a byte-order mark", h => "\uFEFF" + h);
        yield return Text("a duplicate tensor name", h => h.Replace($"\"{_second}\":", $"\"{_first}\":"), "twice");
        yield return Text("a duplicate __metadata__", h => "{\"__metadata__\":{}," + h[1..], "twice");
        yield return Text("a duplicate key inside an entry", h => ReplaceFirst(h, "\"dtype\":\"F32\"", "\"dtype\":\"F32\",\"dtype\":\"F32\""), "twice");
        yield return Text("a duplicate metadata key", h => ReplaceFirst(h, "\"__metadata__\":{", "\"__metadata__\":{\"ghostnet.checkpoint\":\"{}\","), "twice");
        yield return Text("JSON nested 1000 deep", h => ReplaceFirst(h, "\"__metadata__\":{", "\"__metadata__\":{\"deep\":" + new string('[', 1000) + new string(']', 1000) + ","), "JSON");

        yield return Json("entry is null", h => h[_first] = null, _first);
        yield return Json("entry is a number", h => h[_first] = 3, _first);
        yield return Json("entry is an array", h => h[_first] = Arr(1, 2), _first);
        yield return Json("entry is a string", h => h[_first] = "F32", _first);

        yield return Entry("dtype missing", e => e.Remove("dtype"), "dtype");
        yield return Entry("dtype is a number", e => e["dtype"] = 4, "dtype");
        yield return Entry("dtype is null", e => e["dtype"] = null, "dtype");
        yield return Entry("dtype is an array", e => e["dtype"] = Arr("F32"), "dtype");
        yield return Entry("dtype unknown", e => e["dtype"] = "F33", "F33");
        yield return Entry("dtype lowercase", e => e["dtype"] = "f32", "f32");
        yield return Entry("dtype of another size", e => e["dtype"] = "I64", "bytes");

        yield return Entry("shape missing", e => e.Remove("shape"), "shape");
        yield return Entry("shape is a string", e => e["shape"] = "[3]", "shape");
        yield return Entry("shape is an object", e => e["shape"] = new JsonObject(), "shape");
        yield return Entry("shape is null", e => e["shape"] = null, "shape");
        yield return Entry("shape holds a float", e => e["shape"] = Arr(1.5), "shape");
        yield return Entry("shape holds 1e30", e => e["shape"] = Arr(1e30), "shape");
        yield return Entry("shape holds a string", e => e["shape"] = Arr("a"), "shape");
        yield return Entry("shape holds null", e => e["shape"] = Arr((JsonNode?)null), "shape");
        yield return Entry("shape holds an array", e => e["shape"] = Arr(Arr(1)), "shape");
        yield return Entry("shape holds a negative", e => e["shape"] = Arr(-1, 4), "shape");
        yield return Entry("shape holds more than a long", e => e["shape"] = Arr(JsonValue.Create(99999999999999999999m)), "shape");
        yield return Entry("shape's product overflows", e => e["shape"] = Arr(long.MaxValue, 4), "shape");
        yield return Entry("shape's byte count overflows", e => e["shape"] = Arr(1L << 61, 1), "shape");
        yield return Entry("shape too small for the bytes", e => e["shape"] = Arr(1), "bytes");
        yield return Entry("shape huge but finite", e => e["shape"] = Arr(1L << 40), "bytes");

        yield return Entry("data_offsets missing", e => e.Remove("data_offsets"), "data_offsets");
        yield return Entry("data_offsets null", e => e["data_offsets"] = null, "data_offsets");
        yield return Entry("data_offsets a string", e => e["data_offsets"] = "0,8", "data_offsets");
        yield return Entry("data_offsets empty", e => e["data_offsets"] = Arr(), "data_offsets");
        yield return Entry("data_offsets of one", e => e["data_offsets"] = Arr(0), "data_offsets");
        yield return Entry("data_offsets of three", e => e["data_offsets"] = Arr(0, firstEnd, firstEnd), "data_offsets");
        yield return Entry("data_offsets floats", e => e["data_offsets"] = Arr(0.5, firstEnd), "data_offsets");
        yield return Entry("data_offsets strings", e => e["data_offsets"] = Arr("0", $"{firstEnd}"), "data_offsets");
        yield return Entry("data_offsets 1e30", e => e["data_offsets"] = Arr(0, 1e30), "data_offsets");
        yield return Entry("data_offsets negative", e => e["data_offsets"] = Arr(-8, firstEnd - 8), "data_offsets");
        yield return Entry("data_offsets reversed", e => e["data_offsets"] = Arr(firstEnd, 0), _first);
        yield return Entry("data_offsets past a long", e => e["data_offsets"] = Arr(0, JsonValue.Create(99999999999999999999m)), "data_offsets");
        yield return Entry("data_offsets end at long.MaxValue", e => e["data_offsets"] = Arr(long.MaxValue - firstEnd, long.MaxValue), "truncated");
        yield return Json("data_offsets overlapping", h => Shift(h[_second]!, -4), "overlap");
        yield return Json("data_offsets beyond the file", h => Shift(h[_last]!, 8), "truncated");
        yield return new Case("a hole between tensors", _ =>
        {
            var h = JsonNode.Parse(_header)!.AsObject();
            Shift(h[_last]!, 4);
            return SmallCheckpoint.Join(h.ToJsonString(), [.. _data, 0, 0, 0, 0]);
        }, "hole");
        yield return new Case("a hole after the last tensor", _ => SmallCheckpoint.Join(_header, [.. _data, 1, 2, 3, 4, 5, 6, 7, 8]), "hole");

        yield return Json("metadata is an array", h => h["__metadata__"] = Arr("a"), "__metadata__");
        yield return Json("metadata is a string", h => h["__metadata__"] = "x", "__metadata__");
        yield return Json("metadata is a number", h => h["__metadata__"] = 1, "__metadata__");
        yield return Json("metadata is null", h => h["__metadata__"] = null, "__metadata__");
        yield return Json("metadata value is a number", h => h["__metadata__"]!["seed2"] = 1, "seed2");
        yield return Json("metadata value is null", h => h["__metadata__"]!["seed2"] = null, "seed2");
        yield return Json("metadata value is an object", h => h["__metadata__"]!["seed2"] = new JsonObject(), "seed2");
        yield return Json("metadata value is an array", h => h["__metadata__"]!["seed2"] = Arr("x"), "seed2");
        yield return Json("run information is a number", h => h["__metadata__"]!["ghostnet.checkpoint"] = 7, "ghostnet.checkpoint");
    }

    private IEnumerable<Case> FramingCases()
    {
        int length = (int)BinaryPrimitives.ReadUInt64LittleEndian(_file);
        yield return Length("header length 0", 0, "header");
        yield return Length("header length 1", 1, "header");
        yield return Length("header length 7", 7, "JSON");
        yield return Length("header length 8 too short", (ulong)length - 8, "JSON");
        yield return Length("header length one short", (ulong)length - 1);
        yield return Length("header length eats the data", (ulong)length + 8);
        yield return Length("header length the whole file", (ulong)_file.Length - 8);
        yield return Length("header length beyond the file", (ulong)_file.Length, "header");
        yield return Length("header length 2^63", 1UL << 63, "header");
        yield return Length("header length ulong.MaxValue", ulong.MaxValue, "header");
        yield return new Case("header not UTF-8 (0xFF in a name)", f => Patch(f, 8 + _header.IndexOf(_first, StringComparison.Ordinal), 0xFF), "UTF-8");
        yield return new Case("header not UTF-8 (overlong)", f => Patch(f, 8 + _header.IndexOf(_first, StringComparison.Ordinal), 0xC0, 0xAF), "UTF-8");
        yield return new Case("header not UTF-8 (lone continuation)", f => Patch(f, 8 + _header.IndexOf(_first, StringComparison.Ordinal), 0x80), "UTF-8");
    }
}

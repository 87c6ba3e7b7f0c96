using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;

namespace GhostNet.Data;

/// <summary>
/// PNG's own completeness signals, checked before ImageSharp 2.1.13 sees the file (it decodes a
/// truncated PNG silently, black below the cut, even with an IEND chunk appended): every chunk's
/// length stays inside the file and its CRC-32 matches; IHDR comes first, IDAT chunks follow
/// (consecutive), IEND is last; the concatenated IDAT zlib stream inflates to exactly the
/// filtered byte count the header implies (Adam7 summed over its passes; a little more is
/// tolerated) and ends in the Adler-32
/// of what it inflated to. .NET's ZLibStream returns short data without error when the stream is
/// cut, and ignores a cut inside the Adler-32, hence the count and the checksum here.
/// </summary>
internal static class PngStructure
{
    private static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Null when the file is complete, else the reason it is not.</summary>
    public static string? Problem(byte[] bytes)
    {
        if (!bytes.AsSpan().StartsWith(Signature)) return "no PNG signature";
        int at = Signature.Length, idatRun = 0;
        bool seenIdat = false, seenEnd = false;
        var idat = new List<(int Offset, int Length)>();
        int width = 0, height = 0, depth = 0, colour = 0, interlace = 0;
        while (!seenEnd)
        {
            if (at + 12 > bytes.Length) return $"truncated PNG (chunk header at byte {at} runs past the end of the file)";
            uint length = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(at));
            string type = System.Text.Encoding.ASCII.GetString(bytes, at + 4, 4);
            if (length > int.MaxValue || at + 12L + length > bytes.Length)
                return $"truncated PNG ({type} chunk at byte {at} declares {length} bytes, past the end of the file)";
            var typeAndData = bytes.AsSpan(at + 4, 4 + (int)length);
            if (Crc32.Of(typeAndData) != BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(at + 8 + (int)length)))
                return $"corrupt PNG (CRC mismatch in the {type} chunk at byte {at})";
            var data = typeAndData[4..];
            if (at == Signature.Length)
            {
                if (type != "IHDR" || length != 13) return "corrupt PNG (the first chunk is not a 13-byte IHDR)";
                width = BinaryPrimitives.ReadInt32BigEndian(data);
                height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                (depth, colour, interlace) = (data[8], data[9], data[12]);
            }
            else if (type == "IHDR") return "corrupt PNG (a second IHDR chunk)";
            if (type == "IDAT")
            {
                if (seenIdat && idatRun == 0) return "corrupt PNG (IDAT chunks are not consecutive)";
                seenIdat = true;
                idatRun++;
                idat.Add((at + 8, (int)length));
            }
            else idatRun = 0;
            seenEnd = type == "IEND";
            at += 12 + (int)length;
        }
        if (!seenIdat) return "truncated PNG (no IDAT chunk before IEND)";
        long expected = FilteredBytes(width, height, depth, colour, interlace);
        if (expected < 0) return $"corrupt PNG (bit depth {depth} with colour type {colour}, or interlace {interlace})";
        return InflateProblem(bytes, idat, expected, width, height);
    }

    /// <summary>Rows of (filter byte + packed samples), for the whole image or each Adam7 pass; -1 for an invalid header.</summary>
    internal static long FilteredBytes(int width, int height, int depth, int colour, int interlace)
    {
        int samples = colour switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => 0 };
        bool depthOk = colour switch
        {
            0 => depth is 1 or 2 or 4 or 8 or 16,
            3 => depth is 1 or 2 or 4 or 8,
            _ => depth is 8 or 16,
        };
        if (samples == 0 || !depthOk || interlace > 1 || width <= 0 || height <= 0) return -1;
        long bits = (long)samples * depth;
        long Rows(long w, long h) => w == 0 || h == 0 ? 0 : h * (1 + (w * bits + 7) / 8);
        if (interlace == 0) return Rows(width, height);
        // Adam7: pass p takes columns from x0 every dx and rows from y0 every dy.
        ReadOnlySpan<int> x0 = [0, 4, 0, 2, 0, 1, 0], dx = [8, 8, 4, 4, 2, 2, 1], y0 = [0, 0, 4, 0, 2, 0, 1], dy = [8, 8, 8, 4, 4, 2, 2];
        long total = 0;
        for (int p = 0; p < 7; p++)
            total += Rows((width - x0[p] + dx[p] - 1) / dx[p], (height - y0[p] + dy[p] - 1) / dy[p]);
        return total;
    }

    private static string? InflateProblem(byte[] bytes, List<(int Offset, int Length)> idat, long expected, int width, int height)
    {
        var joined = new MemoryStream();
        foreach (var (offset, length) in idat) joined.Write(bytes, offset, length);
        if (joined.Length < 6) return "truncated PNG (the IDAT data is too short for a zlib stream)";
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            joined.Position = 0;
            using var zlib = new ZLibStream(joined, CompressionMode.Decompress, leaveOpen: true);
            long total = 0;
            uint a = 1, b = 0;
            int read;
            // More data than the header needs is tolerated a little, as libpng does ("extra compressed
            // data" is a benign error there); ImageSharp's encoder writes some for tiny Adam7 images with
            // empty passes (which its decoder then refuses: "Unknown filter type").
            long most = expected + expected / 8 + 1024;
            while ((read = zlib.Read(buffer, 0, buffer.Length)) > 0)
            {
                total += read;
                if (total > most) return $"corrupt PNG (the IDAT data inflates to more than the {expected:N0} bytes {width}x{height} needs)";
                Adler32(buffer.AsSpan(0, read), ref a, ref b);
            }
            if (total < expected) return $"truncated PNG (the IDAT data inflates to {total:N0} of {expected:N0} bytes)";
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(joined.GetBuffer().AsSpan((int)joined.Length - 4));
            if (stored != (b << 16 | a)) return "truncated PNG (the zlib stream does not end in its Adler-32 checksum)";
            return null;
        }
        catch (InvalidDataException e)
        {
            return $"corrupt PNG (the IDAT zlib stream: {e.Message})";
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void Adler32(ReadOnlySpan<byte> data, ref uint a, ref uint b)
    {
        const uint Mod = 65521;
        while (data.Length > 0)
        {
            int n = Math.Min(data.Length, 5552); // the longest run before b can overflow 32 bits
            foreach (byte x in data[..n]) { a += x; b += a; }
            a %= Mod;
            b %= Mod;
            data = data[n..];
        }
    }
}

/// <summary>CRC-32 as PNG and zlib define it (polynomial 0xEDB88320), one table of 256 entries.</summary>
internal static class Crc32
{
    private static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static uint Of(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte x in data) crc = Table[(crc ^ x) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }
}

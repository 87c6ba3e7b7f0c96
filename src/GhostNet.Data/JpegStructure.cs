using System.Buffers.Binary;

namespace GhostNet.Data;

/// <summary>
/// What can be known of a JPEG's completeness without an entropy decode: SOI first; every
/// segment's declared length inside the file; a frame header (SOFn) before the first scan (SOS);
/// each scan's entropy-coded data running to a marker (FF followed by neither 00 nor RSTn), and an
/// EOI reached by walking the segments, not merely found near the end. Bytes after EOI are allowed
/// (cameras append data there), and so are stray bytes between segments (libjpeg only warns).
/// JPEG carries no checksum, and ImageSharp 2.1.13 pads a scan that ends early with zeros without
/// saying so; so a file cut inside its entropy-coded data and given a new EOI is NOT detectable
/// here: it decodes, grey or smeared below the cut. A cut inside a header segment, a missing EOI
/// and a scan that runs to the end of the file are detected.
/// </summary>
internal static class JpegStructure
{
    /// <summary>Null when the marker structure is complete, else the reason it is not.</summary>
    public static string? Problem(byte[] bytes)
    {
        if (bytes.Length < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8) return "no JPEG start-of-image marker";
        int at = 2;
        bool frame = false, scan = false;
        while (true)
        {
            while (at < bytes.Length && bytes[at] != 0xFF) at++; // stray bytes before a marker
            while (at < bytes.Length && bytes[at] == 0xFF) at++; // fill bytes
            if (at >= bytes.Length) return "truncated JPEG (no end-of-image marker)";
            byte marker = bytes[at++];
            if (marker == 0xD9) return scan ? null : "truncated JPEG (end-of-image marker before any scan)";
            if (marker is >= 0xD0 and <= 0xD7 or 0x01 or 0x00) continue; // no length field
            if (marker == 0xD8) return $"corrupt JPEG (a second start-of-image marker at byte {at - 2})";
            if (at + 2 > bytes.Length) return $"truncated JPEG (the FF{marker:X2} segment at byte {at - 2} has no length)";
            int length = BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(at));
            if (length < 2 || at + length > bytes.Length)
                return $"truncated JPEG (the FF{marker:X2} segment at byte {at - 2} declares {length} bytes, past the end of the file)";
            at += length;
            if (marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC) frame = true;
            if (marker != 0xDA) continue;
            if (!frame) return "corrupt JPEG (a scan before the frame header)";
            scan = true;
            at = EndOfEntropyData(bytes, at);
            if (at >= bytes.Length) return "truncated JPEG (the scan data runs to the end of the file, no end-of-image marker)";
        }
    }

    /// <summary>The offset of the first marker after entropy-coded data starting at <paramref name="at"/>.</summary>
    private static int EndOfEntropyData(byte[] bytes, int at)
    {
        for (; at + 1 < bytes.Length; at++)
        {
            if (bytes[at] != 0xFF) continue;
            byte next = bytes[at + 1];
            if (next == 0x00 || next is >= 0xD0 and <= 0xD7) { at++; continue; } // stuffed byte or restart marker
            if (next == 0xFF) continue; // fill before a marker
            return at;
        }
        return bytes.Length;
    }
}

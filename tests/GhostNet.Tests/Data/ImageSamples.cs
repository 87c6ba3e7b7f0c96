using System.Buffers.Binary;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Tests.Data;

/// <summary>Valid files of every kind the decoder must accept, made by ImageSharp's encoders, and byte surgery on them.</summary>
internal static class ImageSamples
{
    public sealed record Sample(string Name, byte[] Bytes, int Width, int Height)
    {
        public bool IsPng => Name.EndsWith(".png", StringComparison.Ordinal);
        public override string ToString() => Name;
    }

    public static IReadOnlyList<Sample> Valid()
    {
        var list = new List<Sample>
        {
            Encode("rgb.jpg", 120, 90, new JpegEncoder()),
            Encode("rgb-420-q50.jpg", 97, 61, new JpegEncoder { ColorType = JpegColorType.YCbCrRatio420, Quality = 50 }),
            Encode("grey.jpg", 64, 80, new JpegEncoder { ColorType = JpegColorType.Luminance }),
            Encode("1x1.jpg", 1, 1, new JpegEncoder()),
            Encode("rgb.png", 120, 90, new PngEncoder { ColorType = PngColorType.Rgb }),
            Encode("rgba.png", 50, 40, new PngEncoder { ColorType = PngColorType.RgbWithAlpha }),
            Encode("grey.png", 33, 47, new PngEncoder { ColorType = PngColorType.Grayscale }),
            Encode("grey-alpha.png", 33, 20, new PngEncoder { ColorType = PngColorType.GrayscaleWithAlpha }),
            Encode("grey-1bit.png", 37, 9, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit1 }),
            Encode("grey16.png", 40, 30, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit16 }),
            Encode("rgb16.png", 40, 30, new PngEncoder { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit16 }),
            Encode("palette.png", 60, 45, new PngEncoder { ColorType = PngColorType.Palette }),
            Encode("palette-4bit.png", 61, 13, new PngEncoder { ColorType = PngColorType.Palette, BitDepth = PngBitDepth.Bit4 }),
            Encode("interlaced.png", 67, 43, new PngEncoder { ColorType = PngColorType.Rgb, InterlaceMethod = PngInterlaceMode.Adam7 }),
            // Not 3x2: ImageSharp 2.1.13 writes tiny Adam7 images (with empty passes) that its own decoder refuses.
            Encode("interlaced-9x5.png", 9, 5, new PngEncoder { ColorType = PngColorType.RgbWithAlpha, InterlaceMethod = PngInterlaceMode.Adam7 }),
            Encode("1x1.png", 1, 1, new PngEncoder()),
            Encode("64x1.png", 64, 1, new PngEncoder()), // the widest aspect ratio allowed
        };
        return list;
    }

    /// <summary>PNGs this repository holds that ImageSharp did not write (plots), decoded for their size.</summary>
    public static IEnumerable<Sample> FromRepository()
    {
        foreach (var path in Directory.EnumerateFiles(Path.Combine(RepositoryData.Repository(), "docs"), "*.png", SearchOption.AllDirectories).Order().Take(4))
        {
            var bytes = File.ReadAllBytes(path);
            var info = Image.Identify(bytes);
            yield return new Sample("repo-" + Path.GetFileName(path), bytes, info.Width, info.Height);
        }
    }

    /// <summary>A gradient with noise, so the compressed data is not trivially short.</summary>
    public static Sample Encode(string name, int w, int h, IImageEncoder encoder)
    {
        using var image = new Image<Rgba32>(w, h);
        var rng = new Random(w * 31 + h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                image[x, y] = new Rgba32((byte)(x * 7 + rng.Next(16)), (byte)(y * 5), (byte)rng.Next(256), (byte)(128 + x % 128));
        var stream = new MemoryStream();
        image.Save(stream, encoder);
        return new Sample(name, stream.ToArray(), w, h);
    }

    /// <summary>A PNG's IHDR patched to width x height, its CRC recomputed so the size check is what refuses it.</summary>
    public static byte[] PatchPngSize(byte[] png, int width, int height)
    {
        var bytes = (byte[])png.Clone();
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), width);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), height);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(29), Crc32(bytes.AsSpan(12, 17)));
        return bytes;
    }

    /// <summary>A JPEG's frame header (SOF0..SOF2) patched to width x height (JPEG has no checksum to fix).</summary>
    public static byte[] PatchJpegSize(byte[] jpeg, int width, int height)
    {
        var bytes = (byte[])jpeg.Clone();
        int sof = Segment(bytes, m => m is 0xC0 or 0xC1 or 0xC2);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(sof + 5), (ushort)height);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(sof + 7), (ushort)width);
        return bytes;
    }

    /// <summary>The offset just past the first scan header: a cut beyond it falls in entropy-coded data.</summary>
    public static int EntropyStart(byte[] jpeg)
    {
        int sos = Segment(jpeg, m => m == 0xDA);
        return sos + 2 + BinaryPrimitives.ReadUInt16BigEndian(jpeg.AsSpan(sos + 2));
    }

    /// <summary>The offset of the first segment's FF whose marker matches, walking lengths from SOI.</summary>
    private static int Segment(byte[] jpeg, Func<byte, bool> match)
    {
        int at = 2;
        while (!match(jpeg[at + 1])) at += 2 + BinaryPrimitives.ReadUInt16BigEndian(jpeg.AsSpan(at + 2));
        return at;
    }

    public static readonly byte[] PngIend = [0, 0, 0, 0, (byte)'I', (byte)'E', (byte)'N', (byte)'D', 0xAE, 0x42, 0x60, 0x82];

    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }
}

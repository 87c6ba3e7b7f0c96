using GhostNet.Backends;
using System.Buffers.Binary;
using GhostNet.Data;
using GhostNet.Data.Transforms;
using NUnit.Framework;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Tests.Data;

/// <summary>Every hostile file gets its exact refusal, fast and without large allocations.</summary>
public class HostileInputTests : TempFolderTest
{
    private readonly SafeImageDecoder _decoder = new();


    private string Jpeg(string name, int w = 120, int h = 90)
    {
        string path = Path.Combine(Folder, name);
        using var image = new Image<Rgb24>(w, h);
        for (int x = 0; x < w; x++) for (int y = 0; y < h; y++) image[x, y] = new Rgb24((byte)x, (byte)y, 77);
        image.SaveAsJpeg(path);
        return path;
    }

    private string Expect(string path, string reason)
    {
        var ex = Assert.Throws<BadSampleException>(() => _decoder.Decode(path).Dispose());
        Assert.That(ex!.Sample, Is.EqualTo(path));
        Assert.That(ex.Reason, Does.Contain(reason));
        return ex.Message;
    }

    [Test]
    public void A_valid_jpeg_decodes() => Assert.That(_decoder.Decode(Jpeg("ok.jpg")).Width, Is.EqualTo(120));

    [Test]
    public void A_truncated_jpeg_is_refused_not_decoded_half_black()
    {
        string path = Jpeg("cut.jpg", 500, 375); // large enough that half the file is entropy-coded data
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Expect(path, "truncated JPEG");
    }

    [Test]
    public void A_truncated_png_is_refused()
    {
        string path = Path.Combine(Folder, "cut.png");
        using (var image = new Image<Rgb24>(64, 64)) image.SaveAsPng(path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 12)]); // the IEND chunk is gone, the pixel data intact
        Expect(path, "truncated PNG");
    }

    [Test]
    public void A_file_claiming_30000_by_30000_pixels_is_refused_from_its_header_alone()
    {
        string path = Path.Combine(Folder, "bomb.png");
        File.WriteAllBytes(path, PngClaiming(30000, 30000));
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string message = Expect(path, "declares 30000x30000 pixels, limit 64 MP");
        Assert.That(clock.ElapsedMilliseconds, Is.LessThan(2000), "refused without decoding");
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.LessThan(16L << 20), "no pixel buffer was allocated");
        TestContext.Out.WriteLine(message);
    }

    [Test]
    public void Non_images_empty_and_vanished_files_are_refused()
    {
        string text = Path.Combine(Folder, "text.jpg");
        File.WriteAllText(text, "this is not a picture at all, just some words to fill a file");
        Expect(text, "not a JPEG or PNG image");
        string empty = Path.Combine(Folder, "empty.jpg");
        File.WriteAllBytes(empty, []);
        Expect(empty, "empty file");
        Expect(Path.Combine(Folder, "gone.jpg"), "file not found");
        string gif = Path.Combine(Folder, "image.png");
        File.WriteAllBytes(gif, "GIF89a\u0001\0\u0001\0\0\0\0;"u8.ToArray());
        Expect(gif, "not a JPEG or PNG image");
    }

    [Test]
    public void The_loader_skips_a_bad_file_with_one_warning_or_stops_when_strict()
    {
        SyntheticImageFolder.Write(Folder, classes: 2, perClass: 4, width: 48, height: 40, seed: 3);
        string bad = Path.Combine(Folder, "disc", "00001.jpg");
        File.WriteAllText(bad, "corrupt");
        var dataset = new ImageFolderDataset(Folder);
        var warnings = new StringWriter();
        var loader = new DataLoader(dataset, new EvalTransform(32, Normalization.ImageNet, 1.0),
            new DataLoaderOptions(BatchSize: 4, Shuffle: false, Workers: 2) { Warnings = warnings });
        for (int epoch = 0; epoch < 2; epoch++)
            foreach (var batch in loader.Epoch(epoch)) Assert.That(batch.Count, Is.EqualTo(4));
        Assert.That(loader.SkippedSamples, Is.EqualTo(1));
        var lines = warnings.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), "one warning line, not one per epoch");
        Assert.That(lines[0], Does.Contain("image skipped: " + bad).And.Contain("not a JPEG or PNG image"));

        var strict = new DataLoader(dataset, new EvalTransform(32, Normalization.ImageNet, 1.0),
            new DataLoaderOptions(BatchSize: 4, Shuffle: false, Workers: 2) { StrictBadSamples = true, Warnings = warnings });
        var ex = Assert.Throws<BadSampleException>(() => { foreach (var _ in strict.Epoch(0)) { } }, "the bad sample itself, not wrapped");
        Assert.That(ex!.Message, Does.Contain(bad));
    }

    /// <summary>A valid PNG header and IHDR for width x height RGB, one tiny IDAT, and IEND.</summary>
    private static byte[] PngClaiming(int width, int height)
    {
        var stream = new MemoryStream();
        stream.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
        Chunk(stream, "IHDR", ihdr);
        Chunk(stream, "IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        Chunk(stream, "IEND", []);
        return stream.ToArray();
    }

    /// <summary>PNG's CRC-32 (polynomial 0xEDB88320), bit by bit: a few dozen bytes need no table.</summary>
    private static uint Crc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        s.Write(length);
        var typeAndData = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(length, Crc32(typeAndData));
        s.Write(length);
    }
}

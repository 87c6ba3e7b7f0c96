using GhostNet.Backends;
using System.Text.RegularExpressions;
using GhostNet.Data;
using GhostNet.Data.Transforms;
using NUnit.Framework;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static GhostNet.Tests.Data.ImageSamples;

namespace GhostNet.Tests.Data;

/// <summary>
/// Families of hostile files, many generated cases each, every case through the decoder and both
/// transforms (train and eval, at 224 and 32). A failure names the case and what happened.
/// </summary>
public class ImageFamilyTests : TempFolderTest
{
    private readonly SafeImageDecoder _decoder = new();
    private static readonly IImageTransform[] Transforms =
    [
        new TrainTransform(224, Normalization.ImageNet), new TrainTransform(32, Normalization.ImageNet),
        new EvalTransform(224, Normalization.ImageNet), new EvalTransform(32, Normalization.ImageNet, 1.0),
    ];

    /// <summary>What a file came to: decoded (and transformed) at a size, refused with a reason, or another exception (always a defect).</summary>
    private sealed record Outcome(int Width, int Height, string? Reason, string? Other)
    {
        public bool Decoded => Reason is null && Other is null;
        public override string ToString() => Other ?? (Reason is null ? $"decoded {Width}x{Height}" : $"refused: {Reason}");
    }

    private Outcome Run(string name, byte[] bytes)
    {
        string path = Path.Combine(Folder, name);
        File.WriteAllBytes(path, bytes);
        try
        {
            using var image = _decoder.Decode(path);
            foreach (var t in Transforms)
            {
                using var copy = image.Clone();
                var chw = new float[3 * t.Size * t.Size];
                t.ApplyNormalized(copy, new Random(1), chw, path);
                if (!chw.All(float.IsFinite)) return new Outcome(0, 0, null, $"{t.GetType().Name}({t.Size}) gave non-finite values");
            }
            return new Outcome(image.Width, image.Height, null, null);
        }
        catch (BadSampleException e)
        {
            return e.Sample == path ? new Outcome(0, 0, e.Reason, null) : new Outcome(0, 0, null, $"BadSampleException naming {e.Sample}, not {path}");
        }
        catch (Exception e)
        {
            return new Outcome(0, 0, null, $"{e.GetType().Name}: {e.Message}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static void Refused(string name, Outcome o, string reasonPattern) =>
        Assert.That(o.Reason is not null && Regex.IsMatch(o.Reason, reasonPattern), $"{name}: expected refused with /{reasonPattern}/, got {o}");

    private const string Incomplete = "^(truncated (PNG|JPEG)|corrupt (PNG|JPEG)|not a JPEG or PNG image|unreadable image header)";

    [Test]
    public void Valid_images_of_every_kind_decode_to_their_size_through_both_transforms()
    {
        var samples = Valid().Concat(FromRepository()).ToList();
        Assert.Multiple(() =>
        {
            foreach (var s in samples)
            {
                var o = Run(s.Name, s.Bytes);
                Assert.That(o.Decoded && o.Width == s.Width && o.Height == s.Height, $"{s.Name}: expected decoded {s.Width}x{s.Height}, got {o}");
            }
        });
        Assert.That(samples.Count(s => s.Name.StartsWith("repo-")), Is.GreaterThan(0), "PNGs not written by ImageSharp were tried");
    }

    [Test]
    public void Files_cut_at_every_sixteenth_are_refused()
    {
        Assert.Multiple(() =>
        {
            foreach (var s in Valid())
                for (int k = 1; k < 16; k++)
                {
                    int cut = s.Bytes.Length * k / 16;
                    Refused($"{s.Name} cut at {cut} of {s.Bytes.Length}", Run(s.Name, s.Bytes[..cut]), Incomplete);
                }
        });
    }

    /// <summary>
    /// The end marker appended after the cut: a PNG is always refused (chunk lengths, CRCs, the
    /// zlib stream). A JPEG cut inside its entropy-coded data cannot be told from a whole one
    /// (no checksum; ImageSharp pads the scan silently): it must decode at its size or be refused,
    /// never throw anything else. A JPEG cut in its headers is refused.
    /// </summary>
    [Test]
    public void Files_cut_with_their_end_marker_appended_are_refused_where_the_format_can_tell()
    {
        int undetectable = 0;
        Assert.Multiple(() =>
        {
            foreach (var s in Valid())
                for (int k = 1; k < 16; k++)
                {
                    int cut = s.Bytes.Length * k / 16;
                    string name = $"{s.Name} cut at {cut} of {s.Bytes.Length} + end marker";
                    byte[] bytes = [.. s.Bytes[..cut], .. s.IsPng ? PngIend : [0xFF, 0xD9]];
                    var o = Run(s.Name, bytes);
                    if (bytes.SequenceEqual(s.Bytes)) Assert.That(o.Decoded, $"{name}: the cut removed only the end marker, so the file is whole again; got {o}");
                    else if (s.IsPng || cut <= EntropyStart(s.Bytes)) Refused(name, o, Incomplete);
                    else if (o.Decoded) { undetectable++; Assert.That((o.Width, o.Height), Is.EqualTo((s.Width, s.Height)), name); }
                    else Refused(name, o, Incomplete);
                }
        });
        TestContext.Out.WriteLine($"{undetectable} JPEGs cut inside entropy-coded data decoded (undetectable without a checksum)");
    }

    [Test]
    public void Garbled_bytes_decode_to_a_valid_image_or_are_refused()
    {
        Assert.Multiple(() =>
        {
            foreach (var s in Valid())
                for (int seed = 0; seed < 12; seed++)
                {
                    var rng = new Random(seed);
                    var bytes = (byte[])s.Bytes.Clone();
                    var flipped = Enumerable.Range(0, 1 + seed % 4).Select(_ => rng.Next(2, bytes.Length)).ToArray();
                    foreach (int at in flipped) bytes[at] ^= (byte)rng.Next(1, 256);
                    string name = $"{s.Name} seed {seed} flipped at {string.Join(",", flipped)}";
                    var o = Run(s.Name, bytes);
                    if (s.IsPng) Refused(name, o, Incomplete); // every chunk has a CRC
                    else Assert.That(o.Other, Is.Null, $"{name}: expected decoded or refused, got {o}"); // JPEG has no checksum
                }
        });
    }

    [Test]
    public void Random_bytes_are_refused_even_behind_a_real_signature()
    {
        byte[][] prefixes = [[], [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A], [0xFF, 0xD8, 0xFF]];
        Assert.Multiple(() =>
        {
            for (int seed = 0; seed < 20; seed++)
                foreach (var prefix in prefixes)
                {
                    var rng = new Random(seed);
                    var noise = new byte[rng.Next(1, 4096)];
                    rng.NextBytes(noise);
                    Refused($"seed {seed}, {noise.Length} bytes behind {Convert.ToHexString(prefix)}", Run("noise.png", [.. prefix, .. noise]), Incomplete);
                }
        });
    }

    [Test]
    public void Headers_declaring_huge_sizes_or_extreme_aspect_ratios_are_refused_before_decoding()
    {
        var png = Valid().First(s => s.Name == "rgb.png").Bytes;
        var jpeg = Valid().First(s => s.Name == "rgb.jpg").Bytes;
        (string Name, byte[] Bytes, string Reason)[] cases =
        [
            ("png 30000x30000", PatchPngSize(png, 30000, 30000), "^declares 30000x30000 pixels, limit 64 MP"),
            ("png 100000x1", PatchPngSize(png, 100000, 1), "aspect ratio beyond the limit 64:1"),
            ("png 1x100000", PatchPngSize(png, 1, 100000), "aspect ratio beyond the limit 64:1"),
            ("png 65x1", PatchPngSize(png, 65, 1), "aspect ratio beyond the limit 64:1"),
            ("png 2147483647x2147483647", PatchPngSize(png, int.MaxValue, int.MaxValue), "^(declares|unreadable image header)"),
            ("png 8192x8192 (at the pixel limit, data missing)", PatchPngSize(png, 8192, 8192), @"^truncated PNG \(the IDAT data inflates to"),
            ("png 0x90", PatchPngSize(png, 0, 90), "^(declares 0x90|unreadable image header)"),
            ("jpeg 65535x65535", PatchJpegSize(jpeg, 65535, 65535), "^declares 65535x65535 pixels, limit 64 MP"),
            ("jpeg 65535x1", PatchJpegSize(jpeg, 65535, 1), "aspect ratio beyond the limit 64:1"),
            ("jpeg 1x65535", PatchJpegSize(jpeg, 1, 65535), "aspect ratio beyond the limit 64:1"),
            ("jpeg 0x90", PatchJpegSize(jpeg, 0, 90), "^(declares 0x90|unreadable image header)"),
            ("real 100000x1 png", Encode("wide.png", 100000, 1, new SixLabors.ImageSharp.Formats.Png.PngEncoder()).Bytes, "aspect ratio beyond the limit 64:1"),
        ];
        Assert.Multiple(() =>
        {
            foreach (var (name, bytes, reason) in cases)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                Refused(name, Run("huge.png", bytes), reason);
                Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.LessThan(64L << 20), $"{name}: refused without a pixel buffer");
            }
        });
    }

    /// <summary>Images that no decoder made (another data set's) meet the same bounds inside the transforms.</summary>
    [Test]
    public void Transforms_refuse_a_step_that_would_make_an_extreme_image()
    {
        (int W, int H, IImageTransform T, string? Reason)[] cases =
        [
            (100000, 1, Transforms[2], "Resize input: 100000x1 pixels, aspect ratio beyond the limit 64:1"),
            (1, 100000, Transforms[3], "aspect ratio beyond the limit 64:1"),
            (100000, 1, Transforms[0], "RandomResizedCrop input: 100000x1 pixels, aspect ratio"),
            (64, 1, Transforms[2], null),
            (1, 64, Transforms[0], null),
            (64, 1, new EvalTransform(1024, Normalization.ImageNet), "Resize(1170) would make 74880x1170 pixels, limit 16 MP per step"),
            (1, 1, new TrainTransform(8192, Normalization.ImageNet), "RandomResizedCrop output would make 8192x8192 pixels, limit 16 MP"),
        ];
        Assert.Multiple(() =>
        {
            foreach (var (w, h, t, reason) in cases)
            {
                string name = $"{w}x{h} through {t.GetType().Name}({t.Size})";
                using var image = new Image<Rgb24>(w, h);
                var chw = new float[3 * t.Size * t.Size];
                if (reason is null) { Assert.DoesNotThrow(() => t.ApplyNormalized(image, new Random(2), chw, name), name); continue; }
                var e = Assert.Throws<BadSampleException>(() => t.ApplyNormalized(image, new Random(2), chw, name), name);
                Assert.That(e?.Sample, Is.EqualTo(name), name);
                Assert.That(e?.Reason, Does.Contain(reason), name);
            }
        });
    }
}

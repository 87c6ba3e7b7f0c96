using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Data;

/// <summary>
/// Writes a real ImageFolder of JPEGs whose classes look different (disc, horizontal bars,
/// vertical bars, checkerboard, diagonal bars, ring, cross, blank), each with a random
/// position, scale, colour and noise: for demos, tests and decoding benchmarks with no download.
/// </summary>
public static class SyntheticImageFolder
{
    public static readonly IReadOnlyList<string> ClassNames = ["disc", "hbars", "vbars", "checker", "diagonal", "ring", "cross", "plain"];

    public static void Write(string root, int classes, int perClass, int width, int height, int seed, int quality = 90)
    {
        if (classes < 1 || classes > ClassNames.Count) throw new ArgumentOutOfRangeException(nameof(classes), $"1..{ClassNames.Count} classes");
        var rng = new Random(seed);
        var encoder = new JpegEncoder { Quality = quality };
        for (int c = 0; c < classes; c++)
        {
            string dir = Path.Combine(root, ClassNames[c]);
            Directory.CreateDirectory(dir);
            for (int i = 0; i < perClass; i++)
            {
                using var image = Draw(c, width, height, rng);
                image.SaveAsJpeg(Path.Combine(dir, $"{i:D5}.jpg"), encoder);
            }
        }
    }

    private static Image<Rgb24> Draw(int kind, int width, int height, Random rng)
    {
        var image = new Image<Rgb24>(width, height);
        double cx = width * (0.3 + 0.4 * rng.NextDouble()), cy = height * (0.3 + 0.4 * rng.NextDouble());
        double scale = Math.Min(width, height) * (0.15 + 0.2 * rng.NextDouble());
        var fg = new Rgb24((byte)rng.Next(128, 256), (byte)rng.Next(0, 256), (byte)rng.Next(0, 128));
        var bg = new Rgb24((byte)rng.Next(0, 96), (byte)rng.Next(0, 96), (byte)rng.Next(96, 256));
        int noiseSeed = rng.Next();
        image.ProcessPixelRows(rows =>
        {
            var noise = new Random(noiseSeed);
            for (int y = 0; y < height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (int x = 0; x < width; x++)
                {
                    double dx = (x - cx) / scale, dy = (y - cy) / scale, r = Math.Sqrt(dx * dx + dy * dy);
                    int period = (int)Math.Max(2, scale / 3);
                    bool on = kind switch
                    {
                        0 => r < 1,
                        1 => y / period % 2 == 0,
                        2 => x / period % 2 == 0,
                        3 => (x / period + y / period) % 2 == 0,
                        4 => (x + y) / period % 2 == 0,
                        5 => r is > 0.7 and < 1.1,
                        6 => Math.Abs(dx) < 0.25 || Math.Abs(dy) < 0.25,
                        _ => false,
                    };
                    var p = on ? fg : bg;
                    int n = noise.Next(-20, 21);
                    row[x] = new Rgb24(Clamp(p.R + n), Clamp(p.G + n), Clamp(p.B + n));
                }
            }
        });
        return image;
    }

    private static byte Clamp(int v) => (byte)Math.Clamp(v, 0, 255);
}

using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Advanced;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Data.Transforms;

/// <summary>ToTensor then Normalize: CHW floats (v / 255 - mean[c]) / std[c].</summary>
public sealed class Normalization(float[] mean, float[] std)
{
    public static readonly Normalization ImageNet = new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);
    /// <summary>MNIST's usual 0.1307 / 0.3081, in all three channels (the grey image is replicated).</summary>
    public static readonly Normalization Mnist = new([0.1307f, 0.1307f, 0.1307f], [0.3081f, 0.3081f, 0.3081f]);
    public static readonly Normalization FashionMnist = new([0.2860f, 0.2860f, 0.2860f], [0.3530f, 0.3530f, 0.3530f]);
    public static readonly Normalization Cifar10 = new([0.4914f, 0.4822f, 0.4465f], [0.2470f, 0.2435f, 0.2616f]);

    public float[] Mean { get; } = mean.Length == 3 ? mean : throw new ArgumentException("three channel means");
    public float[] Std { get; } = std.Length == 3 && std.All(s => s > 0) ? std : throw new ArgumentException("three positive channel deviations");

    public void ToTensor(Image<Rgb24> image, Span<float> chw)
    {
        int h = image.Height, w = image.Width, plane = h * w;
        if (chw.Length != 3 * plane) throw new ArgumentException($"{chw.Length} floats for a 3x{h}x{w} tensor");
        float s0 = 1f / (255f * Std[0]), s1 = 1f / (255f * Std[1]), s2 = 1f / (255f * Std[2]);
        float b0 = -Mean[0] / Std[0], b1 = -Mean[1] / Std[1], b2 = -Mean[2] / Std[2];
        for (int y = 0; y < h; y++)
        {
            var row = image.DangerousGetPixelRowMemory(y).Span;
            int o = y * w;
            for (int x = 0; x < w; x++)
            {
                var p = row[x];
                chw[o + x] = p.R * s0 + b0;
                chw[plane + o + x] = p.G * s1 + b1;
                chw[2 * plane + o + x] = p.B * s2 + b2;
            }
        }
    }
}

namespace GhostNet.Backends;

/// <summary>
/// torchvision's ToTensor then Normalize on 8-bit RGB: (v / 255 - mean[c]) / std[c], from HWC bytes
/// to CHW floats. Each value is v * Scale(c) + Shift(c), a product then a sum rounded apart (no
/// fused multiply-add), which <see cref="IBackend.NormalizeImages"/> computes bit for bit alike on
/// every backend: <see cref="Normalize"/> is its CPU twin.
/// </summary>
public sealed class Normalization(float[] mean, float[] std)
{
    public static readonly Normalization ImageNet = new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);
    /// <summary>MNIST's usual 0.1307 / 0.3081, in all three channels (the grey image is replicated).</summary>
    public static readonly Normalization Mnist = new([0.1307f, 0.1307f, 0.1307f], [0.3081f, 0.3081f, 0.3081f]);
    public static readonly Normalization FashionMnist = new([0.2860f, 0.2860f, 0.2860f], [0.3530f, 0.3530f, 0.3530f]);
    public static readonly Normalization Cifar10 = new([0.4914f, 0.4822f, 0.4465f], [0.2470f, 0.2435f, 0.2616f]);

    public float[] Mean { get; } = mean.Length == 3 && mean.All(float.IsFinite) ? mean : throw new ArgumentException("three finite channel means");
    public float[] Std { get; } = std.Length == 3 && std.All(s => s > 0 && float.IsFinite(s)) ? std : throw new ArgumentException("three positive finite channel deviations");

    /// <summary>The factor of channel <paramref name="c"/>: 1 / (255 std).</summary>
    public float Scale(int c) => 1f / (255f * Std[c]);

    /// <summary>The offset of channel <paramref name="c"/>: -mean / std.</summary>
    public float Shift(int c) => -Mean[c] / Std[c];

    /// <summary>One image: <paramref name="hwc"/> holds height x width RGB pixels, <paramref name="chw"/> gets 3 planes.</summary>
    public void Normalize(ReadOnlySpan<byte> hwc, Span<float> chw, int height, int width)
    {
        int plane = height * width;
        if (hwc.Length != 3 * plane || chw.Length != 3 * plane)
            throw new ArgumentException($"{hwc.Length} bytes and {chw.Length} floats for a 3x{height}x{width} image");
        float s0 = Scale(0), s1 = Scale(1), s2 = Scale(2), b0 = Shift(0), b1 = Shift(1), b2 = Shift(2);
        for (int i = 0; i < plane; i++)
        {
            chw[i] = hwc[3 * i] * s0 + b0;
            chw[plane + i] = hwc[3 * i + 1] * s1 + b1;
            chw[2 * plane + i] = hwc[3 * i + 2] * s2 + b2;
        }
    }
}

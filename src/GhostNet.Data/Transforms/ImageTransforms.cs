using GhostNet.Backends;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace GhostNet.Data.Transforms;

/// <summary>
/// Turns a decoded image into Size x Size RGB pixels (HWC bytes); <paramref name="rng"/> drives any
/// randomness. ToTensor and Normalize with <see cref="Normalization"/> are the backend's
/// (<see cref="IBackend.NormalizeImages"/>), so the loader hands over a quarter of the bytes; or
/// <see cref="ImageTransformExtensions.ApplyNormalized"/> makes the floats here. Every step's
/// output is checked against <see cref="ImageLimits"/> before it is made; a refusal is a
/// <see cref="BadSampleException"/> naming <paramref name="sample"/>.
/// </summary>
public interface IImageTransform
{
    int Size { get; }
    Normalization Normalization { get; }
    void Apply(Image<Rgb24> image, Random rng, Span<byte> hwc, string sample = "image");
}

public static class ImageTransformExtensions
{
    /// <summary>The transform, then ToTensor and Normalize on the CPU: a 3 x Size x Size float tensor.</summary>
    public static void ApplyNormalized(this IImageTransform transform, Image<Rgb24> image, Random rng, Span<float> chw, string sample = "image")
    {
        var hwc = new byte[3 * transform.Size * transform.Size];
        transform.Apply(image, rng, hwc, sample);
        transform.Normalization.Normalize(hwc, chw, transform.Size, transform.Size);
    }
}

/// <summary>
/// The ImageNet training pipeline: RandomResizedCrop(size, scale, ratio) with bilinear resampling,
/// RandomHorizontalFlip(p); then ToTensor and Normalize (the backend's).
/// </summary>
public sealed class TrainTransform(int size, Normalization normalization, double scaleMin = 0.08, double scaleMax = 1.0,
    double ratioMin = 3.0 / 4.0, double ratioMax = 4.0 / 3.0, double flipProbability = 0.5) : IImageTransform
{
    public int Size { get; } = size > 0 ? size : throw new ArgumentOutOfRangeException(nameof(size));
    public Normalization Normalization { get; } = normalization;

    public void Apply(Image<Rgb24> image, Random rng, Span<byte> hwc, string sample = "image")
    {
        ImageLimits.CheckAspect(sample, "RandomResizedCrop input", image.Width, image.Height);
        ImageLimits.CheckStep(sample, "RandomResizedCrop output", Size, Size);
        var box = RandomResizedCropBox.Sample(image.Height, image.Width, rng, scaleMin, scaleMax, ratioMin, ratioMax);
        bool flip = rng.NextDouble() < flipProbability;
        image.Mutate(x =>
        {
            x.Crop(new Rectangle(box.Left, box.Top, box.Width, box.Height)).Resize(Size, Size, KnownResamplers.Triangle);
            if (flip) x.Flip(FlipMode.Horizontal);
        });
        ImagePixels.CopyTo(image, hwc);
    }
}

/// <summary>
/// The ImageNet evaluation pipeline: Resize(shorter side = floor(size / cropPct)) bilinear,
/// CenterCrop(size); then ToTensor and Normalize (the backend's). cropPct 0.875 gives the classic 256 -> 224; 1.0 only
/// resizes (small images such as MNIST at 32).
/// </summary>
public sealed class EvalTransform(int size, Normalization normalization, double cropPct = 0.875) : IImageTransform
{
    public int Size { get; } = size > 0 ? size : throw new ArgumentOutOfRangeException(nameof(size));
    public int ResizeTo { get; } = (int)Math.Floor(size / cropPct);
    public Normalization Normalization { get; } = normalization;

    public void Apply(Image<Rgb24> image, Random rng, Span<byte> hwc, string sample = "image")
    {
        // The aspect check first: it also keeps ShorterSide's longer side inside an int.
        ImageLimits.CheckAspect(sample, "Resize input", image.Width, image.Height);
        var (h, w) = RandomResizedCropBox.ShorterSide(image.Height, image.Width, ResizeTo);
        ImageLimits.CheckStep(sample, $"Resize({ResizeTo})", w, h);
        ImageLimits.CheckStep(sample, $"CenterCrop({Size})", Size, Size);
        var box = RandomResizedCropBox.Center(h, w, Size, Size);
        image.Mutate(x =>
        {
            if (h != image.Height || w != image.Width) x.Resize(w, h, KnownResamplers.Triangle);
            x.Crop(new Rectangle(box.Left, box.Top, box.Width, box.Height));
        });
        ImagePixels.CopyTo(image, hwc);
    }
}

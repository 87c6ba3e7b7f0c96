namespace GhostNet.Data.Transforms;

/// <summary>
/// Bounds on the images a pipeline makes, checked after every step and not only on the decoded
/// file: torchvision's Resize(shorter side) of a 100000x1 image asks for 25,600,000x256 pixels, so a
/// 373-byte PNG could exhaust memory at validation. Beyond <see cref="MaxAspectRatio"/> no crop
/// of a classifier's square input means anything; <see cref="MaxStepPixels"/> keeps every
/// intermediate image under 48 MiB of RGB.
/// </summary>
public static class ImageLimits
{
    /// <summary>The longer side may be at most 64 times the shorter (64:1).</summary>
    public const int MaxAspectRatio = 64;
    /// <summary>16 MP for any intermediate image (a 64:1 image resized to 256 is 4 MP).</summary>
    public const long MaxStepPixels = 16L << 20;

    /// <summary>The shape check for an input image (its pixel count is the decoder's business).</summary>
    public static void CheckAspect(string sample, string step, long width, long height)
    {
        if (width <= 0 || height <= 0) throw new BadSampleException(sample, $"{step}: {width}x{height} pixels");
        long longer = Math.Max(width, height), shorter = Math.Min(width, height);
        if (longer > MaxAspectRatio * shorter)
            throw new BadSampleException(sample, $"{step}: {width}x{height} pixels, aspect ratio beyond the limit {MaxAspectRatio}:1");
    }

    /// <summary>The check for an image a step is about to make: its shape and its pixel count.</summary>
    public static void CheckStep(string sample, string step, long width, long height)
    {
        CheckAspect(sample, step, width, height);
        if (width * height > MaxStepPixels)
            throw new BadSampleException(sample, $"{step} would make {width}x{height} pixels, limit {MaxStepPixels >> 20} MP per step");
    }
}

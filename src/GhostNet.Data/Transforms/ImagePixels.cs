using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Data.Transforms;

/// <summary>An image's pixels as the backends take them: height x width x RGB bytes, row by row.</summary>
public static class ImagePixels
{
    public static void CopyTo(Image<Rgb24> image, Span<byte> hwc)
    {
        if (hwc.Length != 3 * image.Width * image.Height) throw new ArgumentException($"{hwc.Length} bytes for a {image.Width}x{image.Height} RGB image");
        image.CopyPixelDataTo(hwc);
    }
}

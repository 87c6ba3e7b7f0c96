namespace GhostNet.Data.Transforms;

/// <summary>A crop in pixels, (top, left) corner first, as torchvision's functional.crop takes it.</summary>
public readonly record struct CropBox(int Top, int Left, int Height, int Width);

/// <summary>
/// The box sampling of torchvision's RandomResizedCrop.get_params: up to 10 draws of an area
/// fraction in <c>scale</c> and a log-uniform aspect ratio in <c>ratio</c>, rounded half to even as
/// Python's round(); the first that fits is placed uniformly; otherwise the central crop with the
/// ratio clamped to the allowed range.
/// </summary>
public static class RandomResizedCropBox
{
    public static CropBox Sample(int height, int width, Random rng, double scaleMin = 0.08, double scaleMax = 1.0,
        double ratioMin = 3.0 / 4.0, double ratioMax = 4.0 / 3.0)
    {
        double area = (double)height * width;
        double logMin = Math.Log(ratioMin), logMax = Math.Log(ratioMax);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * (scaleMin + (scaleMax - scaleMin) * rng.NextDouble());
            double aspect = Math.Exp(logMin + (logMax - logMin) * rng.NextDouble());
            int w = (int)Math.Round(Math.Sqrt(target * aspect), MidpointRounding.ToEven);
            int h = (int)Math.Round(Math.Sqrt(target / aspect), MidpointRounding.ToEven);
            if (w > 0 && w <= width && h > 0 && h <= height)
                return new CropBox(rng.Next(0, height - h + 1), rng.Next(0, width - w + 1), h, w);
        }
        double inRatio = (double)width / height;
        int cw, ch;
        if (inRatio < ratioMin) { cw = width; ch = (int)Math.Round(cw / ratioMin, MidpointRounding.ToEven); }
        else if (inRatio > ratioMax) { ch = height; cw = (int)Math.Round(ch * ratioMax, MidpointRounding.ToEven); }
        else { cw = width; ch = height; }
        return new CropBox((height - ch) / 2, (width - cw) / 2, ch, cw);
    }

    /// <summary>torchvision's CenterCrop box: offsets int(round((size - crop) / 2)).</summary>
    public static CropBox Center(int height, int width, int cropHeight, int cropWidth) =>
        new((int)Math.Round((height - cropHeight) / 2.0, MidpointRounding.ToEven),
            (int)Math.Round((width - cropWidth) / 2.0, MidpointRounding.ToEven), cropHeight, cropWidth);

    /// <summary>torchvision's Resize(int): the shorter side becomes <paramref name="size"/>, the longer int(size * long / short).</summary>
    public static (int Height, int Width) ShorterSide(int height, int width, int size) =>
        height <= width ? (size, (int)((long)size * width / height)) : ((int)((long)size * height / width), size);
}

using GhostNet.Data.Transforms;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Data;

/// <summary>
/// Decodes JPEG and PNG files defensively (ImageSharp 2.1.13): only those two formats are
/// enabled; metadata (ICC, EXIF, XMP) is not parsed; the header is identified first and images
/// declaring more than <see cref="MaxPixels"/>, or an aspect ratio beyond
/// <see cref="ImageLimits.MaxAspectRatio"/>:1, are refused before any pixel buffer exists; the
/// file's own completeness signals are checked (<see cref="PngStructure"/>: chunks, CRCs, the
/// whole zlib stream; <see cref="JpegStructure"/>: the marker structure, which cannot see a cut
/// inside entropy-coded data), because ImageSharp decodes a truncated file silently with a grey or
/// black bottom; allocations are capped.
/// Every refusal is a <see cref="BadSampleException"/> naming the file and the reason.
/// </summary>
public sealed class SafeImageDecoder
{
    public const long DefaultMaxPixels = 64L << 20;
    private const long MaxFileBytes = 256L << 20;

    private readonly Configuration _configuration;

    public SafeImageDecoder(long maxPixels = DefaultMaxPixels)
    {
        MaxPixels = maxPixels;
        _configuration = new Configuration(new JpegConfigurationModule(), new PngConfigurationModule())
        {
            MemoryAllocator = MemoryAllocator.Create(new MemoryAllocatorOptions { AllocationLimitMegabytes = 512 }),
        };
        _configuration.ImageFormatsManager.SetDecoder(JpegFormat.Instance, new JpegDecoder { IgnoreMetadata = true });
        _configuration.ImageFormatsManager.SetDecoder(PngFormat.Instance, new PngDecoder { IgnoreMetadata = true });
    }

    public long MaxPixels { get; }

    public Image<Rgb24> Decode(string path)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new BadSampleException(path, "file not found");
            if (info.Length == 0) throw new BadSampleException(path, "empty file");
            if (info.Length > MaxFileBytes) throw new BadSampleException(path, $"{info.Length:N0} bytes, limit {MaxFileBytes:N0}");
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException and not BadSampleException or UnauthorizedAccessException)
        {
            throw new BadSampleException(path, $"cannot be read ({e.Message})", e);
        }
        return Decode(path, bytes);
    }

    public Image<Rgb24> Decode(string name, byte[] bytes)
    {
        IImageInfo? info;
        IImageFormat? format;
        try
        {
            info = Image.Identify(_configuration, bytes, out format);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Not only ImageSharp's own exceptions: 2.1.13 throws NullReferenceException and
            // ArgumentOutOfRangeException on some cut or garbled headers, and one bad file must
            // not stop an epoch.
            throw new BadSampleException(name, $"unreadable image header ({Describe(e)})", e);
        }
        if (info is null || format is null) throw new BadSampleException(name, "not a JPEG or PNG image");
        long pixels = (long)info.Width * info.Height;
        if (info.Width <= 0 || info.Height <= 0) throw new BadSampleException(name, $"declares {info.Width}x{info.Height} pixels");
        if (pixels > MaxPixels)
            throw new BadSampleException(name, $"declares {info.Width}x{info.Height} pixels, limit {MaxPixels / (1 << 20)} MP");
        ImageLimits.CheckAspect(name, "declares", info.Width, info.Height);
        string? problem = format == JpegFormat.Instance ? JpegStructure.Problem(bytes) : PngStructure.Problem(bytes);
        if (problem is not null) throw new BadSampleException(name, problem);
        try
        {
            return Image.Load<Rgb24>(_configuration, bytes);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new BadSampleException(name, $"corrupt {format.Name} ({Describe(e)})", e);
        }
    }

    /// <summary>ImageSharp's messages name the problem; a runtime exception's does not, so its type is kept.</summary>
    private static string Describe(Exception e) =>
        e is ImageFormatException or InvalidImageContentException or NotSupportedException or InvalidMemoryOperationException
            ? e.Message : $"{e.GetType().Name}: {e.Message}";
}

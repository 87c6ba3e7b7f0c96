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
/// declaring more than <see cref="MaxPixels"/> are refused before any pixel buffer exists; a
/// JPEG without its end-of-image marker or a PNG without IEND (a truncated file, which would
/// otherwise decode silently with a grey or black bottom) is refused; allocations are capped.
/// Every refusal is a <see cref="BadSampleException"/> naming the file and the reason.
/// </summary>
public sealed class SafeImageDecoder
{
    public const long DefaultMaxPixels = 64L << 20;
    private const long MaxFileBytes = 256L << 20;
    private static readonly byte[] PngEnd = "IEND"u8.ToArray();

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
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
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
        catch (Exception e) when (e is ImageFormatException or InvalidImageContentException or NotSupportedException or InvalidMemoryOperationException)
        {
            throw new BadSampleException(name, $"unreadable image header ({e.Message})", e);
        }
        if (info is null || format is null) throw new BadSampleException(name, "not a JPEG or PNG image");
        long pixels = (long)info.Width * info.Height;
        if (info.Width <= 0 || info.Height <= 0) throw new BadSampleException(name, $"declares {info.Width}x{info.Height} pixels");
        if (pixels > MaxPixels)
            throw new BadSampleException(name, $"declares {info.Width}x{info.Height} pixels, limit {MaxPixels / (1 << 20)} MP");
        if (format == JpegFormat.Instance && !EndsWithMarker(bytes, [0xFF, 0xD9]))
            throw new BadSampleException(name, "truncated JPEG (no end-of-image marker)");
        if (format == PngFormat.Instance && !EndsWithMarker(bytes, PngEnd))
            throw new BadSampleException(name, "truncated PNG (no IEND chunk)");
        try
        {
            return Image.Load<Rgb24>(_configuration, bytes);
        }
        catch (Exception e) when (e is ImageFormatException or InvalidImageContentException or NotSupportedException or InvalidMemoryOperationException)
        {
            throw new BadSampleException(name, $"corrupt {format.Name} ({e.Message})", e);
        }
    }

    /// <summary>The marker within the last 64 bytes (encoders may pad after it).</summary>
    private static bool EndsWithMarker(byte[] bytes, ReadOnlySpan<byte> marker)
    {
        int start = Math.Max(0, bytes.Length - 64);
        return bytes.AsSpan(start).LastIndexOf(marker) >= 0;
    }
}

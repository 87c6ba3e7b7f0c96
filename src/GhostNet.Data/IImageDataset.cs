using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Data;

/// <summary>A labelled image data set whose samples decode to RGB images on demand.</summary>
public interface IImageDataset
{
    int Count { get; }
    IReadOnlyList<string> Classes { get; }
    int Label(int index);
    /// <summary>Decodes sample <paramref name="index"/>; a sample that cannot be read throws <see cref="BadSampleException"/>.</summary>
    Image<Rgb24> Load(int index);
    /// <summary>Where the sample comes from, for messages: a path, or file[index].</summary>
    string Describe(int index);
}

/// <summary>
/// A sample that is corrupt, truncated, too large or not an image; the loader skips or replaces it
/// with a warning unless told to stop. It is an <see cref="IOException"/> (a file that cannot be
/// read, not a bug; <see cref="InvalidDataException"/> is sealed), so a caller that turns I/O
/// errors into a one-line message covers it too.
/// </summary>
public sealed class BadSampleException(string sample, string reason, Exception? inner = null)
    : IOException($"{sample}: {reason}", inner)
{
    public string Sample { get; } = sample;
    public string Reason { get; } = reason;
}

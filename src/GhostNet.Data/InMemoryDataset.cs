namespace GhostNet.Data;

/// <summary>Images already decoded and normalised, CHW float, with integer labels.</summary>
public sealed class InMemoryDataset
{
    private readonly float[] _pixels;
    private readonly int[] _labels;

    public InMemoryDataset(float[] pixels, int[] labels, int channels, int height, int width, IReadOnlyList<string> classes)
    {
        long perImage = (long)channels * height * width;
        if (pixels.Length != perImage * labels.Length)
            throw new ArgumentException($"{pixels.Length} pixel values for {labels.Length} images of {channels}x{height}x{width}");
        if (labels.Any(l => l < 0 || l >= classes.Count)) throw new ArgumentException($"a label lies outside the {classes.Count} classes");
        _pixels = pixels;
        _labels = labels;
        Channels = channels;
        Height = height;
        Width = width;
        Classes = classes;
    }

    public int Count => _labels.Length;
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public IReadOnlyList<string> Classes { get; }
    public int ImageSize => Channels * Height * Width;

    /// <summary>Copies the samples at <paramref name="indices"/> into caller-owned batch buffers.</summary>
    public void CopyBatch(ReadOnlySpan<int> indices, Span<float> images, Span<int> labels)
    {
        int size = ImageSize;
        for (int i = 0; i < indices.Length; i++)
        {
            _pixels.AsSpan(indices[i] * size, size).CopyTo(images.Slice(i * size, size));
            labels[i] = _labels[indices[i]];
        }
    }
}

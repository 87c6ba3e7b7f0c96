namespace GhostNet.Data;

/// <summary>One batch in a buffer the loader owns; it is valid until the enumerator moves on.</summary>
public sealed class Batch(int capacity, int imageSize)
{
    /// <summary>The images' pixels, HWC RGB bytes, one image after another (imageSize bytes each).</summary>
    public byte[] Pixels { get; } = new byte[(long)capacity * imageSize];
    public int[] Labels { get; } = new int[capacity];
    public int Count { get; internal set; }
    public int Index { get; internal set; }
    /// <summary>Samples of this batch's positions that could not be read: left out (Skip) or replaced (Replace).</summary>
    public int Skipped { get; internal set; }
    public ReadOnlySpan<byte> PixelSpan => Pixels.AsSpan(0, Count * (Pixels.Length / Labels.Length));
    public ReadOnlySpan<int> LabelSpan => Labels.AsSpan(0, Count);
}

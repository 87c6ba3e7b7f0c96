namespace GhostNet.Backends;

/// <summary>Square kernel, equal stride and zero padding in both directions, as GhostNet uses.</summary>
public readonly record struct ConvGeometry(int Kernel, int Stride, int Padding)
{
    public int OutputSize(int input) => (input + 2 * Padding - Kernel) / Stride + 1;

    /// <summary>"Same" padding of an odd kernel, k / 2, as the Ghost module and the seed use.</summary>
    public static ConvGeometry Same(int kernel, int stride = 1) => new(kernel, stride, kernel / 2);

    public override string ToString() => $"k{Kernel} s{Stride} p{Padding}";
}

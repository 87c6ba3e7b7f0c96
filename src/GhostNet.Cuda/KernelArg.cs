namespace GhostNet.Cuda;

/// <summary>
/// One kernel argument by value: its bits and size. Conversions from the C# types the kernels
/// take keep a launch site readable and, with params spans, allocation-free.
/// </summary>
internal readonly struct KernelArg
{
    public readonly ulong Bits;

    private KernelArg(ulong bits) => Bits = bits;

    public static implicit operator KernelArg(int v) => new((uint)v);
    public static implicit operator KernelArg(long v) => new((ulong)v);
    public static implicit operator KernelArg(ulong v) => new(v);
    public static implicit operator KernelArg(float v) => new(BitConverter.SingleToUInt32Bits(v));
}

namespace GhostNet.Backends;

/// <summary>
/// How a storage's elements are held in backend memory. Parameters, their gradients, momentum,
/// batch-norm statistics, labels and every reduction are always <see cref="Float32"/>;
/// activations and their gradients are the backend's <see cref="IBackend.ActivationType"/>
/// (CUDA with <c>--precision bf16</c>: <see cref="BFloat16"/>, computed in fp32 inside each kernel).
/// Offsets and lengths are counted in elements whatever their size.
/// </summary>
public enum ElementType
{
    Float32,
    BFloat16,
}

public static class ElementTypes
{
    public static int Bytes(this ElementType type) => type == ElementType.BFloat16 ? 2 : 4;

    public static string Name(this ElementType type) => type == ElementType.BFloat16 ? "bf16" : "fp32";
}

/// <summary>
/// bfloat16, the top half of an IEEE float: the host's twin of common.cuh's <c>bf16</c> (the
/// emulator's tests compare the two bit for bit). Rounding is to nearest, ties to even, as
/// PyTorch's c10::BFloat16 and the hardware's cvt.rn.bf16.f32; every NaN becomes 0x7FC0, as
/// PyTorch's does (a NaN's low payload bits could otherwise round it into an infinity).
/// </summary>
public static class BFloat16
{
    public static ushort FromFloat(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return 0x7FC0;
        bits += 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)(bits >> 16);
    }

    public static float ToFloat(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>The float that <paramref name="value"/> becomes when stored as bf16 and read back.</summary>
    public static float Round(float value) => ToFloat(FromFloat(value));

    public static void FromFloats(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        for (int i = 0; i < source.Length; i++) destination[i] = FromFloat(source[i]);
    }

    public static void ToFloats(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        for (int i = 0; i < source.Length; i++) destination[i] = ToFloat(source[i]);
    }
}

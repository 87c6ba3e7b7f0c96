using System.Numerics;
using System.Runtime.InteropServices;

namespace GhostNet.Graph;

/// <summary>
/// NaN and infinity tests over raw tensor bytes. A float is not finite exactly when its exponent
/// bits are all ones, so each dtype is one mask test per element, with no conversion.
/// </summary>
internal static class NonFinite
{
    public static bool Any(string dtype, ReadOnlySpan<byte> data) => dtype switch
    {
        "F32" => AnyMasked(MemoryMarshal.Cast<byte, uint>(data), 0x7F80_0000u),
        "F64" => AnyMasked(MemoryMarshal.Cast<byte, ulong>(data), 0x7FF0_0000_0000_0000ul),
        "F16" => AnyMasked(MemoryMarshal.Cast<byte, ushort>(data), (ushort)0x7C00),
        "BF16" => AnyMasked(MemoryMarshal.Cast<byte, ushort>(data), (ushort)0x7F80),
        _ => false,
    };

    public static bool Any(ReadOnlySpan<float> values) => AnyMasked(MemoryMarshal.Cast<float, uint>(values), 0x7F80_0000u);

    private static bool AnyMasked<T>(ReadOnlySpan<T> bits, T exponent) where T : unmanaged, IBinaryInteger<T>
    {
        foreach (T b in bits)
            if ((b & exponent) == exponent) return true;
        return false;
    }
}

using System.Buffers.Binary;

namespace GhostNet.Graph;

/// <summary>One tensor of a safetensors file: its dtype (F32, I64, ...), shape and raw little-endian bytes.</summary>
public sealed record SafetensorsTensor(string Name, string DType, long[] Shape, byte[] Data)
{
    public long ElementCount => Shape.Aggregate(1L, (a, d) => a * d);

    public float[] AsFloats()
    {
        if (DType != "F32") throw new InvalidDataException($"tensor '{Name}' is {DType}, expected F32");
        if (Data.Length != ElementCount * sizeof(float)) throw new InvalidDataException($"tensor '{Name}': {Data.Length} bytes do not hold F32{Format(Shape)}");
        var values = new float[ElementCount];
        Buffer.BlockCopy(Data, 0, values, 0, Data.Length);
        return values;
    }

    public long AsInt64Scalar()
    {
        if (DType != "I64" || ElementCount != 1 || Data.Length != 8) throw new InvalidDataException($"tensor '{Name}' is {DType}{Format(Shape)}, expected an I64 scalar");
        return BinaryPrimitives.ReadInt64LittleEndian(Data);
    }

    /// <summary>Whether a floating-point tensor (F32, F64, F16, BF16) holds a NaN or an infinity; other dtypes never do.</summary>
    public bool HoldsNonFinite() => NonFinite.Any(DType, Data);

    public static SafetensorsTensor Floats(string name, long[] shape, ReadOnlySpan<float> values)
    {
        var data = new byte[values.Length * sizeof(float)];
        values.CopyTo(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(data.AsSpan()));
        return new SafetensorsTensor(name, "F32", shape, data);
    }

    public static SafetensorsTensor Int64Scalar(string name, long value)
    {
        var data = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(data, value);
        return new SafetensorsTensor(name, "I64", [], data);
    }

    internal static string Format(long[] shape) => "[" + string.Join(", ", shape) + "]";
}

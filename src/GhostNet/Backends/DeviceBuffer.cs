namespace GhostNet.Backends;

/// <summary>Memory owned by a backend, counted in elements of <see cref="Type"/> (4-byte float or int, or 2-byte bf16).</summary>
public abstract class DeviceBuffer : IDisposable
{
    protected DeviceBuffer(long length, ElementType type = ElementType.Float32)
    {
        Length = length;
        Type = type;
    }

    public long Length { get; }
    public ElementType Type { get; }

    public abstract void Dispose();
}

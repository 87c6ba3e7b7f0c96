namespace GhostNet.Backends;

/// <summary>Memory owned by a backend, counted in 4-byte elements (float or int).</summary>
public abstract class DeviceBuffer : IDisposable
{
    protected DeviceBuffer(long length) => Length = length;

    public long Length { get; }

    public abstract void Dispose();
}

using System.Runtime.InteropServices;
using GhostNet.Backends;

namespace GhostNet.Cpu;

/// <summary>Zeroed, 64-byte aligned native memory, outside the GC heap so that a training step allocates nothing managed.</summary>
internal sealed unsafe class CpuBuffer : DeviceBuffer
{
    private float* _pointer;

    public CpuBuffer(long length) : base(length)
    {
        nuint bytes = checked((nuint)length * sizeof(float));
        _pointer = (float*)NativeMemory.AlignedAlloc(bytes, 64);
        if (_pointer is null) throw new OutOfMemoryException($"could not allocate {bytes} bytes of host memory");
        NativeMemory.Clear(_pointer, bytes);
    }

    public float* Pointer => _pointer is not null ? _pointer : throw new ObjectDisposedException(nameof(CpuBuffer));

    public override void Dispose()
    {
        if (_pointer is null) return;
        NativeMemory.AlignedFree(_pointer);
        _pointer = null;
        GC.SuppressFinalize(this);
    }

    ~CpuBuffer() => Dispose();
}

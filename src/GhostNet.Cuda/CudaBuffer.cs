using GhostNet.Backends;
using GhostNet.Cuda.Interop;

namespace GhostNet.Cuda;

/// <summary>
/// Device memory of 4-byte (or bf16: 2-byte) elements, zeroed at allocation like the CPU backend's; or, for a
/// backend that only models launches (<see cref="CudaBackend.ForModel"/>), an address range that
/// no memory backs and nothing ever dereferences.
/// </summary>
internal sealed class CudaBuffer : DeviceBuffer
{
    private ulong _pointer;
    private readonly CudaBackend? _backend; // whose context a free needs current; null: not ours to free

    /// <summary>An address range without memory, or (<paramref name="borrowed"/>) memory its owner frees.</summary>
    public CudaBuffer(long length, ulong address, bool borrowed = false, ElementType type = ElementType.Float32) : base(length, type)
    {
        _pointer = address; // nothing to free either way: _backend stays null
    }

    public CudaBuffer(long length, CudaBackend backend, ElementType type = ElementType.Float32) : base(length, type)
    {
        _backend = backend;
        backend.MakeCurrent();
        var stream = backend.Stream;
        nuint bytes = checked(((nuint)length * (nuint)type.Bytes() + 3) / 4 * 4); // whole words, as the zeroing writes them
        int result = Driver.cuMemAlloc(out _pointer, bytes);
        if (result == 2)
        {
            Driver.cuMemGetInfo(out nuint free, out nuint total);
            throw new CudaException($"out of GPU memory allocating {bytes / (1 << 20):N0} MiB ({free / (1 << 20):N0} of {total / (1 << 20):N0} MiB free); use a smaller batch", result);
        }
        CudaException.Check(result, "cuMemAlloc", $"of {bytes} bytes");
        CudaException.Check(Driver.cuMemsetD32Async(_pointer, 0, bytes / 4, stream), "cuMemsetD32Async");
        CudaException.Check(Driver.cuStreamSynchronize(stream), "cuStreamSynchronize", "after zeroing a new buffer");
    }

    public ulong Pointer => _pointer != 0 ? _pointer : throw new ObjectDisposedException(nameof(CudaBuffer));

    public override void Dispose()
    {
        if (_pointer == 0) return;
        if (_backend is not null)
        {
            _backend.TryMakeCurrent();
            Driver.cuMemFree(_pointer);
        }
        _pointer = 0;
    }
}

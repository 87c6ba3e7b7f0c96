using System.Runtime.InteropServices;
using GhostNet.Backends;

namespace GhostNet.Models;

/// <summary>
/// Uploads through two stagings used in turn: the host fills one while the copy from the other may
/// still be queued behind the step before, so it waits for neither. Into one tensor, in order with
/// the launches; or, overlapped, into two tensors in turn, each copy beside the work before it
/// (the step that reads the other tensor) and after the last reader of its own, which the caller
/// marks with <see cref="Consumed"/>.
/// </summary>
internal sealed class StagedUpload : IDisposable
{
    private readonly HostStaging[] _slots;
    private int _uploads;

    public StagedUpload(IBackend backend, Tensor destination) =>
        _slots = [backend.CreateStaging(destination), backend.CreateStaging(destination)];

    public StagedUpload(IBackend backend, Tensor first, Tensor second)
    {
        _slots = [backend.CreateStaging(first, overlapped: true), null!];
        try
        {
            _slots[1] = backend.CreateStaging(second, overlapped: true);
        }
        catch
        {
            _slots[0].Dispose();
            throw;
        }
    }

    /// <summary>Queues the copy of <paramref name="values"/>; returns the tensor they land in.</summary>
    public Tensor Upload<T>(ReadOnlySpan<T> values) where T : unmanaged
    {
        var slot = _slots[_uploads & 1];
        var destination = slot.Destination;
        if (destination.Storage.Type == ElementType.BFloat16)
        {
            // Floats into bf16 activations (a float image batch): rounded here, as the device would.
            var floats = MemoryMarshal.Cast<T, float>(values);
            if (typeof(T) != typeof(float) || floats.Length != destination.Count)
                throw new ArgumentException($"upload of {values.Length} {typeof(T).Name} values into {destination} ({destination.Count} bf16 elements)");
            BFloat16.FromFloats(floats, MemoryMarshal.Cast<byte, ushort>(slot.Write()));
            slot.Start();
            _uploads++;
            return destination;
        }
        // Bytes fill the destination's elements but the last, which may be partly padding.
        var bytes = MemoryMarshal.AsBytes(values);
        long room = destination.Count * 4;
        if (bytes.Length > room || bytes.Length <= room - 4) throw new ArgumentException($"upload of {bytes.Length} bytes into {destination} ({room} bytes)");
        bytes.CopyTo(slot.Write());
        slot.Start();
        _uploads++; // a refused upload leaves the turn where it was
        return destination;
    }

    /// <summary>The launches so far are the last to read the latest upload's tensor (<see cref="HostStaging.Consumed"/>).</summary>
    public void Consumed()
    {
        if (_uploads > 0) _slots[(_uploads - 1) & 1].Consumed();
    }

    public void Dispose()
    {
        foreach (var slot in _slots) slot?.Dispose();
    }
}

using System.Runtime.InteropServices;
using GhostNet.Backends;

namespace GhostNet.Models;

/// <summary>
/// Uploads into one tensor through two stagings used in turn: the host fills one while the copy
/// from the other may still be queued behind the step before, so it waits for neither.
/// </summary>
internal sealed class StagedUpload(IBackend backend, Tensor destination) : IDisposable
{
    private readonly HostStaging[] _slots = [backend.CreateStaging(destination), backend.CreateStaging(destination)];
    private int _uploads;

    public void Upload<T>(ReadOnlySpan<T> values) where T : unmanaged
    {
        // Bytes fill the destination's elements but the last, which may be partly padding.
        var bytes = MemoryMarshal.AsBytes(values);
        long room = destination.Count * 4;
        if (bytes.Length > room || bytes.Length <= room - 4) throw new ArgumentException($"upload of {bytes.Length} bytes into {destination} ({room} bytes)");
        var slot = _slots[_uploads++ & 1];
        bytes.CopyTo(slot.Write());
        slot.Start();
    }

    public void Dispose()
    {
        foreach (var slot in _slots) slot.Dispose();
    }
}

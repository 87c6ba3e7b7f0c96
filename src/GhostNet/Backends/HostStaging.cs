namespace GhostNet.Backends;

/// <summary>
/// Host memory a tensor is uploaded from without the host waiting: <see cref="Write"/> gives the
/// bytes to fill (once the copy queued from them before has read them), <see cref="Start"/>
/// queues their copy into <see cref="Destination"/>, ordered with the launches around it, and
/// returns at once. Page-locked memory on CUDA (a copy from pageable memory makes the host wait);
/// the CPU backend copies at Start. A plan uploads each batch this way, into one of two stagings
/// in turn, so the host fills the next batch while the last one's copy is still queued.
/// </summary>
public abstract class HostStaging : IDisposable
{
    /// <summary>The tensor the bytes are copied into (contiguous).</summary>
    public abstract Tensor Destination { get; }

    /// <summary>The bytes to fill (Destination's elements: 4 bytes each, 2 for bf16), free of any copy still reading them.</summary>
    public abstract Span<byte> Write();

    /// <summary>
    /// Queues the copy of the bytes into <see cref="Destination"/>: after the work launched so far,
    /// or, for an overlapped staging (<see cref="IBackend.CreateStaging"/>), beside it, after only
    /// the work <see cref="Consumed"/> marked. The work launched after it sees the bytes either way.
    /// </summary>
    public abstract void Start();

    /// <summary>
    /// Marks the work launched so far as the last to read <see cref="Destination"/> before the next
    /// copy into it: an overlapped staging's next copy waits for that work and nothing else. Call it
    /// after the launches that read each upload (nothing to do where copies are in order).
    /// </summary>
    public virtual void Consumed() { }

    public abstract void Dispose();
}

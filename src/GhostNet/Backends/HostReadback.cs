namespace GhostNet.Backends;

/// <summary>
/// A small tensor's copy in host memory that the host need not wait for as it is made: <see cref="Start"/>
/// queues the copy after the work launched so far and returns, <see cref="Wait"/> blocks until it
/// has landed and gives it. A training step reads its results this way one step late, so the host
/// launches the next step while the GPU finishes this one. Page-locked memory on CUDA (the only
/// host memory a device copies into while the host runs on); the CPU backend copies at Start.
/// </summary>
public abstract class HostReadback : IDisposable
{
    private bool _started;

    /// <summary>The tensor copied.</summary>
    public abstract Tensor Source { get; }

    /// <summary>Queues the copy of <see cref="Source"/> as the work launched so far leaves it.</summary>
    public void Start()
    {
        Queue();
        _started = true;
    }

    /// <summary>The copy the last <see cref="Start"/> queued, once it has landed (the words stay valid until the next Start).</summary>
    public ReadOnlySpan<int> Wait()
    {
        if (!_started) throw new InvalidOperationException($"a readback of {Source} was waited for before it was started");
        return Land();
    }

    protected abstract void Queue();
    protected abstract ReadOnlySpan<int> Land();
    public abstract void Dispose();
}

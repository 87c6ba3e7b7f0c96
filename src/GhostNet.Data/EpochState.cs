using System.Runtime.ExceptionServices;

namespace GhostNet.Data;

/// <summary>
/// Hand-over between workers and the consumer: slot s holds batch b when b % ring == s. A worker
/// that fails a batch hands over the exception in place of the batch, so the consumer receives
/// exactly the batches before it and then the exception itself, rethrown on its own thread with
/// the worker's stack (not wrapped, and never crashing the process from a worker thread).
/// </summary>
internal sealed class EpochState(int ring)
{
    private readonly object _gate = new();
    private readonly int[] _turn = Enumerable.Range(0, ring).ToArray(); // the batch each slot may take next
    private readonly int[] _ready = Enumerable.Repeat(-1, ring).ToArray();
    private readonly ExceptionDispatchInfo?[] _failed = new ExceptionDispatchInfo?[ring];
    private int _next = -1;
    private bool _aborted;

    public int NextBatch() => Interlocked.Increment(ref _next);

    public bool WaitFree(int b, int slot, CancellationToken cancel)
    {
        lock (_gate)
        {
            while (_turn[slot] != b && !_aborted && !cancel.IsCancellationRequested) Monitor.Wait(_gate, 100);
            return !_aborted && !cancel.IsCancellationRequested;
        }
    }

    public void MarkReady(int b, int slot, Exception? error = null)
    {
        lock (_gate)
        {
            _failed[slot] = error is null ? null : ExceptionDispatchInfo.Capture(error);
            _ready[slot] = b;
            Monitor.PulseAll(_gate);
        }
    }

    public void WaitReady(int b, int slot, CancellationToken cancel)
    {
        lock (_gate)
        {
            while (_ready[slot] != b)
            {
                cancel.ThrowIfCancellationRequested();
                Monitor.Wait(_gate, 100);
            }
            _failed[slot]?.Throw();
        }
    }

    public void Release(int b, int slot)
    {
        lock (_gate)
        {
            _turn[slot] = b + ring;
            Monitor.PulseAll(_gate);
        }
    }

    public void Abort()
    {
        lock (_gate)
        {
            _aborted = true;
            Monitor.PulseAll(_gate);
        }
    }
}

using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Models;

/// <summary>
/// Calls a plan makes again and again (a training step, an eval forward): run call by call once,
/// which sizes every workspace they use, then captured as one graph where the backend can
/// (<see cref="ICapturingBackend"/>) and replayed from then on. A capture that fails is told once
/// and the calls run call by call; one that went stale (the backend moved memory it uses, or a
/// value baked into its launches changed) is dropped and made again.
/// </summary>
internal sealed class ReplayedCalls(IBackend backend, ParameterSet state, Action calls, string what, Action<string>? note) : IDisposable
{
    private CapturedStep? _graph;
    private bool _warm; // the calls ran call by call since the graph was last made or went stale
    private bool _disposed; // its plan freed it, or a later trainer on the plan replaced it

    /// <summary>Whether the calls may be captured at all; false drops the graph and runs them call by call from then on.</summary>
    public bool Enabled
    {
        get => _enabled;
        set
        {
            if (!value) Drop();
            _enabled = value;
        }
    }

    private bool _enabled = true;

    /// <summary>Why the calls run call by call on a backend that captures (the capture failed), or null.</summary>
    public string? NotCapturedBecause { get; private set; }

    /// <summary>The launches one replay makes, or 0 while there is no graph.</summary>
    public int Launches => _graph?.Launches ?? 0;

    public void Run()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_graph is { IsCurrent: false }) Drop();
        if (_graph is null && _warm && Enabled && NotCapturedBecause is null && backend is ICapturingBackend capturing)
        {
            _graph = CapturedStep.Capture(capturing, state, calls, out string? why);
            if (_graph is null)
            {
                NotCapturedBecause = why ?? "unknown";
                note?.Invoke($"note: {what} run call by call, not as one graph: {NotCapturedBecause}");
            }
        }
        if (_graph is not null) _graph.Replay();
        else
        {
            calls();
            _warm = true;
        }
    }

    /// <summary>Drops the graph (a value its launches hold changed): the next run goes call by call, the one after captures again.</summary>
    public void Drop()
    {
        _graph?.Dispose();
        _graph = null;
        _warm = false;
    }

    public void Dispose()
    {
        Drop();
        _disposed = true;
    }
}

using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Models;

/// <summary>
/// A plan's training step captured as one graph, with what its calls do on the host: a replay
/// runs the launches, and the host's side of the step (each training batch norm's
/// num_batches_tracked, counted by C#, not by a kernel) is done again beside it.
/// </summary>
internal sealed class CapturedStep : IDisposable
{
    private readonly ICapturedCalls _calls;
    private readonly (Counter Counter, long Delta)[] _counts;

    private CapturedStep(ICapturedCalls calls, (Counter, long)[] counts) => (_calls, _counts) = (calls, counts);

    public int Launches => _calls.Launches;
    public bool IsCurrent => _calls.IsCurrent;

    /// <summary>
    /// Captures <paramref name="calls"/> on <paramref name="backend"/>, or null with the reason.
    /// Capturing runs no kernel, so the host counts it moved are put back: the step runs at its replays.
    /// </summary>
    public static CapturedStep? Capture(ICapturingBackend backend, ParameterSet state, Action calls, out string? whyNot)
    {
        var counters = state.Entries.OfType<Counter>().ToArray();
        var before = counters.Select(c => c.Value).ToArray();
        var captured = backend.Capture(calls, out whyNot);
        var counts = counters.Select((c, i) => (c, c.Value - before[i])).Where(e => e.Item2 != 0).ToArray();
        for (int i = 0; i < counters.Length; i++) counters[i].Value = before[i];
        return captured is null ? null : new CapturedStep(captured, counts);
    }

    public void Replay()
    {
        _calls.Replay();
        foreach (var (counter, delta) in _counts) counter.Value += delta;
    }

    public void Dispose() => _calls.Dispose();
}

using System.Collections.Concurrent;

namespace GhostNet.Data;

/// <summary>
/// The samples known to be unreadable, shared by the workers over the loader's life, so each bad
/// file is decoded (and reported) once and a replacement search steps over known-bad samples
/// without decoding them again: replacing k bad files costs k decodes, not k squared.
/// Badness is a property of the sample, not of who found it first, so batches stay the same
/// whatever the thread timing.
/// </summary>
internal sealed class BadSampleLedger(TextWriter? warnings)
{
    private readonly ConcurrentDictionary<int, BadSampleException> _bad = new();
    private readonly object _write = new();

    public int Count => _bad.Count;

    public BadSampleException? Known(int index) => _bad.GetValueOrDefault(index);

    /// <summary>Records a bad sample; the first to record it writes its one warning line.</summary>
    public void Add(int index, BadSampleException e)
    {
        if (!_bad.TryAdd(index, e)) return;
        lock (_write) (warnings ?? Console.Error).WriteLine($"warning: image skipped: {e.Message}");
    }

    /// <summary>The bad sample of lowest index, for a message that does not depend on timing.</summary>
    public BadSampleException? First() => _bad.IsEmpty ? null : _bad[_bad.Keys.Min()];
}

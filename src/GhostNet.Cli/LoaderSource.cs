using System.Diagnostics;
using GhostNet.Data;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>The data layer's loader seen as the trainer's batch source, timing how long the consumer waits.</summary>
internal sealed class LoaderSource(DataLoader loader) : IBatchSource
{
    private double _wait;

    public int BatchSize => loader.Options.BatchSize;
    public int BatchesPerEpoch => loader.BatchesPerEpoch;
    public IReadOnlyList<string> Classes => loader.Dataset.Classes;
    public double WaitSeconds => _wait;
    public long SkippedSamples => loader.SkippedSamples;

    public IEnumerable<HostBatch> Epoch(int epoch, CancellationToken cancel)
    {
        _wait = 0;
        using var batches = loader.Epoch(epoch, cancel).GetEnumerator();
        while (true)
        {
            var clock = Stopwatch.StartNew();
            bool more = batches.MoveNext();
            _wait += clock.Elapsed.TotalSeconds;
            if (!more) yield break;
            var b = batches.Current;
            yield return new HostBatch(b.Images.AsMemory(0, b.Count * loader.ImageSize), b.Labels.AsMemory(0, b.Count));
        }
    }
}

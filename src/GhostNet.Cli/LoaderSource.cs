using GhostNet.Data;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>The data layer's loader seen as the trainer's batch source.</summary>
internal sealed class LoaderSource(DataLoader loader) : IBatchSource
{
    public int BatchSize => loader.Options.BatchSize;
    public int BatchesPerEpoch => loader.BatchesPerEpoch;
    public IReadOnlyList<string> Classes => loader.Dataset.Classes;
    public double WaitSeconds => loader.WaitSeconds;
    public long SkippedSamples => loader.SkippedSamples;
    /// <summary>Unreadable samples left out of (or replaced in) the current or last epoch.</summary>
    public int EpochSkippedSamples => loader.EpochSkippedSamples;

    public IEnumerable<HostBatch> Epoch(int epoch, CancellationToken cancel) =>
        loader.Epoch(epoch, cancel).Select(b => HostBatch.OfPixels(b.Pixels.AsMemory(0, b.Count * loader.ImageSize), b.Labels.AsMemory(0, b.Count), loader.Normalization));
}

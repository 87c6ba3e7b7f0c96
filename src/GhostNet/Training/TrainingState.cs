namespace GhostNet.Training;

/// <summary>
/// Where a run stands, saved in every checkpoint so that --resume continues exactly: the epoch and
/// the batch within it (a run stopped by Ctrl-C resumes mid-epoch), the optimiser step, the plan's
/// step counter (it numbers the dropout masks), the best validation top-1 so far, and the
/// running sums of the current epoch.
/// </summary>
public sealed record TrainingState
{
    public int Epoch { get; init; }
    public int BatchInEpoch { get; init; }
    public long GlobalStep { get; init; }
    public long PlanStep { get; init; }
    public double BestTop1 { get; init; } = -1;
    public double EpochLossSum { get; init; }
    public long EpochTop1 { get; init; }
    public long EpochTop5 { get; init; }
    public long EpochSeen { get; init; }
    public double EpochSeconds { get; init; }
}

/// <summary>A batch of host images (N x C x H x W) and labels.</summary>
public readonly record struct HostBatch(ReadOnlyMemory<float> Images, ReadOnlyMemory<int> Labels)
{
    public int Count => Labels.Length;
}

/// <summary>What the trainer reads batches from; the data layer's loader is adapted to it by the application.</summary>
public interface IBatchSource
{
    int BatchSize { get; }
    int BatchesPerEpoch { get; }
    IReadOnlyList<string> Classes { get; }
    IEnumerable<HostBatch> Epoch(int epoch, CancellationToken cancel);
    /// <summary>Seconds the consumer has waited for data in the current (or last) epoch.</summary>
    double WaitSeconds { get; }
}

/// <summary>The training loss was NaN or infinite: the step was not applied.</summary>
public sealed class NonFiniteLossException(int epoch, int batch, float loss)
    : Exception($"the training loss became {loss} at epoch {epoch}, batch {batch}; the step was not applied (lower --lr, or check the data)")
{
    public float Loss { get; } = loss;
}

using GhostNet.Backends;
using System.Text.Json.Serialization;

namespace GhostNet.Training;

/// <summary>
/// Where a run stands, saved in every checkpoint so that --resume continues exactly: the epoch and
/// the batch within it (a run stopped by Ctrl-C resumes mid-epoch), the optimiser step, the plan's
/// step counter (it numbers the dropout masks), the best validation top-1 so far, and the
/// running sums of the current epoch.
/// </summary>
public sealed record TrainingState
{
    // Required in a checkpoint's JSON: a missing field would silently restart a count at zero.
    [JsonRequired] public int Epoch { get; init; }
    [JsonRequired] public int BatchInEpoch { get; init; }
    [JsonRequired] public long GlobalStep { get; init; }
    [JsonRequired] public long PlanStep { get; init; }
    /// <summary>The best validation top-1 in percent, or -1 before the first validation.</summary>
    [JsonRequired] public double BestTop1 { get; init; } = -1;
    [JsonRequired] public double EpochLossSum { get; init; }
    [JsonRequired] public long EpochTop1 { get; init; }
    [JsonRequired] public long EpochTop5 { get; init; }
    [JsonRequired] public long EpochSeen { get; init; }
    [JsonRequired] public double EpochSeconds { get; init; }

    /// <summary>The first field that cannot come from a run, as "Field: what is wrong", or null.</summary>
    public string? Problem()
    {
        if (Epoch < 0) return $"Epoch {Epoch} is negative";
        if (BatchInEpoch < 0) return $"BatchInEpoch {BatchInEpoch} is negative";
        if (GlobalStep < 0) return $"GlobalStep {GlobalStep} is negative";
        if (PlanStep < 0) return $"PlanStep {PlanStep} is negative";
        if (BatchInEpoch > GlobalStep) return $"BatchInEpoch {BatchInEpoch} exceeds GlobalStep {GlobalStep}";
        if (!(BestTop1 == -1 || BestTop1 is >= 0 and <= 100)) return $"BestTop1 {BestTop1} is neither -1 (not validated yet) nor a percentage";
        if (!(double.IsFinite(EpochLossSum) && EpochLossSum >= 0)) return $"EpochLossSum {EpochLossSum} is not a finite sum of losses";
        if (EpochTop1 < 0 || EpochTop5 < 0 || EpochSeen < 0) return $"EpochTop1 {EpochTop1}, EpochTop5 {EpochTop5}, EpochSeen {EpochSeen}: a count is negative";
        if (EpochTop1 > EpochTop5) return $"EpochTop1 {EpochTop1} exceeds EpochTop5 {EpochTop5}";
        if (EpochTop5 > EpochSeen) return $"EpochTop5 {EpochTop5} exceeds EpochSeen {EpochSeen}";
        if (!(double.IsFinite(EpochSeconds) && EpochSeconds >= 0)) return $"EpochSeconds {EpochSeconds} is not a finite duration";
        return null;
    }
}

/// <summary>
/// A batch of host images and labels: float images (N x C x H x W), or, with
/// <see cref="Normalization"/> set, <see cref="Pixels"/> (N x H x W x RGB bytes) that the backend
/// turns into the input (<see cref="HostBatch.OfPixels"/>, what the loader gives).
/// </summary>
public readonly record struct HostBatch(ReadOnlyMemory<float> Images, ReadOnlyMemory<int> Labels)
{
    public ReadOnlyMemory<byte> Pixels { get; init; }
    public Normalization? Normalization { get; init; }
    public int Count => Labels.Length;

    public static HostBatch OfPixels(ReadOnlyMemory<byte> pixels, ReadOnlyMemory<int> labels, Normalization normalization) =>
        new(default, labels) { Pixels = pixels, Normalization = normalization };
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

/// <summary>
/// The training loss was NaN or infinite. The host reads the loss after its step's update (a
/// captured step runs whole), so the parameters in memory have taken it: nothing of them may be saved.
/// </summary>
public sealed class NonFiniteLossException(int epoch, int batch, float loss)
    : Exception($"the training loss became {loss} at epoch {epoch}, batch {batch}; nothing since the last checkpoint was saved (lower --lr, or check the data)")
{
    public float Loss { get; } = loss;
}

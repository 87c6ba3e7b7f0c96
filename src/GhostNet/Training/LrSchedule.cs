namespace GhostNet.Training;

/// <summary>
/// Cosine annealing from the base rate to zero over the run, after a linear warm-up from zero,
/// evaluated per step (timm's CosineLRScheduler with t_in_epochs=False and no restarts).
/// </summary>
public sealed class CosineSchedule
{
    public CosineSchedule(float baseLr, long totalSteps, long warmupSteps = 0)
    {
        if (totalSteps < 1) throw new ArgumentOutOfRangeException(nameof(totalSteps), "a schedule needs at least one step");
        if (warmupSteps < 0 || warmupSteps > totalSteps) throw new ArgumentOutOfRangeException(nameof(warmupSteps), $"warm-up {warmupSteps} is not within 0..{totalSteps}");
        BaseLr = baseLr;
        TotalSteps = totalSteps;
        WarmupSteps = warmupSteps;
    }

    public float BaseLr { get; }
    public long TotalSteps { get; }
    public long WarmupSteps { get; }

    public float At(long step)
    {
        if (step < WarmupSteps) return BaseLr * (step + 1) / WarmupSteps;
        double t = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return (float)(BaseLr * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, t))));
    }
}

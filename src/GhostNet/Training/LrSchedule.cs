namespace GhostNet.Training;

public enum LrScheduleKind { Step, MultiStep, Linear, Cosine }

/// <summary>
/// Learning-rate schedule options. Step and multi-step change at epoch boundaries as the PyTorch
/// ImageNet example does (lr * gamma^(epoch // step)); linear and cosine decay per step to zero.
/// Every kind can start with a linear warm-up from 0 over <see cref="WarmupEpochs"/>.
/// </summary>
public sealed record LrScheduleOptions(
    LrScheduleKind Kind = LrScheduleKind.Cosine, float BaseLr = 0.1f, int Epochs = 90, float WarmupEpochs = 0,
    int StepSize = 30, float Gamma = 0.1f, IReadOnlyList<int>? Milestones = null);

/// <summary>The learning rate at a global step, given the steps in an epoch.</summary>
public sealed class LrSchedule
{
    private readonly LrScheduleOptions _o;
    private readonly long _total, _warmup;

    public LrSchedule(LrScheduleOptions options, int stepsPerEpoch)
    {
        if (stepsPerEpoch < 1) throw new ArgumentOutOfRangeException(nameof(stepsPerEpoch), "an epoch needs at least one step");
        if (options.Epochs < 1) throw new ArgumentOutOfRangeException(nameof(options), "at least one epoch");
        if (options.WarmupEpochs < 0 || options.WarmupEpochs > options.Epochs)
            throw new ArgumentOutOfRangeException(nameof(options), $"--warmup-epochs {options.WarmupEpochs} must lie in 0..{options.Epochs}");
        if (options.Kind == LrScheduleKind.Step && options.StepSize < 1) throw new ArgumentOutOfRangeException(nameof(options), "--lr-step must be at least 1");
        if (options.Kind == LrScheduleKind.MultiStep && (options.Milestones is not { Count: > 0 } || options.Milestones.Any(m => m < 1)))
            throw new ArgumentException("the multistep schedule needs --milestones, positive epochs");
        _o = options;
        StepsPerEpoch = stepsPerEpoch;
        _total = (long)options.Epochs * stepsPerEpoch;
        _warmup = (long)Math.Round(options.WarmupEpochs * stepsPerEpoch);
    }

    public int StepsPerEpoch { get; }

    public float At(long step)
    {
        if (step < _warmup) return _o.BaseLr * (step + 1) / _warmup;
        int epoch = (int)(step / StepsPerEpoch);
        double t = Math.Min(1.0, (double)(step - _warmup) / Math.Max(1, _total - _warmup));
        return _o.Kind switch
        {
            LrScheduleKind.Step => (float)(_o.BaseLr * Math.Pow(_o.Gamma, epoch / _o.StepSize)),
            LrScheduleKind.MultiStep => (float)(_o.BaseLr * Math.Pow(_o.Gamma, _o.Milestones!.Count(m => epoch >= m))),
            LrScheduleKind.Linear => (float)(_o.BaseLr * (1 - t)),
            _ => (float)(_o.BaseLr * 0.5 * (1 + Math.Cos(Math.PI * t))),
        };
    }
}

using System.Globalization;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>
/// What --resume continues: the checkpoint records the run's data set, schedule and optimiser
/// settings, and every one of them the command line leaves out is taken from it, so that
/// `train --resume DIR/checkpoint.safetensors` alone continues the run exactly, in its own folder.
/// An option given anyway wins (a longer schedule, a lower rate): the user's explicit choice.
/// </summary>
internal static class ResumedSettings
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The run's settings as checkpoint options (strings, as the safetensors metadata holds).</summary>
    public static Dictionary<string, string> Record(TrainSettings s, string dataset, int batchSize, int seed) => new()
    {
        ["data"] = dataset, ["batch_size"] = batchSize.ToString(C), ["seed"] = seed.ToString(C),
        ["epochs"] = s.Epochs.ToString(C), ["lr"] = s.Lr.ToString("R", C), ["lr_schedule"] = s.Schedule.ToString(),
        ["warmup_epochs"] = s.WarmupEpochs.ToString("R", C), ["lr_step"] = s.LrStep.ToString(C), ["lr_gamma"] = s.LrGamma.ToString("R", C),
        ["milestones"] = string.Join(' ', s.Milestones.Select(m => m.ToString(C))), ["momentum"] = s.Momentum.ToString("R", C),
        ["wd"] = s.WeightDecay.ToString("R", C), ["nesterov"] = s.Nesterov.ToString(), ["no_wd_bn"] = s.NoWdBn.ToString(),
        ["label_smoothing"] = s.LabelSmoothing.ToString("R", C),
    };

    /// <summary>The settings with every option the command line left out taken from <paramref name="resumed"/>.</summary>
    public static TrainSettings Merge(TrainSettings s, CheckpointInfo resumed)
    {
        var o = resumed.Options;
        T Pick<T>(string option, string key, T given, Func<string, T?> parse) where T : struct =>
            !s.IsGiven(option) && o.TryGetValue(key, out var text) && parse(text) is { } value ? value : given;
        T PickRef<T>(string option, string key, T given, Func<string, T?> parse) where T : class =>
            !s.IsGiven(option) && o.TryGetValue(key, out var text) && parse(text) is { } value ? value : given;
        static float? F(string t) => float.TryParse(t, NumberStyles.Float, C, out float v) ? v : null;
        static int? I(string t) => int.TryParse(t, NumberStyles.Integer, C, out int v) ? v : null;
        static bool? B(string t) => bool.TryParse(t, out bool v) ? v : null;
        return s with
        {
            Data = PickRef("--data", "data", s.Data, t => t),
            Epochs = Pick("--epochs", "epochs", s.Epochs, I),
            Lr = Pick("--lr", "lr", s.Lr, F),
            Schedule = Pick("--lr-schedule", "lr_schedule", s.Schedule, t => Enum.TryParse<LrScheduleKind>(t, out var k) ? k : (LrScheduleKind?)null),
            WarmupEpochs = Pick("--warmup-epochs", "warmup_epochs", s.WarmupEpochs, F),
            LrStep = Pick("--lr-step", "lr_step", s.LrStep, I),
            LrGamma = Pick("--lr-gamma", "lr_gamma", s.LrGamma, F),
            Milestones = PickRef("--milestones", "milestones", s.Milestones,
                t => t.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(I).ToArray() is var m && m.All(x => x is not null) ? m.Select(x => x!.Value).ToArray() : null),
            Momentum = Pick("--momentum", "momentum", s.Momentum, F),
            WeightDecay = Pick("--wd", "wd", s.WeightDecay, F),
            Nesterov = Pick("--nesterov", "nesterov", s.Nesterov, B),
            NoWdBn = Pick("--no-wd-bn", "no_wd_bn", s.NoWdBn, B),
            LabelSmoothing = Pick("--label-smoothing", "label_smoothing", s.LabelSmoothing, F),
            // The run's own folder, where its checkpoint lies.
            Out = s.IsGiven("--out") && s.Out is not null ? s.Out : Path.GetDirectoryName(Path.GetFullPath(s.Resume!)),
        };
    }
}

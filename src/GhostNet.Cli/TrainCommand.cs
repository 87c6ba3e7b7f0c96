using System.CommandLine;
using GhostNet.Cuda;
using GhostNet.Graph;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>
/// The options of `ghostcuda train`, named as in the PyTorch ImageNet example where it has them.
/// Null for an option left out whose value a resumed checkpoint supplies (arch, batch size, seed, dropout).
/// </summary>
internal sealed record TrainSettings(
    string Data, string? Arch, float? Width, int Epochs, int? StartEpoch, int? BatchSize, float Lr, float Momentum, float WeightDecay,
    bool Nesterov, LrScheduleKind Schedule, int LrStep, float LrGamma, int[] Milestones, float WarmupEpochs, float LabelSmoothing,
    bool NoWdBn, float? Dropout, int? InputSize, int Workers, int PrintFreq, int? Seed, string Device, string? Resume, string? Pretrained,
    bool Evaluate, string? Out, InitScheme? Init, bool StrictData, RunPrecision Precision = default, bool CudaGraphs = true,
    int? GhostRatio = null, int? GhostDwSize = null)
{
    /// <summary>The options named on the command line (their first alias); null: all of them (a run built in code).</summary>
    public IReadOnlySet<string>? Given { get; init; }

    public bool IsGiven(string option) => Given is null || Given.Contains(option);
}

internal static class TrainCommand
{
    public static Command Create()
    {
        var arch = new ArchOptions();
        var data = new Option<string>("--data") { Description = "mnist, fashion-mnist, cifar10, synthetic, or a folder with train/ and val/", DefaultValueFactory = _ => "synthetic" };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 10 };
        var startEpoch = new Option<int?>("--start-epoch") { Description = "Epoch number to start at (with --resume: override the checkpoint's)" };
        var batch = new Option<int>("--batch-size", "-b") { DefaultValueFactory = _ => 64 };
        var lr = new Option<float>("--lr", "--learning-rate") { Description = "Peak learning rate", DefaultValueFactory = _ => 0.1f };
        var momentum = new Option<float>("--momentum") { DefaultValueFactory = _ => 0.9f };
        var wd = new Option<float>("--wd", "--weight-decay") { DefaultValueFactory = _ => 4e-5f };
        var nesterov = new Option<bool>("--nesterov");
        var schedule = new Option<LrScheduleKind>("--lr-schedule") { Description = "Step, MultiStep, Linear or Cosine", DefaultValueFactory = _ => LrScheduleKind.Cosine };
        var lrStep = new Option<int>("--lr-step") { Description = "Epochs between decays (step schedule)", DefaultValueFactory = _ => 30 };
        var lrGamma = new Option<float>("--lr-gamma") { Description = "Decay factor (step, multistep)", DefaultValueFactory = _ => 0.1f };
        var milestones = new Option<int[]>("--milestones") { Description = "Epochs where the multistep schedule decays", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [] };
        var warmup = new Option<float>("--warmup-epochs") { DefaultValueFactory = _ => 0f };
        var smoothing = new Option<float>("--label-smoothing") { DefaultValueFactory = _ => 0.1f };
        var noWdBn = new Option<bool>("--no-wd-bn") { Description = "No weight decay on batch-norm weights and biases (timm's rule: 1-d tensors)" };
        var dropout = new Option<float?>("--dropout") { Description = "Dropout before the classifier (default: the model's, 0.2 for GhostNet, 0 for the CIFAR ResNets and VGG)" };
        var inputSize = new Option<int?>("--input-size") { Description = "Training and evaluation image size (default: the data set's)" };
        var workers = new Option<int>("--workers", "-j") { Description = "Loader threads (default: cores)", DefaultValueFactory = _ => 0 };
        var printFreq = new Option<int>("--print-freq", "-p") { DefaultValueFactory = _ => 50 };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var device = Devices.Option();
        var resume = new Option<string?>("--resume") { Description = "Checkpoint to continue from (weights, optimiser, epoch, schedule)" };
        var pretrained = new Option<string?>("--pretrained") { Description = "Weights to fine-tune from (a new classifier if the class count differs)" };
        var evaluate = new Option<bool>("--evaluate", "-e") { Description = "Only evaluate the (resumed or pretrained) model on the validation split" };
        var output = new Option<string?>("--out") { Description = "Run folder for checkpoints, log.csv and plots (default runs/<data>)" };
        var init = new Option<InitScheme?>("--init") { Description = "PyTorchDefault or KaimingNormalFanOut (default: the model's own; the seed's ghost_net starts Kaiming-normal)" };
        var strict = new Option<bool>("--strict-data") { Description = "Stop at an unreadable image instead of skipping it" };
        var precision = Devices.PrecisionOption();
        var noGraphs = Devices.NoGraphsOption();

        var command = new Command("train", "Train (or with --evaluate, evaluate) a registered model (GhostNet by default), as the PyTorch ImageNet example does.");
        arch.AddTo(command);
        foreach (var o in new Option[] { data, epochs, startEpoch, batch, lr, momentum, wd, nesterov, schedule, lrStep, lrGamma, milestones, warmup,
                     smoothing, noWdBn, dropout, inputSize, workers, printFreq, seed, device, resume, pretrained, evaluate, output, init, strict, precision, noGraphs })
            command.Options.Add(o);
        command.SetAction((r, cancel) => Task.FromResult(new TrainRun(new TrainSettings(
            r.GetValue(data)!, Given(r, arch.Arch), r.GetValue(arch.Width), r.GetValue(epochs), r.GetValue(startEpoch), GivenValue(r, batch),
            r.GetValue(lr), r.GetValue(momentum), r.GetValue(wd), r.GetValue(nesterov), r.GetValue(schedule), r.GetValue(lrStep), r.GetValue(lrGamma),
            r.GetValue(milestones) ?? [], r.GetValue(warmup), r.GetValue(smoothing), r.GetValue(noWdBn), r.GetValue(dropout), r.GetValue(inputSize),
            r.GetValue(workers), r.GetValue(printFreq), GivenValue(r, seed), r.GetValue(device)!, r.GetValue(resume), r.GetValue(pretrained),
            r.GetValue(evaluate), r.GetValue(output), r.GetValue(init), r.GetValue(strict), Devices.Precision(r.GetValue(precision)!),
            !r.GetValue(noGraphs), r.GetValue(arch.GhostRatio), r.GetValue(arch.GhostDwSize))
        {
            Given = command.Options.Where(o => r.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToHashSet(),
        }).Execute(cancel)));
        return command;
    }

    /// <summary>The option's value if the command line names it, else null (its default applies, or the checkpoint's).</summary>
    private static T? Given<T>(ParseResult r, Option<T> option) where T : class => r.GetResult(option) is { Implicit: false } ? r.GetValue(option) : null;

    private static T? GivenValue<T>(ParseResult r, Option<T> option) where T : struct => r.GetResult(option) is { Implicit: false } ? r.GetValue(option) : null;
}

using GhostNet.Backends;
using GhostNet.Data;
using GhostNet.Graph;
using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>
/// One `ghostcuda train` run: data, model (fresh, resumed or pretrained), then per epoch: train,
/// validate, log a CSV row, refresh the plots, and save checkpoint.safetensors (and
/// model_best.safetensors when top-1 improves). NaN loss stops with the last good checkpoint
/// kept; Ctrl-C saves a checkpoint at the current batch and exits so that --resume continues.
/// </summary>
internal sealed class TrainRun(TrainSettings s)
{
    /// <summary>Tests stop a run after this many steps exactly as Ctrl-C would.</summary>
    internal int? InterruptAfterSteps { get; init; }

    public int Execute(CancellationToken outerCancel)
    {
        using var interrupt = CancellationTokenSource.CreateLinkedTokenSource(outerCancel);
        ConsoleCancelEventHandler onCtrlC = (_, e) =>
        {
            e.Cancel = true; // let the run save its checkpoint
            interrupt.Cancel();
            Console.Error.WriteLine("\ninterrupt: stopping after this batch and saving a checkpoint (Ctrl-C again to abort)");
        };
        Console.CancelKeyPress += onCtrlC;
        try
        {
            return Run(interrupt.Token);
        }
        finally
        {
            Console.CancelKeyPress -= onCtrlC;
        }
    }

    private int Run(CancellationToken cancel)
    {
        Validate();
        string outDir = s.Out ?? Path.Combine("runs", s.Data is "mnist" or "fashion-mnist" or "cifar10" or "synthetic" ? s.Data : Path.GetFileName(Path.GetFullPath(s.Data).TrimEnd('/')));
        Directory.CreateDirectory(outDir);
        CheckpointInfo? resumed = null;
        List<SafetensorsTensor>? resumedTensors = null;
        if (s.Resume is not null) (resumed, resumedTensors) = Checkpoint.Read(s.Resume);

        using IBackend backend = Devices.Create(s.Device, 0);
        var decoder = new SafeImageDecoder();
        var data = DataSets.Resolve(s.Data, outDir, decoder);
        int size = s.InputSize ?? resumed?.InputSize ?? data.DefaultInputSize;
        var classes = data.Train.Classes;
        if (resumed is not null && !resumed.Classes.SequenceEqual(classes))
            throw new ArgumentException($"--resume {s.Resume}: the checkpoint's {resumed.Classes.Count} classes differ from {s.Data}'s {classes.Count}");
        var config = resumed?.Config ?? GhostNetConfig.FromArch(s.Arch, classes.Count, s.Dropout) with { Width = s.Width ?? GhostNetConfig.Architectures[s.Arch] };

        using var model = new GhostNetModel(config, backend, s.Seed, s.Init);
        var state = new TrainingState();
        if (resumed is not null)
        {
            Checkpoint.Apply(model, resumedTensors!, withOptimizer: true);
            state = resumed.State;
            Console.WriteLine($"resumed {s.Resume}: epoch {state.Epoch}, batch {state.BatchInEpoch}, best top-1 {Math.Max(0, state.BestTop1):F2}%");
        }
        else if (s.Pretrained is not null)
        {
            var skipped = Checkpoint.ApplyPretrained(model, Safetensors.Read(s.Pretrained).Tensors);
            Console.WriteLine($"loaded pretrained weights from {s.Pretrained}" + (skipped.Count > 0 ? $" (new classifier: skipped {string.Join(", ", skipped)})" : ""));
        }
        if (s.StartEpoch is { } start) state = state with { Epoch = start, BatchInEpoch = 0 };

        var options = new DataLoaderOptions(s.BatchSize, Shuffle: true, DropLast: true, Workers: s.Workers, Seed: s.Seed) { StrictBadSamples = s.StrictData };
        var train = new LoaderSource(new DataLoader(data.Train, data.TrainTransform(size), options));
        var val = new LoaderSource(new DataLoader(data.Val, data.EvalTransform(size), options with { Shuffle = false, DropLast = false }));
        Console.WriteLine($"GhostNet width {config.Width} ({model.Parameters.ParameterCount:N0} parameters, {classes.Count} classes) at {size}x{size} on {backend.Name}; " +
                          $"{s.Data}: {data.Train.Count:N0} train / {data.Val.Count:N0} val images, {train.BatchesPerEpoch} steps of {s.BatchSize} per epoch");

        if (s.Evaluate)
        {
            var result = Trainer.Evaluate(model, val, size, size, cancel);
            Report.Evaluation(result, classes);
            return 0;
        }
        if (train.BatchesPerEpoch == 0) throw new ArgumentException($"--batch-size {s.BatchSize} is larger than the {data.Train.Count} training images");

        var info = new CheckpointInfo(s.Arch, config.Width, config.NumClasses, config.DropRate, size, s.Data, data.NormalizationName, classes, state,
            new Dictionary<string, string> { ["eval_crop_pct"] = data.EvalCropPct.ToString(System.Globalization.CultureInfo.InvariantCulture), ["seed"] = s.Seed.ToString() });
        using var plan = model.Compile(s.BatchSize, size, size);
        plan.LabelSmoothing = s.LabelSmoothing;
        var sgd = new SgdOptimizer(model.Parameters, backend, new SgdOptions(s.Momentum, s.WeightDecay, s.Nesterov, s.NoWdBn));
        var schedule = new LrSchedule(new LrScheduleOptions(s.Schedule, s.Lr, s.Epochs, s.WarmupEpochs, s.LrStep, s.LrGamma, s.Milestones), train.BatchesPerEpoch);
        var trainer = new Trainer(plan, sgd, schedule);
        var log = new RunLog(Path.Combine(outDir, "log.csv"));
        string checkpointPath = Path.Combine(outDir, "checkpoint.safetensors"), bestPath = Path.Combine(outDir, "model_best.safetensors");

        using var progress = new ProgressDisplay(s.PrintFreq);
        while (state.Epoch < s.Epochs)
        {
            var current = state;
            try
            {
                state = trainer.TrainEpoch(train, state, (report, now) =>
                {
                    current = now;
                    progress.Step(report);
                    if (now.GlobalStep == InterruptAfterSteps) throw new OperationCanceledException("interrupted (test)");
                }, cancel);
            }
            catch (OperationCanceledException)
            {
                progress.Stop();
                Checkpoint.Save(checkpointPath, model, info with { State = current });
                Console.WriteLine($"interrupted at epoch {current.Epoch}, batch {current.BatchInEpoch}: saved {checkpointPath}; continue with --resume {checkpointPath}");
                return 130;
            }
            catch (NonFiniteLossException e)
            {
                progress.Stop();
                Console.Error.WriteLine($"error: {e.Message}. The last good checkpoint, if any, is {checkpointPath}.");
                return 3;
            }
            progress.Stop();
            var epochStats = Trainer.Summary(current);
            var eval = Trainer.Evaluate(model, val, size, size, cancel);
            bool best = eval.Top1 > state.BestTop1;
            state = state with { BestTop1 = Math.Max(state.BestTop1, eval.Top1) };
            Checkpoint.Save(checkpointPath, model, info with { State = state });
            if (best) File.Copy(checkpointPath, bestPath, overwrite: true);
            float lr = schedule.At(Math.Max(0, state.GlobalStep - 1));
            log.Append(current.Epoch, lr, epochStats, eval);
            Plots.Refresh(outDir, log);
            Console.WriteLine($"epoch {current.Epoch}: train loss {epochStats.Loss:F4} top-1 {epochStats.Top1:F2}% | val loss {eval.Loss:F4} top-1 {eval.Top1:F2}% " +
                              $"top-5 {eval.Top5:F2}% | {epochStats.Seconds:F1} s, {epochStats.ImagesPerSecond:F0} img/s{(best ? " | best" : "")}" +
                              (train.SkippedSamples > 0 ? $" | {train.SkippedSamples} unreadable images skipped" : ""));
        }
        Console.WriteLine($"done: best val top-1 {state.BestTop1:F2}%; {outDir}/log.csv, checkpoint.safetensors, model_best.safetensors");
        return 0;
    }

    private void Validate()
    {
        if (s.Epochs < 1) throw new ArgumentException("--epochs must be at least 1");
        if (s.BatchSize < 2) throw new ArgumentException("--batch-size must be at least 2 (training batch norm needs more than one value per channel)");
        if (s.Lr <= 0 || !float.IsFinite(s.Lr)) throw new ArgumentException("--lr must be positive");
        if (s.Momentum is < 0 or >= 1) throw new ArgumentException("--momentum must lie in [0, 1)");
        if (s.WeightDecay < 0) throw new ArgumentException("--wd must not be negative");
        if (s.Nesterov && s.Momentum == 0) throw new ArgumentException("--nesterov needs a momentum above 0 (as torch.optim.SGD)");
        if (s.LabelSmoothing is < 0 or >= 1) throw new ArgumentException("--label-smoothing must lie in [0, 1)");
        if (s.Dropout is < 0 or >= 1) throw new ArgumentException("--dropout must lie in [0, 1)");
        if (s.InputSize is < 32) throw new ArgumentException("--input-size must be at least 32");
        if (s.Resume is not null && s.Pretrained is not null) throw new ArgumentException("--resume and --pretrained exclude each other: resume continues a run, pretrained starts one");
        if (s.Evaluate && s.Resume is null && s.Pretrained is null) throw new ArgumentException("--evaluate needs weights: --resume or --pretrained");
        if (s.Schedule == LrScheduleKind.MultiStep && s.Milestones.Length == 0) throw new ArgumentException("--lr-schedule multistep needs --milestones");
        if (s.StartEpoch is < 0) throw new ArgumentException("--start-epoch must not be negative");
    }
}

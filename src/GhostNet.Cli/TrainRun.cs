using System.Globalization;
using GhostNet.Backends;
using GhostNet.Data;
using GhostNet.Graph;
using GhostNet.IO;
using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>
/// One `ghostcuda train` run: data, model (fresh, resumed or pretrained), then per epoch: train,
/// check the parameters, validate, and save model_best.safetensors (when top-1 improves),
/// checkpoint.safetensors, log.csv and the plots, each replaced atomically. The checkpoint is the
/// run's record: it carries the epoch history that log.csv and the plots are rebuilt from.
/// A non-finite loss, parameter or validation loss stops with exit 3, keeping the last good
/// files. SIGINT or SIGTERM saves a checkpoint of the last consistent state (mid-epoch, or the
/// finished epoch whose validation was cut short) and exits 130 or 143; --resume continues exactly.
/// </summary>
internal sealed class TrainRun(TrainSettings s)
{
    public const int Diverged = 3;
    private const int MaxEpochs = 1_000_000, MaxWorkers = 256;

    /// <summary>Tests stop a run after this many steps exactly as a signal would.</summary>
    internal int? InterruptAfterSteps { get; init; }

    private CheckpointInfo? _resumed;
    private List<SafetensorsTensor>? _resumedTensors;

    public int Execute(CancellationToken outerCancel)
    {
        using var signals = new RunSignals(outerCancel);
        if (s.Resume is not null && s.Pretrained is not null) throw new ArgumentException("--resume and --pretrained exclude each other: resume continues a run, pretrained starts one");
        if (s.Resume is { Length: > 0 })
        {
            (_resumed, _resumedTensors) = Checkpoint.Read(s.Resume);
            s = ResumedSettings.Merge(s, _resumed);
        }
        Validate();
        string outDir = s.Out ?? Path.Combine("runs", DataSets.IsNamed(s.Data) ? s.Data : Path.GetFileName(Path.GetFullPath(s.Data).TrimEnd('/')));
        if (File.Exists(outDir)) throw new ArgumentException($"--out {outDir} is a file, not a folder");
        bool existed = Directory.Exists(outDir);
        try
        {
            return Run(signals, outDir);
        }
        finally
        {
            // A run that failed before writing anything leaves no empty folder behind.
            try
            {
                if (!existed && Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).All(RunFiles.IsLockFile)) Directory.Delete(outDir, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // the failure that brought us here is the one to report
            }
        }
    }

    private int Run(RunSignals signals, string outDir)
    {
        var cancel = signals.Token;
        CheckpointInfo? resumed = _resumed;
        List<SafetensorsTensor>? resumedTensors = _resumedTensors, pretrained = null;
        if (resumed is not null) CheckResumable(resumed);
        if (resumedTensors is not null && Checkpoint.NonFiniteTensors(resumedTensors) is [var first, ..])
            throw new InvalidDataException($"--resume {s.Resume}: {first} holds NaN or Inf (a diverged run); resume from an earlier checkpoint");
        if (s.Pretrained is not null)
        {
            pretrained = Safetensors.Read(s.Pretrained).Tensors;
            if (Checkpoint.NonFiniteTensors(pretrained.Where(t => !t.Name.StartsWith(Checkpoint.MomentumPrefix, StringComparison.Ordinal))) is [var bad, ..])
                throw new InvalidDataException($"--pretrained {s.Pretrained}: {bad} holds NaN or Inf (a diverged run); nothing to fine-tune from");
        }
        if (!s.Evaluate) RunFiles.RefuseOverwrite(outDir, s.Resume);
        int batchSize = s.BatchSize ?? BatchSizeOf(resumed) ?? 64;
        int seed = s.Seed ?? SeedOf(resumed) ?? 0;

        var decoder = new SafeImageDecoder();
        var data = DataSets.Resolve(s.Data, outDir, decoder);
        if (cancel.IsCancellationRequested) return StoppedInSetup(signals);
        int size = s.InputSize ?? resumed?.InputSize ?? data.DefaultInputSize;
        var classes = data.Train.Classes;
        if (resumed is not null) DataSets.RequireClasses(resumed.Classes, classes, $"--resume {s.Resume}", $"--data {s.Data}");
        string arch = resumed?.Arch ?? s.Arch ?? "ghostnet_100";
        var config = resumed?.Config ?? ArchOptions.Create(arch, classes.Count, s.Dropout, s.Width, s.GhostRatio, s.GhostDwSize);

        var options = new DataLoaderOptions(batchSize, Shuffle: true, DropLast: true, Workers: s.Workers, Seed: seed)
        {
            StrictBadSamples = s.StrictData, MaxBufferBytes = MemoryBudget.LoaderBudget(),
        };
        // Validation leaves unreadable images out (a duplicate would skew the metrics) and counts them.
        var valOptions = options with { Shuffle = false, DropLast = false, BadSamples = s.StrictData ? BadSamplePolicy.Fail : BadSamplePolicy.Skip };
        using IBackend backend = Devices.Create(s.Device, 0, s.Precision);
        CheckMemory(config, backend, batchSize, size, options, valOptions);

        using var model = new GhostNetModel(config, backend, seed, s.Init);
        var state = new TrainingState();
        var history = new List<EpochRecord>();
        string logPath = Path.Combine(outDir, "log.csv");
        if (resumed is not null)
        {
            Checkpoint.Apply(model, resumedTensors!, withOptimizer: true, s.Resume);
            state = resumed.State;
            if (s.StartEpoch is { } restart) state = Trainer.AtEpochStart(state, restart);
            // Checkpoints of earlier versions carry no history: then the log's own rows are kept.
            history.AddRange((resumed.History.Count > 0 ? resumed.History : RunLog.Read(logPath)).Where(r => r.Epoch < state.Epoch));
            Console.WriteLine($"resumed {s.Resume}: epoch {state.Epoch}, batch {state.BatchInEpoch}" +
                              (state.BestTop1 >= 0 ? $", best top-1 {state.BestTop1:F2}%" : ""));
        }
        else if (s.Pretrained is not null)
        {
            List<string> skipped;
            try
            {
                skipped = Checkpoint.ApplyPretrained(model, pretrained!, s.Pretrained);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"{e.Message}; are --arch {arch} and width {config.Width} the pretrained model's?", e);
            }
            Console.WriteLine($"loaded pretrained weights from {s.Pretrained}" + (skipped.Count > 0 ? $" (new classifier: skipped {string.Join(", ", skipped)})" : ""));
        }
        else if (s.StartEpoch is { } start) state = Trainer.AtEpochStart(state, start);

        var train = new LoaderSource(new DataLoader(data.Train, data.TrainTransform(size), options));
        var val = new LoaderSource(new DataLoader(data.Val, data.EvalTransform(size), valOptions));
        Console.WriteLine($"{config.Title} ({model.Parameters.ParameterCount:N0} parameters, {classes.Count} classes) at {size}x{size} on {backend.Name}" +
                          $"{(backend is GhostNet.Cuda.CudaBackend cuda ? $" ({RunPrecision.Describe(cuda)}) ({(s.CudaGraphs ? "steps replayed as CUDA graphs" : "steps launched call by call")})" : "")}; " +
                          $"{s.Data}: {data.Train.Count:N0} train / {data.Val.Count:N0} val images, {train.BatchesPerEpoch} steps of {batchSize} per epoch");

        if (s.Evaluate)
        {
            try
            {
                var result = Trainer.Evaluate(model, val, size, size, cancel, Console.WriteLine, s.CudaGraphs);
                Report.Evaluation(result, classes, val.EpochSkippedSamples);
                return Report.Broken(result) ? Diverged : 0;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine("interrupted: evaluation stopped, nothing written");
                return signals.ExitCode;
            }
        }
        if (train.BatchesPerEpoch == 0) throw new ArgumentException($"--batch-size {batchSize} is larger than the {data.Train.Count} training images");
        if (state.BatchInEpoch > train.BatchesPerEpoch)
            throw new ArgumentException($"--resume {s.Resume}: the checkpoint stopped at batch {state.BatchInEpoch}, but an epoch now has {train.BatchesPerEpoch} (the data changed?)");

        // A folder is recorded by its full path, so that --resume and eval find it from anywhere.
        string dataset = DataSets.IsNamed(s.Data) ? s.Data : Path.GetFullPath(s.Data);
        var recorded = ResumedSettings.Record(s, dataset, batchSize, seed);
        recorded["eval_crop_pct"] = data.EvalCropPct.ToString(CultureInfo.InvariantCulture);
        var info = CheckpointInfo.For(arch, config, size, dataset, data.NormalizationName, classes, state, recorded);
        using var files = RunFiles.Open(outDir, model, info, s.Resume);
        if (resumed is not null) files.WriteLog(history); // a crash between checkpoint and log lost or repeated no row

        if (cancel.IsCancellationRequested) return StoppedInSetup(signals);
        using var plan = model.Compile(batchSize, size, size);
        plan.LabelSmoothing = s.LabelSmoothing;
        var sgd = new SgdOptimizer(model.Parameters, backend, new SgdOptions(s.Momentum, s.WeightDecay, s.Nesterov, s.NoWdBn));
        var schedule = new LrSchedule(new LrScheduleOptions(s.Schedule, s.Lr, s.Epochs, s.WarmupEpochs, s.LrStep, s.LrGamma, s.Milestones), train.BatchesPerEpoch);
        using var progress = new ProgressDisplay(s.PrintFreq);
        var trainer = new Trainer(plan, sgd, schedule, note: progress.Note) { CaptureSteps = s.CudaGraphs };
        var evalNote = Notes.Once(progress.Note); // each epoch's validation compiles its plans anew: say why they run call by call once a run
        long startStep = state.GlobalStep;
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
                if (current.GlobalStep == startStep)
                {
                    Console.WriteLine($"interrupted before the first step: nothing to save{(resumed is null ? "" : $"; {s.Resume} is unchanged")}");
                    return signals.ExitCode;
                }
                if (!SaveIfFinite(files, model, backend, current, history, "interrupted")) return Diverged;
                Console.WriteLine($"interrupted at epoch {current.Epoch}, batch {current.BatchInEpoch}: saved {files.Checkpoint}; continue with --resume {files.Checkpoint}");
                return signals.ExitCode;
            }
            catch (BadSampleException e) when (s.StrictData)
            {
                progress.Stop();
                if (!SaveIfFinite(files, model, backend, current, history, "--strict-data")) return Diverged; // the batches before the bad file are trained: keep them
                throw new BadSampleException(e.Sample, $"{e.Reason} (--strict-data: stopped at epoch {current.Epoch}, batch {current.BatchInEpoch}; saved {files.Checkpoint})", e);
            }
            catch (NonFiniteLossException e)
            {
                progress.Stop();
                Console.Error.WriteLine($"error: {e.Message}. {files.LastGood}");
                return Diverged;
            }
            progress.Stop();
            if (StateDict.FirstNonFinite(model.Parameters, backend) is { } bad)
            {
                Console.Error.WriteLine($"error: {bad} became NaN or infinite during epoch {current.Epoch} (lower --lr); nothing of this epoch was saved. {files.LastGood}");
                return Diverged;
            }
            var epochStats = Trainer.Summary(current);
            EvalResult eval;
            try
            {
                eval = Trainer.Evaluate(model, val, size, size, cancel, evalNote, s.CudaGraphs);
            }
            catch (OperationCanceledException)
            {
                files.Save(current, history); // the trained epoch; --resume validates it again
                Console.WriteLine($"interrupted during validation of epoch {current.Epoch}: saved {files.Checkpoint}; --resume {files.Checkpoint} validates it and continues");
                return signals.ExitCode;
            }
            catch (Exception e) when (e is BadSampleException or InvalidDataException)
            {
                files.Save(current, history); // the trained epoch is kept whatever stopped its validation
                throw new InvalidDataException($"validation of epoch {current.Epoch}: {e.Message} (the trained epoch is saved in {files.Checkpoint})", e);
            }
            if (!double.IsFinite(eval.Loss) || eval.NonFinite > 0)
            {
                Console.Error.WriteLine($"error: the validation loss after epoch {current.Epoch} is {eval.Loss} (the model diverged; lower --lr); nothing of this epoch was saved. {files.LastGood}");
                return Diverged;
            }
            bool best = eval.Top1 > state.BestTop1;
            state = state with { BestTop1 = Math.Max(state.BestTop1, eval.Top1) };
            float lr = schedule.At(Math.Max(0, state.GlobalStep - 1));
            history.Add(new EpochRecord(current.Epoch, lr, epochStats.Loss, epochStats.Top1, epochStats.Top5, eval.Loss, eval.Top1, eval.Top5,
                epochStats.Seconds, epochStats.ImagesPerSecond));
            // model_best first: a crash before the checkpoint repeats this epoch and rewrites the same model_best.
            if (best) files.SaveBest(state, history);
            files.Save(state, history);
            files.WriteLog(history);
            Console.WriteLine($"epoch {current.Epoch}: train loss {epochStats.Loss:F4} top-1 {epochStats.Top1:F2}% | val loss {eval.Loss:F4} top-1 {eval.Top1:F2}% " +
                              $"top-5 {eval.Top5:F2}% | {epochStats.Seconds:F1} s, {epochStats.ImagesPerSecond:F0} img/s{(best ? " | best" : "")}" +
                              (train.EpochSkippedSamples > 0 ? $" | {train.EpochSkippedSamples} unreadable training images replaced" : "") +
                              (val.EpochSkippedSamples > 0 ? $" | {val.EpochSkippedSamples} unreadable validation images left out" : ""));
            if (cancel.IsCancellationRequested)
            {
                Console.WriteLine($"interrupted after epoch {current.Epoch}: saved {files.Checkpoint}; continue with --resume {files.Checkpoint}");
                return signals.ExitCode;
            }
        }
        Console.WriteLine($"done: best val top-1 {state.BestTop1:F2}%; {outDir}/log.csv, checkpoint.safetensors" +
                          (File.Exists(files.Best) ? ", model_best.safetensors" : " (no epoch of this run beat the resumed best, so no model_best here)"));
        return 0;
    }

    private static int StoppedInSetup(RunSignals signals)
    {
        Console.WriteLine("interrupted before the first step: nothing written");
        return signals.ExitCode;
    }

    /// <summary>Saves a mid-epoch checkpoint unless the model is already non-finite, which would replace the last good one.</summary>
    private static bool SaveIfFinite(RunFiles files, GhostNetModel model, IBackend backend, TrainingState state, IReadOnlyList<EpochRecord> history, string why)
    {
        if (StateDict.FirstNonFinite(model.Parameters, backend) is { } bad)
        {
            Console.Error.WriteLine($"error: {why}: {bad} is already NaN or infinite, so nothing was saved (lower --lr). {files.LastGood}");
            return false;
        }
        files.Save(state, history);
        return true;
    }

    /// <summary>Options a resumed run must share with its checkpoint, or leave out.</summary>
    private void CheckResumable(CheckpointInfo resumed)
    {
        if (s.Arch is { } arch && (arch != resumed.Arch || (s.Width is null && ModelRegistry.Get(arch).Create(new ModelOptions(resumed.NumClasses)).Width != resumed.Width)))
            throw new ArgumentException($"--arch {arch} differs from the checkpoint's {resumed.Arch} (width {resumed.Width}); leave --arch out to resume it");
        if (s.Width is { } width && width != resumed.Width)
            throw new ArgumentException($"--width {width} differs from the checkpoint's {resumed.Width}; leave --width out to resume it");
        var model = resumed.ModelOptions;
        if (s.GhostRatio is { } ratio && ratio != model.GhostRatio)
            throw new ArgumentException($"--ghost-ratio {ratio} differs from the checkpoint's {model.GhostRatio?.ToString() ?? "none"}; leave it out to resume");
        if (s.GhostDwSize is { } dw && dw != model.GhostDwSize)
            throw new ArgumentException($"--ghost-dw-size {dw} differs from the checkpoint's {model.GhostDwSize?.ToString() ?? "none"}; leave it out to resume");
        if (s.InputSize is { } inputSize && inputSize != resumed.InputSize)
            throw new ArgumentException($"--input-size {inputSize} differs from the checkpoint's {resumed.InputSize}; leave it out to resume");
        if (s.Dropout is { } dropout && dropout != resumed.DropRate)
            throw new ArgumentException($"--dropout {dropout} differs from the checkpoint's {resumed.DropRate}; leave it out to resume");
        // The epoch's sample order, the steps per epoch and the schedule's position all follow from the batch size and the seed.
        if (s.BatchSize is null && BatchSizeOf(resumed) is null)
            throw new ArgumentException($"--resume {s.Resume}: the checkpoint does not record its batch size (an older version wrote it); give -b as it was trained");
        if (s.BatchSize is { } b && BatchSizeOf(resumed) is { } rb && b != rb)
            throw new ArgumentException($"--batch-size {b} differs from the checkpoint's {rb}: the schedule and the epoch's order would not continue; leave -b out to resume");
        if (s.Seed is { } seed && SeedOf(resumed) is { } rs && seed != rs)
            throw new ArgumentException($"--seed {seed} differs from the checkpoint's {rs}: the epoch's order would not continue; leave --seed out to resume");
        if (!s.Evaluate && s.StartEpoch is null && resumed.State.Epoch >= s.Epochs)
            throw new ArgumentException($"--resume {s.Resume}: the checkpoint has finished {resumed.State.Epoch} epochs; raise --epochs above {resumed.State.Epoch} to train on");
    }

    private static int? BatchSizeOf(CheckpointInfo? info) => OptionOf(info, "batch_size");
    private static int? SeedOf(CheckpointInfo? info) => OptionOf(info, "seed");

    private static int? OptionOf(CheckpointInfo? info, string key) =>
        info is not null && info.Options.TryGetValue(key, out var text) && int.TryParse(text, CultureInfo.InvariantCulture, out int v) ? v : null;

    /// <summary>
    /// Host memory for the loader's buffers, and on the CPU backend the model and plans too (on a
    /// GPU, the plans' page-locked stagings); checked before any is allocated.
    /// </summary>
    private void CheckMemory(IModelConfig config, IBackend backend, int batch, int size, DataLoaderOptions train, DataLoaderOptions val)
    {
        string flags = $"--batch-size {batch} at --input-size {size} with --workers {s.Workers}";
        long bytes = MemoryBudget.LoaderBytes(train, size, flags) + MemoryBudget.LoaderBytes(val, size, flags);
        if (backend is Cpu.CpuBackend)
            bytes += GhostNetModel.StateBytes(config) + GhostNetModel.PlanBytes(config, batch, size, size, withGradients: true)
                     + GhostNetModel.PlanBytes(config, batch, size, size, withGradients: false);
        else bytes += 2 * GhostNetModel.StagingBytes(config, batch, size, size); // the training and validation plans' page-locked uploads
        MemoryBudget.Require(bytes, flags);
    }

    private void Validate()
    {
        static bool Finite(float v) => float.IsFinite(v);
        if (s.Epochs is < 1 or > MaxEpochs) throw new ArgumentException($"--epochs must lie in 1..{MaxEpochs:N0}");
        if (s.BatchSize is < 2) throw new ArgumentException("--batch-size must be at least 2 (training batch norm needs more than one value per channel)");
        if (!(s.Lr > 0) || !Finite(s.Lr)) throw new ArgumentException("--lr must be a positive number");
        if (!(s.Momentum >= 0 && s.Momentum < 1)) throw new ArgumentException("--momentum must lie in [0, 1)");
        if (!(s.WeightDecay >= 0) || !Finite(s.WeightDecay)) throw new ArgumentException("--wd must be a number, not negative");
        if (s.Nesterov && s.Momentum == 0) throw new ArgumentException("--nesterov needs a momentum above 0 (as torch.optim.SGD)");
        if (s.LrStep < 1) throw new ArgumentException("--lr-step must be at least 1");
        if (!(s.LrGamma > 0 && s.LrGamma <= 1)) throw new ArgumentException("--lr-gamma must lie in (0, 1]");
        if (s.Milestones.Any(m => m < 1 || m > s.Epochs)) throw new ArgumentException($"--milestones must be epochs in 1..{s.Epochs}");
        if (!(s.WarmupEpochs >= 0 && s.WarmupEpochs <= s.Epochs)) throw new ArgumentException($"--warmup-epochs must lie in 0..{s.Epochs} (--epochs)");
        if (!(s.LabelSmoothing >= 0 && s.LabelSmoothing < 1)) throw new ArgumentException("--label-smoothing must lie in [0, 1)");
        if (s.Dropout is { } d && !(d >= 0 && d < 1)) throw new ArgumentException("--dropout must lie in [0, 1)");
        if (s.Width is { } w && !(w > 0 && w <= 10)) throw new ArgumentException("--width must lie in (0, 10]");
        if (s.InputSize is < CheckpointInfo.MinInputSize or > CheckpointInfo.MaxInputSize)
            throw new ArgumentException($"--input-size must lie in {CheckpointInfo.MinInputSize}..{CheckpointInfo.MaxInputSize}");
        if (s.Workers is < 0 or > MaxWorkers) throw new ArgumentException($"--workers must lie in 0..{MaxWorkers} (0: one per core)");
        if (s.PrintFreq < 1) throw new ArgumentException("--print-freq must be at least 1");
        if (s.Out is "" || s.Resume is "" || s.Pretrained is "" || s.Data is "") throw new ArgumentException("--out, --resume, --pretrained and --data must not be empty");
        if (s.Evaluate && s.Resume is null && s.Pretrained is null) throw new ArgumentException("--evaluate needs weights: --resume or --pretrained");
        if (s.Schedule == LrScheduleKind.MultiStep && s.Milestones.Length == 0) throw new ArgumentException("--lr-schedule multistep needs --milestones");
        if (s.StartEpoch is < 0) throw new ArgumentException("--start-epoch must not be negative");
        if (s.StartEpoch is { } start && start >= s.Epochs && !s.Evaluate)
            throw new ArgumentException($"--start-epoch {start} is not before --epochs {s.Epochs}: there is nothing to train");
    }
}

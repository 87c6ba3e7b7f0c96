using System.Diagnostics;
using GhostNet.Backends;
using GhostNet.Models;

namespace GhostNet.Training;

/// <summary>Reported every step: the epoch's running averages and speed.</summary>
public readonly record struct StepReport(int Epoch, int Batch, int Batches, float Loss, double AverageLoss, double Top1, double Top5,
    float LearningRate, double ImagesPerSecond, double DataWaitShare, TimeSpan EpochEta);

/// <summary>An epoch's or an evaluation's totals.</summary>
public sealed record EpochStats(double Loss, double Top1, double Top5, long Images, double Seconds)
{
    public double ImagesPerSecond => Images / Math.Max(Seconds, 1e-9);
}

/// <summary>
/// Validation results with the confusion counts [true class, predicted class]. The extra last
/// column counts images whose logits held NaN: they predict nothing and are never correct (as top-k ranks them).
/// </summary>
public sealed record EvalResult(double Loss, double Top1, double Top5, long Images, double Seconds, long[,] Confusion)
{
    public long NonFinite => Enumerable.Range(0, Confusion.GetLength(0)).Sum(c => Confusion[c, Confusion.GetLength(1) - 1]);
}

/// <summary>
/// Runs epochs of SGD on a compiled plan and evaluations on eval plans, the loop of the PyTorch
/// ImageNet example: forward, loss, backward, step; meters for loss and top-1/top-5; the
/// learning rate from the schedule each step. The caller owns checkpoints and logs.
/// </summary>
public sealed class Trainer
{
    private readonly Plan _plan;
    private readonly SgdOptimizer _sgd;
    private readonly LrSchedule _schedule;
    private readonly ReplayedCalls _steps;
    private float _learningRate;

    /// <param name="note">Told once why training steps run call by call on a backend that could capture them.</param>
    public Trainer(Plan plan, SgdOptimizer sgd, LrSchedule schedule, Action<string>? note = null)
    {
        _plan = plan;
        _sgd = sgd;
        _schedule = schedule;
        // A step's launches: forward with the loss and its gradient, the labels' ranks, backward and
        // the update, which reads the rate the step wrote (so a captured step replays unchanged).
        // The plan owns the graph (it is freed with the plan's memory); a trainer made later on the
        // same plan, perhaps with another optimiser, replaces it.
        _steps = new ReplayedCalls(plan.Backend, plan.State, () => StepCalls(_plan, _sgd, _learningRate), "training steps", note);
        plan.TrainingStep = _steps;
    }

    /// <summary>
    /// The launches of one training step on the batch set and the values <see cref="Plan.BeginTrainingStep"/>
    /// wrote: forward with the loss and its gradient, the labels' ranks and the batch's totals,
    /// backward, and the update, which reads the rate from the plan (so a captured step replays
    /// unchanged; <paramref name="learningRate"/> is only the capture's).
    /// </summary>
    public static void StepCalls(Plan plan, SgdOptimizer sgd, float learningRate)
    {
        plan.ForwardCalls(training: true);
        plan.RankLabels();
        plan.SumTotals();
        plan.Backward();
        sgd.Step(learningRate, plan.LearningRate);
    }

    /// <summary>
    /// Whether a step is captured once (after a step call by call has sized every workspace) and
    /// replayed as one graph, where the backend can capture (<see cref="ICapturingBackend"/>: CUDA).
    /// Replayed and call-by-call steps compute the same bits.
    /// </summary>
    public bool CaptureSteps { get => _steps.Enabled; init => _steps.Enabled = value; }

    /// <summary>Why steps run call by call on a backend that captures (the capture failed), or null.</summary>
    public string? NotCapturedBecause => _steps.NotCapturedBecause;

    /// <summary>
    /// One training step on the batch already set: the rate and the dropout seed written, then the
    /// step's launches replayed or made call by call. Its totals are read later (a non-finite loss
    /// is found after its step's update, or the next one's: the caller saves nothing then).
    /// </summary>
    private void Step(float learningRate)
    {
        _plan.BeginTrainingStep(_learningRate = learningRate);
        _steps.Run();
    }

    /// <summary>
    /// Trains from <paramref name="state"/> to the end of its epoch and returns the state after it.
    /// Each step's loss and top-k counts are read one step late: step k+1 is launched before the
    /// host waits for step k's totals, so the device never idles while the host prepares a step.
    /// Every step launched is reported (<paramref name="progress"/>) before this returns or throws,
    /// so the last state reported always matches the parameters in memory; a non-finite loss is
    /// thrown (<see cref="NonFiniteLossException"/>) at most one step after it happened.
    /// Cancellation stops between steps with <see cref="OperationCanceledException"/>; the state
    /// reached so far is then in <paramref name="progress"/>'s last call.
    /// </summary>
    public TrainingState TrainEpoch(IBatchSource source, TrainingState state, Action<StepReport, TrainingState>? progress, CancellationToken cancel)
    {
        int epoch = state.Epoch, batches = source.BatchesPerEpoch, skip = state.BatchInEpoch;
        if (skip >= batches) return Finished(state); // stopped during validation: the epoch's training is done
        _plan.Step = state.PlanStep;
        double lossSum = state.EpochLossSum, seconds0 = state.EpochSeconds;
        long top1 = state.EpochTop1, top5 = state.EpochTop5, seen = state.EpochSeen, step = state.GlobalStep;
        var clock = Stopwatch.StartNew();
        int b = 0;
        Launched? pending = null;

        // Step `done`'s totals, read (the host's one wait of a step), checked and reported.
        void Report(Launched done)
        {
            var totals = _plan.ReadTotals(done.Slot);
            float loss = (float)(totals.LossSum / done.Count);
            if (!float.IsFinite(loss)) throw new NonFiniteLossException(epoch, done.Batch - 1, loss);
            step++;
            lossSum += totals.LossSum;
            top1 += totals.Top1;
            top5 += totals.Top5;
            seen += done.Count;
            double elapsed = clock.Elapsed.TotalSeconds;
            state = state with
            {
                BatchInEpoch = done.Batch, GlobalStep = step, PlanStep = done.PlanStep, EpochLossSum = lossSum, EpochTop1 = top1, EpochTop5 = top5,
                EpochSeen = seen, EpochSeconds = seconds0 + elapsed,
            };
            if (progress is null) return;
            double rate = (done.Batch - skip) * (double)done.Count / Math.Max(elapsed, 1e-9);
            var eta = TimeSpan.FromSeconds((batches - done.Batch) * elapsed / Math.Max(1, done.Batch - skip));
            progress(new StepReport(epoch, done.Batch, batches, loss, lossSum / seen, 100.0 * top1 / seen, 100.0 * top5 / seen, done.LearningRate, rate,
                Math.Min(1, source.WaitSeconds / Math.Max(elapsed, 1e-9)), eta), state);
        }

        try
        {
            foreach (var batch in source.Epoch(epoch, cancel))
            {
                if (b++ < skip) continue; // resuming mid-epoch: the loader's order and augmentation do not depend on where we start
                cancel.ThrowIfCancellationRequested();
                if (batch.Count != _plan.Batch) throw new InvalidOperationException($"training batch of {batch.Count}, the plan is compiled for {_plan.Batch} (use drop-last)");
                _plan.SetBatch(batch);
                float lr = _schedule.At(step + (pending is null ? 0 : 1));
                Step(lr);
                var previous = pending;
                pending = new Launched(b, batch.Count, lr, _plan.Step, _plan.StartReadingTotals());
                if (previous is { } p) Report(p);
            }
            if (pending is { } last)
            {
                pending = null;
                Report(last);
            }
        }
        catch (Exception e) when (e is not NonFiniteLossException && pending is { } unreported)
        {
            // The step in flight has updated the parameters: report it, so the caller's last state
            // matches them (a non-finite loss in it is thrown instead, and nothing gets saved).
            pending = null;
            Report(unreported);
            throw;
        }
        return Finished(state);
    }

    /// <summary>A step launched whose totals are not read yet: its batch (1-based), size, rate, plan step and readback slot.</summary>
    private readonly record struct Launched(int Batch, int Count, float LearningRate, long PlanStep, int Slot);

    /// <summary>The state moved to the start of <paramref name="epoch"/> (--start-epoch): no batch done, no running totals.</summary>
    public static TrainingState AtEpochStart(TrainingState state, int epoch) =>
        state with { Epoch = epoch, BatchInEpoch = 0, EpochLossSum = 0, EpochTop1 = 0, EpochTop5 = 0, EpochSeen = 0, EpochSeconds = 0 };

    private static TrainingState Finished(TrainingState state) => state with
    {
        Epoch = state.Epoch + 1, BatchInEpoch = 0, EpochLossSum = 0, EpochTop1 = 0, EpochTop5 = 0, EpochSeen = 0, EpochSeconds = 0,
    };

    /// <summary>The epoch's totals from a state at (or just past) its end.</summary>
    public static EpochStats Summary(TrainingState duringEpoch) =>
        new(duringEpoch.EpochLossSum / Math.Max(1, duringEpoch.EpochSeen), 100.0 * duringEpoch.EpochTop1 / Math.Max(1, duringEpoch.EpochSeen),
            100.0 * duringEpoch.EpochTop5 / Math.Max(1, duringEpoch.EpochSeen), duringEpoch.EpochSeen, duringEpoch.EpochSeconds);

    /// <summary>
    /// Evaluation in eval mode (running statistics, no dropout) over a whole source. Batches may
    /// come shorter anywhere (the last one, or one that lost unreadable images): a plan for the
    /// full batch is kept, and one more for the latest other size. Their forwards are captured as
    /// one graph on the second batch of a size and replayed (<see cref="Plan.CaptureForward"/>).
    /// </summary>
    /// <param name="note">Told once why forwards run call by call on a backend that could capture them.</param>
    /// <param name="capture">False: every forward call by call (<see cref="Plan.CaptureForward"/>).</param>
    public static EvalResult Evaluate(GhostNetModel model, IBatchSource source, int height, int width, CancellationToken cancel, Action<string>? note = null,
        bool capture = true)
    {
        var once = Notes.Once(note);
        Plan Compile(int batch)
        {
            var plan = model.Compile(batch, height, width, withGradients: false);
            plan.Note = once;
            plan.CaptureForward = capture;
            return plan;
        }
        int classes = model.Config.NumClasses;
        var confusion = new long[classes, classes + 1];
        Plan? full = null, other = null;
        var logits = new float[source.BatchSize * classes];
        double loss = 0;
        long top1 = 0, top5 = 0, seen = 0;
        var clock = Stopwatch.StartNew();
        try
        {
            foreach (var batch in source.Epoch(0, cancel))
            {
                cancel.ThrowIfCancellationRequested();
                if (batch.Count == 0) continue;
                Plan plan;
                if (batch.Count == source.BatchSize) plan = full ??= Compile(batch.Count);
                else
                {
                    if (other?.Batch != batch.Count)
                    {
                        other?.Dispose();
                        other = Compile(batch.Count);
                    }
                    plan = other;
                }
                plan.SetBatch(batch);
                plan.Forward(training: false);
                var totals = plan.Totals();
                loss += totals.LossSum;
                top1 += totals.Top1;
                top5 += totals.Top5;
                seen += batch.Count;
                var z = logits.AsSpan(0, batch.Count * classes);
                model.Backend.Download(plan.Logits, z);
                var labels = batch.Labels.Span;
                for (int i = 0; i < batch.Count; i++) confusion[labels[i], Prediction(z.Slice(i * classes, classes))]++;
            }
        }
        finally
        {
            full?.Dispose();
            other?.Dispose();
        }
        return new EvalResult(loss / Math.Max(1, seen), 100.0 * top1 / Math.Max(1, seen), 100.0 * top5 / Math.Max(1, seen), seen,
            clock.Elapsed.TotalSeconds, confusion);
    }

    /// <summary>The arg-max class, or the row's length (no prediction) when a logit is NaN, as top-k ranks it.</summary>
    private static int Prediction(ReadOnlySpan<float> row)
    {
        int argmax = 0;
        for (int j = 0; j < row.Length; j++)
        {
            if (float.IsNaN(row[j])) return row.Length;
            if (row[j] > row[argmax]) argmax = j;
        }
        return argmax;
    }
}

using GhostNet.Backends;
using GhostNet.Cpu;
using GhostNet.Graph;
using GhostNet.Models;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Training;

/// <summary>
/// The trainer reads each step's totals one step late (issue 13). What that must not change: every
/// report belongs to its own step, and whatever stops an epoch, the last state reported matches the
/// parameters in memory, so a checkpoint of it resumes exactly. On the CPU backend against a loop
/// of the plan's own calls.
/// </summary>
public class TrainerTests
{
    private const int Batch = 4, Size = 32, Steps = 6;
    private static readonly GhostNetConfig Config = new(0.25f, 10, 0.2f);

    /// <summary>Fixed batches; <paramref name="failAt"/> (0-based) throws from the enumerator as a bad file would.</summary>
    private sealed class Batches(IReadOnlyList<HostBatch> batches, int failAt = -1) : IBatchSource
    {
        public int BatchSize => Batch;
        public int BatchesPerEpoch => batches.Count;
        public IReadOnlyList<string> Classes { get; } = Enumerable.Range(0, 10).Select(c => c.ToString()).ToArray();
        public double WaitSeconds => 0;

        public IEnumerable<HostBatch> Epoch(int epoch, CancellationToken cancel)
        {
            for (int b = 0; b < batches.Count; b++)
            {
                if (b == failAt) throw new IOException($"batch {b} is unreadable");
                yield return batches[b];
            }
        }
    }

    private static HostBatch[] RandomBatches(int seed, float nanAt = -1)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, Steps).Select(b => new HostBatch(
            Enumerable.Range(0, Batch * 3 * Size * Size).Select(_ => b == nanAt ? float.NaN : (float)(rng.NextDouble() * 2 - 1)).ToArray(),
            Enumerable.Range(0, Batch).Select(_ => rng.Next(10)).ToArray())).ToArray();
    }

    private static LrSchedule Schedule => new(new LrScheduleOptions(LrScheduleKind.Cosine, 0.05f, 1), Steps);

    /// <summary>The steps made one call at a time, each loss read at once: the reference.</summary>
    private static (List<float> Losses, List<int> Top1, IReadOnlyList<SafetensorsTensor> State) ByHand(HostBatch[] data, int steps)
    {
        using var backend = new CpuBackend(2);
        using var model = new GhostNetModel(Config, backend, 5);
        using var plan = model.Compile(Batch, Size, Size);
        var sgd = new SgdOptimizer(model.Parameters, backend, new SgdOptions(0.9f, 1e-4f));
        var (losses, top1) = (new List<float>(), new List<int>());
        for (int i = 0; i < steps; i++)
        {
            plan.SetBatch(data[i].Images.Span, data[i].Labels.Span);
            plan.Forward(training: true);
            losses.Add(plan.Loss());
            top1.Add(plan.CountCorrect().Top1);
            plan.Backward();
            sgd.Step(Schedule.At(i));
        }
        return (losses, top1, StateDict.Read(model.Parameters, backend));
    }

    private static (List<StepReport> Reports, TrainingState Last, IReadOnlyList<SafetensorsTensor> State, Exception? Error) Train(IBatchSource source,
        Action<StepReport>? onReport = null)
    {
        using var backend = new CpuBackend(2);
        using var model = new GhostNetModel(Config, backend, 5);
        using var plan = model.Compile(Batch, Size, Size);
        var trainer = new Trainer(plan, new SgdOptimizer(model.Parameters, backend, new SgdOptions(0.9f, 1e-4f)), Schedule);
        var reports = new List<StepReport>();
        var last = new TrainingState();
        Exception? error = null;
        try
        {
            trainer.TrainEpoch(source, new TrainingState(), (r, s) =>
            {
                reports.Add(r);
                last = s;
                onReport?.Invoke(r);
            }, CancellationToken.None);
        }
        catch (Exception e)
        {
            error = e;
        }
        return (reports, last, StateDict.Read(model.Parameters, backend), error);
    }

    private static void AssertSameState(IReadOnlyList<SafetensorsTensor> actual, IReadOnlyList<SafetensorsTensor> expected)
    {
        Assert.That(actual.Select(t => t.Name), Is.EqualTo(expected.Select(t => t.Name)));
        for (int i = 0; i < expected.Count; i++) Assert.That(actual[i].Data, Is.EqualTo(expected[i].Data), expected[i].Name);
    }

    [Test]
    public void Each_report_is_its_own_steps_loss_accuracy_and_rate()
    {
        var data = RandomBatches(3);
        var (losses, top1, state) = ByHand(data, Steps);
        var run = Train(new Batches(data));
        Assert.That(run.Error, Is.Null);
        Assert.That(run.Reports.Select(r => r.Batch), Is.EqualTo(Enumerable.Range(1, Steps)));
        // Totals sum the losses in double as Loss() does, in another order: within a float's rounding.
        for (int i = 0; i < Steps; i++) Assert.That(run.Reports[i].Loss, Is.EqualTo(losses[i]).Within(1e-6).Percent, $"loss of step {i}");
        Assert.That(run.Reports.Select(r => r.LearningRate), Is.EqualTo(Enumerable.Range(0, Steps).Select(i => Schedule.At(i))));
        Assert.That(run.Reports[^1].Top1, Is.EqualTo(100.0 * top1.Sum() / (Steps * Batch)).Within(1e-9));
        Assert.That(losses.Distinct().Count(), Is.EqualTo(Steps), "the steps train");
        AssertSameState(run.State, state);
    }

    [Test]
    public void A_source_failing_mid_epoch_leaves_the_step_in_flight_reported()
    {
        var data = RandomBatches(4);
        // Batch 4 fails as the enumerator moves to it: step 4 (batch index 3) is launched, not yet reported.
        var run = Train(new Batches(data, failAt: 4));
        Assert.That(run.Error, Is.InstanceOf<IOException>());
        Assert.That((run.Last.GlobalStep, run.Last.BatchInEpoch, run.Last.PlanStep), Is.EqualTo((4L, 4, 4L)), "every launched step is reported");
        AssertSameState(run.State, ByHand(data, 4).State);
    }

    [Test]
    public void A_progress_callback_that_throws_still_sees_the_step_in_flight()
    {
        var data = RandomBatches(5);
        // Thrown at step 2's report, which comes once step 3 is launched: step 3 is reported after it.
        var run = Train(new Batches(data), r => { if (r.Batch == 2) throw new OperationCanceledException("stop"); });
        Assert.That(run.Error, Is.InstanceOf<OperationCanceledException>());
        Assert.That(run.Reports.Select(r => r.Batch), Is.EqualTo(new[] { 1, 2, 3 }));
        Assert.That(run.Last.GlobalStep, Is.EqualTo(3));
        AssertSameState(run.State, ByHand(data, 3).State);
    }

    [Test]
    public void A_non_finite_loss_stops_training_one_step_late_at_most_and_names_its_batch()
    {
        var data = RandomBatches(6, nanAt: 2);
        var run = Train(new Batches(data));
        Assert.That(run.Error, Is.InstanceOf<NonFiniteLossException>());
        Assert.That(run.Error!.Message, Does.Contain("epoch 0, batch 2"));
        Assert.That(run.Reports.Select(r => r.Batch), Is.EqualTo(new[] { 1, 2 }), "the steps before it are reported, it is not");
    }

    [Test]
    public void Training_on_pixels_equals_training_on_the_floats_they_normalise_to()
    {
        // The loader's batches are bytes the backend normalises: the same run, bit for bit, as on
        // the floats the CPU makes of them (Normalization.Normalize is NormalizeImages' twin).
        var rng = new Random(12);
        var pixels = Enumerable.Range(0, Steps).Select(_ =>
        {
            var bytes = new byte[Batch * 3 * Size * Size];
            rng.NextBytes(bytes);
            return bytes;
        }).ToArray();
        var labels = Enumerable.Range(0, Steps).Select(_ => Enumerable.Range(0, Batch).Select(_ => rng.Next(10)).ToArray()).ToArray();
        var asPixels = pixels.Select((p, b) => HostBatch.OfPixels(p, labels[b], Normalization.ImageNet)).ToArray();
        var asFloats = pixels.Select((p, b) =>
        {
            int image = 3 * Size * Size;
            var floats = new float[p.Length];
            for (int n = 0; n < Batch; n++) Normalization.ImageNet.Normalize(p.AsSpan(n * image, image), floats.AsSpan(n * image, image), Size, Size);
            return new HostBatch(floats, labels[b]);
        }).ToArray();
        var (onPixels, onFloats) = (Train(new Batches(asPixels)), Train(new Batches(asFloats)));
        Assert.That((onPixels.Error, onFloats.Error), Is.EqualTo(((Exception?)null, (Exception?)null)));
        Assert.That(onPixels.Reports.Select(r => r.Loss), Is.EqualTo(onFloats.Reports.Select(r => r.Loss)));
        AssertSameState(onPixels.State, onFloats.State);
    }

    [Test]
    public void A_batch_of_pixels_of_the_wrong_size_is_refused_with_its_sizes()
    {
        using var backend = new CpuBackend(1);
        using var model = new GhostNetModel(Config, backend, 5);
        using var plan = model.Compile(2, 8, 8, withGradients: false);
        Assert.That(() => plan.SetBatch(new byte[2 * 3 * 8 * 8 - 1], [1, 2], Normalization.ImageNet),
            Throws.ArgumentException.With.Message.Contains("383 pixel bytes"));
    }

    [Test]
    public void A_readback_must_be_started_before_it_is_waited_for()
    {
        using var backend = new CpuBackend(1);
        var storage = new Storage("readback_test");
        var words = new Tensor(storage, storage.Reserve(4), 1, 4, 1, 1);
        storage.Bind(backend);
        using var read = backend.CreateReadback(words);
        Assert.That(() => read.Wait().ToArray(), Throws.InvalidOperationException.With.Message.Contains("before it was started"));
        backend.UploadInts([1, 2, 3, 4], words);
        read.Start();
        backend.UploadInts([5, 6, 7, 8], words);
        Assert.That(read.Wait().ToArray(), Is.EqualTo(new[] { 1, 2, 3, 4 }), "the words as the work before Start left them");
        storage.Release();
    }

    [Test]
    public void A_trainer_replaced_on_its_plan_refuses_to_step()
    {
        // The plan owns the step's graph; a second trainer (perhaps with another optimiser) replaces
        // it, so the first would otherwise capture and leak a graph of its own.
        using var backend = new CpuBackend(2);
        using var model = new GhostNetModel(Config, backend, 5);
        using var plan = model.Compile(Batch, Size, Size);
        var first = new Trainer(plan, new SgdOptimizer(model.Parameters, backend, new SgdOptions()), Schedule);
        var second = new Trainer(plan, new SgdOptimizer(model.Parameters, backend, new SgdOptions(0.9f)), Schedule);
        var data = new Batches(RandomBatches(8).Take(2).ToArray());
        Assert.That(second.TrainEpoch(data, new TrainingState(), null, CancellationToken.None).Epoch, Is.EqualTo(1));
        Assert.Throws<ObjectDisposedException>(() => first.TrainEpoch(data, new TrainingState(), null, CancellationToken.None));
    }
}

using GhostNet.Backends;
using GhostNet.Cuda;
using GhostNet.Graph;
using GhostNet.Models;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// A training step captured once as a CUDA graph and replayed (issue 13): the same bits as the
/// step made call by call, with the learning rate and the dropout seed changing every step (they
/// live in device memory, which the plan writes before each replay). And what a capture refuses.
/// </summary>
[Category("Gpu")]
public class CudaGraphTests
{
    private sealed class FixedBatches(IReadOnlyList<HostBatch> batches) : IBatchSource
    {
        public int BatchSize => batches[0].Labels.Length;
        public int BatchesPerEpoch => batches.Count;
        public IReadOnlyList<string> Classes { get; } = Enumerable.Range(0, 10).Select(c => c.ToString()).ToArray();
        public IEnumerable<HostBatch> Epoch(int epoch, CancellationToken cancel) => batches;
        public double WaitSeconds => 0;
    }

    private static FixedBatches RandomBatches(int count, int batch, int size, int seed)
    {
        var rng = new Random(seed);
        return new FixedBatches(Enumerable.Range(0, count).Select(_ => new HostBatch(
            Enumerable.Range(0, batch * 3 * size * size).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(),
            Enumerable.Range(0, batch).Select(_ => rng.Next(10)).ToArray())).ToArray());
    }

    [Test]
    public void Twenty_replayed_steps_equal_twenty_steps_call_by_call_bit_for_bit()
    {
        GpuHarness.RequireGpu();
        const int batch = 4, size = 32, steps = 20;
        var data = RandomBatches(steps, batch, size, 11);
        // Dropout on, and a warm-up then cosine schedule: the rate and the seed change every step.
        var config = new GhostNetConfig(0.25f, 10, 0.3f);
        var schedule = new LrSchedule(new LrScheduleOptions(LrScheduleKind.Cosine, 0.05f, 2, WarmupEpochs: 1), steps);
        using var gpu = new CudaBackend(0);
        var runs = new[] { true, false }.Select(capture =>
        {
            using var model = new GhostNetModel(config, gpu, 7);
            using var plan = model.Compile(batch, size, size);
            var sgd = new SgdOptimizer(model.Parameters, gpu, new SgdOptions(0.9f, 4e-5f, Nesterov: true));
            var notes = new List<string>();
            var trainer = new Trainer(plan, sgd, schedule, notes.Add) { CaptureSteps = capture };
            var losses = new List<float>();
            long replays = gpu.GraphReplays;
            var state = trainer.TrainEpoch(data, new TrainingState(), (r, _) => losses.Add(r.Loss), CancellationToken.None);
            Assert.That(state.GlobalStep, Is.EqualTo(steps));
            Assert.That(notes, Is.Empty, "no capture failed");
            // The first step runs call by call (it sizes the workspaces), the capture replays the rest.
            Assert.That(gpu.GraphReplays - replays, Is.EqualTo(capture ? steps - 1 : 0), "replays");
            if (capture) Assert.That(plan.TrainingStep!.Launches, Is.GreaterThan(100), "the captured step holds the whole step's launches");
            return (Losses: losses, State: StateDict.Read(model.Parameters, gpu));
        }).ToArray();
        var (replayed, eager) = (runs[0], runs[1]);
        Assert.That(replayed.Losses, Is.EqualTo(eager.Losses), "the losses of every step");
        Assert.That(replayed.Losses.Distinct().Count(), Is.EqualTo(steps), "the steps train");
        Assert.That(replayed.State.Select(t => t.Name), Is.EqualTo(eager.State.Select(t => t.Name)));
        for (int i = 0; i < eager.State.Count; i++)
            Assert.That(replayed.State[i].Data, Is.EqualTo(eager.State[i].Data), eager.State[i].Name); // bit for bit, NaN included
    }

    [Test]
    public void A_captured_training_step_waits_for_the_device_once()
    {
        // The uploads go through page-locked stagings and the totals come back one step late:
        // between two reports the host waits only for the older step's totals (issue 13's target).
        GpuHarness.RequireGpu();
        const int batch = 4, size = 32, steps = 6;
        using var gpu = new CudaBackend(0);
        using var model = new GhostNetModel(new GhostNetConfig(0.25f, 10, 0.2f), gpu, 3);
        using var plan = model.Compile(batch, size, size);
        var trainer = new Trainer(plan, new SgdOptimizer(model.Parameters, gpu, new SgdOptions()),
            new LrSchedule(new LrScheduleOptions(LrScheduleKind.Cosine, 0.01f, 1), steps));
        var waits = new List<long>();
        trainer.TrainEpoch(RandomBatches(steps, batch, size, 5), new TrainingState(), (_, _) => waits.Add(gpu.HostWaits), CancellationToken.None);
        Assert.That(trainer.NotCapturedBecause, Is.Null);
        var between = waits.Zip(waits.Skip(1), (a, b) => b - a).ToArray();
        Assert.That(between, Has.All.EqualTo(1), "host waits between consecutive reports");
    }

    [Test]
    public void Batches_set_back_to_back_are_each_uploaded_whole()
    {
        // Three batches set with no wait between: the third reuses the first's staging while the
        // first's copy may still be queued, so it must wait for that copy (the emulator fails a
        // wait that finds page-locked bytes changed under a queued copy).
        GpuHarness.RequireGpu();
        const int batch = 2, size = 32;
        var data = RandomBatches(3, batch, size, 8).Epoch(0, default).ToArray();
        using var gpu = new CudaBackend(0);
        using var model = new GhostNetModel(new GhostNetConfig(0.25f, 10, 0f), gpu, 4);
        using var plan = model.Compile(batch, size, size, withGradients: false);
        foreach (var b in data) plan.SetBatch(b.Images.Span, b.Labels.Span);
        plan.Forward(training: false);
        var input = new float[plan.Input.Count];
        gpu.Download(plan.Input, input);
        Assert.That(input, Is.EqualTo(data[2].Images.ToArray()), "the third batch, bit for bit");
        Assert.That(data[1].Images.ToArray(), Is.Not.EqualTo(data[2].Images.ToArray()));
    }

    [Test]
    public void A_graph_is_dropped_when_capture_is_turned_off_or_the_backend_picks_other_kernels()
    {
        GpuHarness.RequireGpu();
        const int batch = 2, size = 32;
        using var gpu = new CudaBackend(0);
        using var model = new GhostNetModel(new GhostNetConfig(0.25f, 10, 0f), gpu, 2);
        using var plan = model.Compile(batch, size, size, withGradients: false);
        var (pixels, labels) = RandomPixels(new Random(3), batch, size);
        long Replays(int forwards)
        {
            long before = gpu.GraphReplays;
            for (int i = 0; i < forwards; i++)
            {
                plan.SetBatch(pixels, labels, Normalization.ImageNet);
                plan.Forward(training: false);
            }
            return gpu.GraphReplays - before;
        }
        Assert.That(Replays(3), Is.EqualTo(2), "call by call, then captured and replayed");
        // Another GEMM kernel: the graph holds the old one, so it is stale and made again.
        gpu.FuseGemmBatchNorm = false;
        Assert.That(Replays(1), Is.Zero, "a stale graph is not replayed");
        Assert.That(Replays(2), Is.EqualTo(2), "captured again under the new setting, and replayed");
        plan.CaptureForward = false;
        Assert.That(plan.ForwardGraphLaunches, Is.Zero, "turning capture off drops the graph");
        Assert.That(Replays(3), Is.Zero);
    }

    [Test]
    public void Pixel_batches_uploaded_beside_the_work_reach_each_forward_whole()
    {
        // Pixel batches go up on the copy stream into two buffers in turn, beside the work queued
        // before them. Four batches set with no host wait between, each input read back (queued,
        // not waited for) after its normalisation: each must be its own batch, as the CPU
        // normalises it. The emulator runs a stream's work only when it is waited for: if the
        // compute stream did not wait for the copy, normalize_images would read the bytes before
        // they came.
        GpuHarness.RequireGpu();
        const int size = 32, batches = 4;
        using var gpu = new CudaBackend(0);
        using var model = new GhostNetModel(new GhostNetConfig(0.25f, 10, 0f), gpu, 4);
        using var plan = model.Compile(1, size, size, withGradients: false);
        var rng = new Random(21);
        var data = Enumerable.Range(0, batches).Select(_ => RandomPixels(rng, 1, size).Pixels).ToArray();
        var reads = Enumerable.Range(0, batches).Select(_ => gpu.CreateReadback(plan.Input)).ToArray();
        try
        {
            // (From the third batch on the host reuses page-locked bytes whose copy may still be queued,
            // and waits for that copy alone: the trainer, one step behind, never does.)
            for (int b = 0; b < batches; b++)
            {
                plan.SetBatch(data[b], [0], Normalization.ImageNet);
                reads[b].Start();
            }
            for (int b = 0; b < batches; b++)
            {
                var expected = new float[3 * size * size];
                Normalization.ImageNet.Normalize(data[b], expected, size, size);
                var got = reads[b].Wait().ToArray().Select(BitConverter.Int32BitsToSingle).ToArray();
                Assert.That(got, Is.EqualTo(expected), $"the input of batch {b}, bit for bit");
            }
        }
        finally
        {
            foreach (var r in reads) r.Dispose();
        }
    }

    [Test]
    public void An_overlapped_copy_waits_for_the_last_reader_of_its_destination()
    {
        // One overlapped staging, three uploads into one destination, each read by a launch and
        // marked Consumed, with no host wait but the staging's own (before reusing its bytes, the
        // host waits for the last copy from them: that runs the copy stream). If a copy did not
        // wait for the last reader's mark, the emulator would run the second copy, at the third
        // Write, before the first read, which would then normalise the second batch's bytes.
        GpuHarness.RequireGpu();
        const int size = 8, uploads = 3;
        using var gpu = new CudaBackend(0);
        var storage = new Storage("overlapped_staging");
        var pixels = new Tensor(storage, storage.Reserve(3 * size * size / 4), 1, 1, 1, 3 * size * size / 4);
        var outputs = Enumerable.Range(0, uploads).Select(_ => new Tensor(storage, storage.Reserve(3 * size * size), 1, 3, size, size)).ToArray();
        storage.Bind(gpu);
        var rng = new Random(5);
        var data = Enumerable.Range(0, uploads).Select(_ =>
        {
            var bytes = new byte[3 * size * size];
            rng.NextBytes(bytes);
            return bytes;
        }).ToArray();
        using var staging = gpu.CreateStaging(pixels, overlapped: true);
        var reads = outputs.Select(o => gpu.CreateReadback(o)).ToArray();
        try
        {
            for (int u = 0; u < uploads; u++)
            {
                data[u].CopyTo(staging.Write());
                staging.Start();
                gpu.NormalizeImages(pixels, outputs[u], Normalization.ImageNet);
                staging.Consumed();
                reads[u].Start();
            }
            for (int u = 0; u < uploads; u++)
            {
                var expected = new float[3 * size * size];
                Normalization.ImageNet.Normalize(data[u], expected, size, size);
                Assert.That(reads[u].Wait().ToArray().Select(BitConverter.Int32BitsToSingle).ToArray(), Is.EqualTo(expected), $"the read of upload {u}");
            }
        }
        finally
        {
            foreach (var r in reads) r.Dispose();
            storage.Release();
        }
    }

    [Test]
    public void A_replay_takes_the_learning_rate_and_the_seed_written_after_the_capture()
    {
        GpuHarness.RequireGpu();
        using var gpu = new CudaBackend(0);
        var storage = new Storage("graph_test");
        var values = new Tensor(storage, storage.Reserve(4), 1, 4, 1, 1);
        var p = new Tensor(storage, storage.Reserve(1000), 1, 1000, 1, 1);
        var g = new Tensor(storage, storage.Reserve(1000), 1, 1000, 1, 1);
        var m = new Tensor(storage, storage.Reserve(1000), 1, 1000, 1, 1);
        var x = new Tensor(storage, storage.Reserve(1000), 1, 1000, 1, 1);
        var y = new Tensor(storage, storage.Reserve(1000), 1, 1000, 1, 1);
        storage.Bind(gpu);
        try
        {
            var ones = Enumerable.Repeat(1f, 1000).ToArray();
            gpu.Upload(ones, x);
            gpu.Upload(ones, g);
            var h = new SgdHyper(123f, 0f, 0f, false) { LearningRateAt = values.Channels(2, 1) };
            var seed = new DropoutSeed(42, values.Channels(0, 2));
            void Write(ulong s, float lr) => gpu.UploadInts([(int)(uint)s, (int)(uint)(s >> 32), BitConverter.SingleToInt32Bits(lr), 0], values);
            void Calls()
            {
                gpu.DropoutForward(x, y, 0.5f, seed);
                gpu.SgdStep(p, g, m, h);
            }
            using var graph = gpu.Capture(Calls, out string? why);
            Assert.That(graph, Is.Not.Null, why);
            Assert.That(graph!.Launches, Is.EqualTo(2));
            foreach (var (s, lr) in new[] { (1UL, 0.5f), (0x9e3779b97f4a7c15UL, 0.25f), (7UL << 40, 2f) })
            {
                gpu.Upload(new float[1000], p);
                gpu.Upload(new float[1000], m);
                Write(s, lr);
                graph.Replay();
                var (replayedY, replayedP) = (Download(gpu, y), Download(gpu, p));
                gpu.Upload(new float[1000], p);
                gpu.Upload(new float[1000], m);
                gpu.DropoutForward(x, y, 0.5f, s);
                gpu.SgdStep(p, g, m, h with { LearningRateAt = default, LearningRate = lr });
                Assert.That(replayedY, Is.EqualTo(Download(gpu, y)), $"the mask of seed {s:x}");
                Assert.That(replayedP, Is.EqualTo(Download(gpu, p)), $"the update at rate {lr}");
                Assert.That(replayedP[0], Is.EqualTo(-lr), "p = 0 - lr * g");
            }
        }
        finally
        {
            storage.Release();
        }
    }

    private static (byte[] Pixels, int[] Labels) RandomPixels(Random rng, int batch, int size)
    {
        var pixels = new byte[batch * 3 * size * size];
        rng.NextBytes(pixels);
        return (pixels, Enumerable.Range(0, batch).Select(_ => rng.Next(10)).ToArray());
    }

    [Test]
    public void Replayed_eval_forwards_equal_forwards_call_by_call_and_make_no_host_wait()
    {
        // An inference plan's forward is captured on its second call. Between forwards a training
        // step moves the weights and the running statistics: each replay must read them as they are.
        GpuHarness.RequireGpu();
        const int batch = 3, size = 32, batches = 5;
        using var gpu = new CudaBackend(0);
        using var model = new GhostNetModel(new GhostNetConfig(0.25f, 10, 0.2f), gpu, 9);
        using var replayed = model.Compile(batch, size, size, withGradients: false);
        using var eager = model.Compile(batch, size, size, withGradients: false);
        eager.CaptureForward = false;
        using var train = model.Compile(batch, size, size);
        var sgd = new SgdOptimizer(model.Parameters, gpu, new SgdOptions(0.9f));
        var rng = new Random(4);
        void TrainingStep()
        {
            var (pixels, labels) = RandomPixels(rng, batch, size);
            train.SetBatch(pixels, labels, Normalization.ImageNet);
            train.Forward(training: true);
            train.Backward();
            sgd.Step(0.2f);
        }
        TrainingStep(); // sizes the workspaces first, so that no later call moves them under the graph
        long replays = gpu.GraphReplays;
        var seen = new List<float[]>();
        for (int i = 0; i < batches; i++)
        {
            var (pixels, labels) = RandomPixels(rng, batch, size);
            var results = new[] { replayed, eager }.Select(plan =>
            {
                plan.SetBatch(pixels, labels, Normalization.ImageNet);
                long waits = gpu.HostWaits;
                plan.Forward(training: false);
                long forwardWaits = gpu.HostWaits - waits;
                return (Logits: Download(gpu, plan.Logits), Totals: plan.Totals(), Waits: forwardWaits);
            }).ToArray();
            Assert.That(results[0].Logits, Is.EqualTo(results[1].Logits), $"logits of batch {i}");
            Assert.That(results[0].Totals, Is.EqualTo(results[1].Totals), $"totals of batch {i}");
            Assert.That(results[0].Waits, Is.Zero, $"host waits in the forward of batch {i}");
            seen.Add(results[0].Logits);
            TrainingStep();
        }
        Assert.That(replayed.ForwardNotCapturedBecause, Is.Null);
        Assert.That(gpu.GraphReplays - replays, Is.EqualTo(batches - 1), "every forward after the first replayed");
        Assert.That(replayed.ForwardGraphLaunches, Is.GreaterThan(50), "the graph holds the whole forward");
        Assert.That(eager.ForwardGraphLaunches, Is.Zero, "CaptureForward off captures nothing");
        Assert.That(seen.Select(l => l[0]).Distinct().Count(), Is.EqualTo(batches), "the forwards differ");
    }

    [Test]
    public void Changing_the_label_smoothing_drops_the_graphs_that_hold_it()
    {
        GpuHarness.RequireGpu();
        const int batch = 3, size = 32;
        using var gpu = new CudaBackend(0);
        using var model = new GhostNetModel(new GhostNetConfig(0.25f, 10, 0f), gpu, 2);
        using var replayed = model.Compile(batch, size, size, withGradients: false);
        using var eager = model.Compile(batch, size, size, withGradients: false);
        eager.CaptureForward = false;
        var (pixels, labels) = RandomPixels(new Random(6), batch, size);
        float Loss(Plan plan)
        {
            plan.SetBatch(pixels, labels, Normalization.ImageNet);
            plan.Forward(training: false);
            return plan.Loss();
        }
        float plain = Loss(replayed);
        Assert.That(Loss(replayed), Is.EqualTo(plain));
        Assert.That(replayed.ForwardGraphLaunches, Is.GreaterThan(0), "captured");
        replayed.LabelSmoothing = eager.LabelSmoothing = 0.3f;
        Assert.That(replayed.ForwardGraphLaunches, Is.Zero, "the graph is dropped");
        float smoothed = Loss(eager);
        Assert.That(smoothed, Is.Not.EqualTo(plain));
        long replays = gpu.GraphReplays;
        for (int i = 0; i < 3; i++) Assert.That(Loss(replayed), Is.EqualTo(smoothed), $"forward {i} after the change");
        Assert.That(gpu.GraphReplays - replays, Is.EqualTo(2), "call by call once, then captured again and replayed");
    }

    [Test]
    public void A_capture_refuses_host_copies_synchronisation_and_allocation_and_leaves_the_stream_usable()
    {
        GpuHarness.RequireGpu();
        using var gpu = new CudaBackend(0);
        var storage = new Storage("graph_refusals");
        var x = new Tensor(storage, storage.Reserve(64), 1, 64, 1, 1);
        storage.Bind(gpu);
        try
        {
            var refusals = new (string What, Action Call)[]
            {
                ("an upload", () => gpu.Upload(new float[64], x)),
                ("a download", () => gpu.Download(x, new float[64])),
                ("a synchronisation", gpu.Synchronize),
                ("an allocation", () => gpu.Allocate(16).Dispose()),
            };
            foreach (var (what, call) in refusals)
            {
                var graph = gpu.Capture(() =>
                {
                    gpu.Fill(x, 1f);
                    call();
                }, out string? why);
                Assert.That(graph, Is.Null, what);
                Assert.That(why, Does.Contain(what).And.Contain("inside the captured region"));
            }
            // Nothing captured ran, and the stream works call by call afterwards.
            gpu.Fill(x, 2f);
            Assert.That(Download(gpu, x), Is.All.EqualTo(2f));
            // An error that is not a refusal ends the capture and reaches the caller.
            Assert.Catch<ArgumentException>(() => gpu.Capture(() => gpu.DropoutForward(x, x, 1.5f, 0UL), out _));
            gpu.Fill(x, 3f);
            Assert.That(Download(gpu, x), Is.All.EqualTo(3f));
        }
        finally
        {
            storage.Release();
        }
    }

    private static float[] Download(IBackend backend, in Tensor t)
    {
        var values = new float[t.Count];
        backend.Download(t, values);
        return values;
    }
}

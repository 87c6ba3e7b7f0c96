using GhostNet.Backends;
using GhostNet.Cuda;
using GhostNet.Models;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// A host application may call the library from any thread (a thread pool, a UI thread, a request
/// handler), one call at a time. The driver's current context is per thread, so every call that
/// reaches the driver makes the backend's context current first (issue 13). The emulator fails a
/// driver call on a thread with no current context, as the driver does.
/// </summary>
[Category("Gpu")]
public class CudaThreadTests
{
    private const int Batch = 2, Size = 32, Steps = 4;

    [Test]
    public void Every_call_may_come_from_a_thread_of_its_own()
    {
        GpuHarness.RequireGpu();
        var here = Run(call => call());
        var there = Run(OnNewThread);
        Assert.That(there.Losses, Is.EqualTo(here.Losses), "the training losses");
        Assert.That(there.Logits, Is.EqualTo(here.Logits), "the last eval forward's logits, bit for bit");
        Assert.That(here.Losses.Distinct().Count(), Is.EqualTo(Steps), "the steps train");
    }

    [Test]
    public void Each_entry_point_alone_on_a_new_thread_finds_the_context_current()
    {
        // The run above makes groups of calls per thread, where the first call of a group could
        // make the context current for the rest: here each call that reaches the driver is the
        // only one on its thread.
        GpuHarness.RequireGpu();
        CudaBackend gpu = null!;
        OnNewThread(() => gpu = new CudaBackend(0));
        var storage = new Storage("thread_entries");
        var x = new Tensor(storage, storage.Reserve(64), 1, 64, 1, 1);
        var y = new Tensor(storage, storage.Reserve(64), 1, 64, 1, 1);
        var pixels = new Tensor(storage, storage.Reserve(48), 1, 1, 1, 48);
        var image = new Tensor(storage, storage.Reserve(192), 1, 3, 8, 8);
        HostReadback read = null!;
        HostStaging staging = null!, overlapped = null!;
        ICapturedCalls? graph = null;
        var values = new float[64];
        var steps = new (string Name, Action Call)[]
        {
            ("bind (allocate)", () => storage.Bind(gpu)),
            ("upload", () => gpu.Upload(Enumerable.Range(0, 64).Select(i => (float)i).ToArray(), x)),
            ("launch", () => gpu.Relu(x, y)),
            ("download", () => gpu.Download(y, values)),
            ("synchronize", gpu.Synchronize),
            ("readback made", () => read = gpu.CreateReadback(y)),
            ("readback started", () => read.Start()),
            ("readback waited for", () => Assert.That(read.Wait()[5], Is.EqualTo(BitConverter.SingleToInt32Bits(5f)))),
            ("staging made", () => staging = gpu.CreateStaging(x)),
            ("staging written", () => staging.Write().Fill(0)),
            ("staging started", () => staging.Start()),
            ("staging written again", () => staging.Write().Fill(0)),
            ("overlapped staging made", () => overlapped = gpu.CreateStaging(pixels, overlapped: true)),
            ("overlapped staging written", () => overlapped.Write().Fill(7)),
            ("overlapped staging started", () => overlapped.Start()),
            ("normalised", () => gpu.NormalizeImages(pixels, image, Normalization.ImageNet)),
            ("overlapped staging consumed", () => overlapped.Consumed()),
            ("overlapped staging written again", () => overlapped.Write().Fill(9)),
            ("overlapped staging started again", () => overlapped.Start()),
            ("captured", () => graph = gpu.Capture(() => gpu.Relu(y, x), out _)),
            ("replayed", () => graph!.Replay()),
            ("synchronized after the replay", gpu.Synchronize),
            ("graph disposed", () => graph!.Dispose()),
            ("readback disposed", () => read.Dispose()),
            ("stagings disposed", () =>
            {
                staging.Dispose();
                overlapped.Dispose();
            }),
            ("storage released (free)", storage.Release),
            ("backend disposed", gpu.Dispose),
        };
        foreach (var (name, call) in steps)
            try
            {
                OnNewThread(call);
            }
            catch (AssertionException e)
            {
                Assert.Fail($"{name}: {e.Message}");
            }
        Assert.That(values[5], Is.EqualTo(5f));
        Assert.That(graph, Is.Not.Null);
    }

    /// <summary>Runs <paramref name="work"/> on a new thread, one the backend has never seen, and waits for it.</summary>
    private static void OnNewThread(Action work)
    {
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                work();
            }
            catch (Exception e)
            {
                error = e;
            }
        });
        thread.Start();
        thread.Join();
        if (error is not null) throw new AssertionException($"on another thread: {error.GetType().Name}: {error.Message}");
    }

    /// <summary>
    /// A backend made, a model and two plans on it, <see cref="Steps"/> training steps (captured
    /// from the second on), three eval forwards (call by call, captured, replayed), all disposed:
    /// each group of calls made through <paramref name="on"/>.
    /// </summary>
    private static (List<float> Losses, float[] Logits) Run(Action<Action> on)
    {
        CudaBackend gpu = null!;
        GhostNetModel model = null!;
        Plan train = null!, eval = null!;
        Trainer trainer = null!;
        on(() => gpu = new CudaBackend(0));
        var losses = new List<float>();
        var logits = new float[Batch * 10];
        try
        {
            on(() => model = new GhostNetModel(new GhostNetConfig(0.25f, 10, 0.2f), gpu, 3));
            on(() => train = model.Compile(Batch, Size, Size));
            on(() => eval = model.Compile(Batch, Size, Size, withGradients: false));
            var schedule = new LrSchedule(new LrScheduleOptions(LrScheduleKind.Cosine, 0.1f, Steps), 1); // an epoch of one batch a step
            on(() => trainer = new Trainer(train, new SgdOptimizer(model.Parameters, gpu, new SgdOptions(0.9f)), schedule));
            var state = new TrainingState();
            for (int s = 0; s < Steps; s++)
            {
                var one = new OneBatch(Pixels(s));
                on(() => state = trainer.TrainEpoch(one, state, (r, _) => losses.Add(r.Loss), CancellationToken.None));
            }
            for (int e = 0; e < 3; e++)
            {
                var batch = Pixels(100 + e);
                on(() =>
                {
                    eval.SetBatch(batch);
                    eval.Forward(training: false);
                    gpu.Download(eval.Logits, logits);
                });
            }
            Assert.That(eval.ForwardGraphLaunches, Is.GreaterThan(0), "the eval forward was captured");
            Assert.That(trainer.NotCapturedBecause, Is.Null);
        }
        finally
        {
            on(() =>
            {
                eval?.Dispose();
                train?.Dispose();
                model?.Dispose();
                gpu.Dispose();
            });
        }
        return (losses, logits);
    }

    private static HostBatch Pixels(int seed)
    {
        var rng = new Random(seed);
        var pixels = new byte[Batch * 3 * Size * Size];
        rng.NextBytes(pixels);
        return HostBatch.OfPixels(pixels, new[] { rng.Next(10), rng.Next(10) }, Normalization.ImageNet);
    }

    private sealed class OneBatch(HostBatch batch) : IBatchSource
    {
        public int BatchSize => batch.Count;
        public int BatchesPerEpoch => 1;
        public IReadOnlyList<string> Classes { get; } = Enumerable.Range(0, 10).Select(c => c.ToString()).ToArray();
        public double WaitSeconds => 0;
        public IEnumerable<HostBatch> Epoch(int epoch, CancellationToken cancel) => [batch];
    }
}

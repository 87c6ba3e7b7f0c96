using GhostNet.Cpu;
using GhostNet.Models;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Training;

/// <summary>Properties of whole training steps on the CPU backend: learning, reproducibility, no allocation.</summary>
public class TrainingStepTests
{
    private static (float[] Images, int[] Labels) RandomBatch(int seed, int batch, int size, int classes)
    {
        var rng = new Random(seed);
        var images = new float[batch * 3 * size * size];
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 2 - 1);
        return (images, Enumerable.Range(0, batch).Select(_ => rng.Next(classes)).ToArray());
    }

    [Test]
    public void A_small_ghostnet_memorises_a_fixed_batch_of_random_labels()
    {
        int seed = TestContext.CurrentContext.Random.Next();
        TestContext.Out.WriteLine($"seed {seed}");
        using var backend = new CpuBackend();
        using var model = new GhostNetModel(new GhostNetConfig(Width: 0.5f, NumClasses: 10, DropRate: 0f), backend, seed);
        using var plan = model.Compile(16, 32, 32);
        var (images, labels) = RandomBatch(seed, 16, 32, 10);
        plan.SetBatch(images, labels);
        var sgd = new SgdOptimizer(model.Parameters, backend, new SgdOptions(Momentum: 0.9f, WeightDecay: 0f));
        var losses = new List<float>();
        for (int step = 0; step < 200; step++)
        {
            plan.Forward(training: true);
            losses.Add(plan.Loss());
            if (losses[^1] < 0.05f) break;
            plan.Backward();
            sgd.Step(0.05f);
        }
        TestContext.Out.WriteLine($"{losses.Count} steps: {string.Join(" ", losses.Where((_, i) => i % 10 == 0).Select(l => l.ToString("F3")))} ... {losses[^1]:F4}");
        Assert.That(losses[^1], Is.LessThan(0.05f), "training loss on the fixed batch");
        plan.Forward(training: true);
        Assert.That(plan.CountCorrect().Top1, Is.EqualTo(16), "every sample classified right");
    }

    [Test]
    public void Two_runs_with_the_same_seed_give_bit_identical_losses()
    {
        float[] Run()
        {
            using var backend = new CpuBackend();
            using var model = new GhostNetModel(new GhostNetConfig(Width: 0.5f, NumClasses: 10, DropRate: 0.2f), backend, seed: 42);
            using var plan = model.Compile(8, 32, 32);
            var sgd = new SgdOptimizer(model.Parameters, backend, new SgdOptions(Nesterov: true));
            var losses = new float[5];
            for (int step = 0; step < losses.Length; step++)
            {
                var (images, labels) = RandomBatch(100 + step, 8, 32, 10);
                plan.SetBatch(images, labels);
                plan.Forward(training: true);
                losses[step] = plan.Loss();
                plan.Backward();
                sgd.Step(0.1f);
            }
            return losses;
        }
        var first = Run();
        var second = Run();
        TestContext.Out.WriteLine(string.Join(" ", first.Select(l => l.ToString("R"))));
        Assert.That(first.Distinct().Count(), Is.EqualTo(first.Length), "losses change from step to step");
        Assert.That(second.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(first.Select(BitConverter.SingleToInt32Bits)));
    }

    [Test]
    public void A_training_step_allocates_no_managed_memory_after_the_first()
    {
        using var backend = new CpuBackend();
        using var model = new GhostNetModel(new GhostNetConfig(Width: 0.5f, NumClasses: 10), backend, seed: 1);
        using var plan = model.Compile(8, 64, 64);
        var sgd = new SgdOptimizer(model.Parameters, backend, new SgdOptions(NoDecayOnNormAndBias: true));
        var (images, labels) = RandomBatch(3, 8, 64, 10);
        void Step()
        {
            plan.SetBatch(images, labels);
            plan.Forward(training: true);
            plan.Loss();
            plan.Backward();
            sgd.Step(0.01f);
            plan.CountCorrect();
        }
        Step();
        Step();
        // This thread plus the backend's workers: every thread a step runs on. (The whole-process
        // counter would also see the test host's own threads.)
        long Allocated() => GC.GetAllocatedBytesForCurrentThread() + backend.WorkerAllocatedBytes;
        long before = Allocated();
        for (int i = 0; i < 3; i++) Step();
        long allocated = Allocated() - before;
        Assert.That(allocated, Is.Zero, "bytes allocated on the managed heap by three training steps, on all threads they use");
        Assert.That(backend.WorkerAllocatedBytes, Is.GreaterThan(0), "the worker threads' counters are read");
    }

    [Test]
    public void Eval_mode_uses_running_statistics_and_does_not_change_them()
    {
        using var backend = new CpuBackend();
        using var model = new GhostNetModel(new GhostNetConfig(Width: 0.5f, NumClasses: 10), backend, seed: 2);
        using var train = model.Compile(8, 32, 32);
        using var eval = model.Compile(1, 32, 32, withGradients: false);
        var (images, labels) = RandomBatch(5, 8, 32, 10);
        train.SetBatch(images, labels);
        for (int i = 0; i < 3; i++) train.Forward(training: true);
        var counter = (Graph.Counter)model.Parameters["bn1.num_batches_tracked"];
        Assert.That(counter.Value, Is.EqualTo(3));
        var rm = ((Graph.StatBuffer)model.Parameters["bn1.running_mean"]).Value;
        var running = new float[rm.Count];
        backend.Download(rm, running);
        Assert.That(running.Any(v => v != 0), "running mean moved in training");

        // Eval: a sample's logits do not depend on the rest of the batch and stats stay put.
        eval.SetBatch(images.AsSpan(0, 3 * 32 * 32), labels.AsSpan(0, 1));
        eval.Forward(training: false);
        var alone = new float[10];
        backend.Download(eval.Logits, alone);
        var after = new float[rm.Count];
        backend.Download(rm, after);
        Assert.That(after, Is.EqualTo(running));
        Assert.That(counter.Value, Is.EqualTo(3));
        using var evalBatch = model.Compile(8, 32, 32, withGradients: false);
        evalBatch.SetBatch(images, labels);
        evalBatch.Forward(training: false);
        var batched = new float[80];
        backend.Download(evalBatch.Logits, batched);
        Assert.That(batched.Take(10), Is.EqualTo(alone).Within(1e-5f));
        Assert.Throws<InvalidOperationException>(() => eval.Forward(training: true));
    }

    // Training: batch norm's statistics spread one image's NaN over the batch, so every row is
    // NaN, and the step must say so (the trainer stops on a non-finite loss). Evaluation: running
    // statistics keep the NaN in its image; labels are set to the clean run's top-1, so the NaN row
    // would count as correct if a NaN rank passed for a good one.
    [TestCase(true)]
    [TestCase(false)]
    public void A_NaN_pixel_in_one_image_makes_the_loss_NaN_and_its_row_never_correct(bool training)
    {
        using var backend = new CpuBackend();
        using var model = new GhostNetModel(new GhostNetConfig(Width: 0.25f, NumClasses: 10, DropRate: 0.2f), backend, seed: 7);
        using var plan = model.Compile(4, 32, 32);
        var (images, labels) = RandomBatch(3, 4, 32, 10);
        plan.SetBatch(images, labels);
        plan.Forward(training: false);
        var logits = new float[4 * 10];
        backend.Download(plan.Logits, logits);
        labels = Enumerable.Range(0, 4).Select(i => Array.IndexOf(logits, logits.Skip(i * 10).Take(10).Max(), i * 10) - i * 10).ToArray();
        plan.SetBatch(images, labels);
        plan.Forward(training: false);
        Assert.That(plan.CountCorrect(), Is.EqualTo((4, 4)), "labels are the clean run's top-1");
        images[2 * 3 * 32 * 32 + 5 * 32 + 17] = float.NaN; // image 2, red, (5, 17)
        plan.SetBatch(images, labels);
        plan.Forward(training);
        Assert.That(plan.Loss(), Is.NaN, "mean loss of a batch with a NaN pixel");
        Assert.That(plan.CountCorrect(), Is.EqualTo(training ? (0, 0) : (3, 3)), "rows with NaN logits counted as correct");
        if (!training) return;
        plan.Backward();
        var first = model.Parameters.Parameters.First();
        var grads = new float[first.Grad.Count];
        backend.Download(first.Grad, grads);
        Assert.That(grads, Has.Some.NaN, $"{first.Name}'s gradient");
    }
}

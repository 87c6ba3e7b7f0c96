using System.CommandLine;
using System.Diagnostics;
using GhostNet.Backends;
using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>
/// `ghostcuda bench`: a quick speed table without BenchmarkDotNet (the GPU machine has no SDK):
/// training steps (forward, backward, SGD) and inference forwards of GhostNet on random data,
/// timed after warm-up with the device synchronised at both ends of the timed region.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var arch = new ArchOptions();
        var device = Devices.Option();
        var size = new Option<int>("--size") { DefaultValueFactory = _ => 224 };
        var train = new Option<string>("--train-batches") { Description = "Comma-separated training batch sizes", DefaultValueFactory = _ => "32" };
        var infer = new Option<string>("--infer-batches") { Description = "Comma-separated inference batch sizes", DefaultValueFactory = _ => "1,32" };
        var steps = new Option<int>("--steps") { Description = "Timed steps per row", DefaultValueFactory = _ => 10 };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads") { DefaultValueFactory = _ => 0 };
        var profile = new Option<bool>("--profile") { Description = "Also print where one training step's time goes, per op family" };
        var command = new Command("bench", "Time GhostNet training steps and inference on a device.");
        arch.AddTo(command);
        foreach (var o in new Option[] { device, size, train, infer, steps, warmup, threads, profile }) command.Options.Add(o);
        command.SetAction(r =>
        {
            var config = arch.Config(r, 1000, 0.2f);
            int s = r.GetValue(size), n = r.GetValue(steps), w = r.GetValue(warmup);
            if (s is < Training.CheckpointInfo.MinInputSize or > Training.CheckpointInfo.MaxInputSize)
                throw new ArgumentException($"--size must lie in {Training.CheckpointInfo.MinInputSize}..{Training.CheckpointInfo.MaxInputSize}");
            if (n is < 1 or > 100_000) throw new ArgumentException("--steps must lie in 1..100000");
            if (w is < 0 or > 100_000) throw new ArgumentException("--warmup must lie in 0..100000");
            if (r.GetValue(threads) is < 0 or > 256) throw new ArgumentException("--threads must lie in 0..256 (0: one per core)");
            var trainBatches = Parse(r.GetValue(train)!, "--train-batches");
            var inferBatches = Parse(r.GetValue(infer)!, "--infer-batches");
            using var backend = Devices.Create(r.GetValue(device)!, r.GetValue(threads));
            if (backend is Cpu.CpuBackend)
            {
                long largest = trainBatches.Select(b => GhostNetModel.PlanBytes(config, b, s, s, withGradients: true))
                    .Concat(inferBatches.Select(b => GhostNetModel.PlanBytes(config, b, s, s, withGradients: false))).DefaultIfEmpty(0).Max();
                MemoryBudget.Require(largest + GhostNetModel.StateBytes(config), $"the batch sizes at --size {s}");
            }
            using var model = new GhostNetModel(config, backend, seed: 0);
            Console.WriteLine($"GhostNet width {config.Width} at {s}x{s} on {backend.Name}, {n} timed steps after {w} warm-up");
            Console.WriteLine($"| mode | batch | ms per step | images/s |");
            Console.WriteLine($"|---|---:|---:|---:|");
            foreach (int b in trainBatches) Row("train", b, Time(model, backend, b, s, true, n, w));
            foreach (int b in inferBatches) Row("inference", b, Time(model, backend, b, s, false, n, w));
            if (r.GetValue(profile))
            {
                if (trainBatches.Count == 0) throw new ArgumentException("--profile needs a training batch size (--train-batches)");
                Profile(config, backend, trainBatches[0], s);
            }
            return 0;
        });
        return command;
    }

    /// <summary>One training step on a profiling wrapper of the backend: seconds per op family.</summary>
    private static void Profile(GhostNetConfig config, IBackend backend, int batch, int size)
    {
        using var profiled = new ProfilingBackend(backend, ownsInner: false);
        using var model = new GhostNetModel(config, profiled, seed: 0);
        Time(model, profiled, batch, size, true, steps: 1, warmup: 1);
        profiled.Reset();
        Time(model, profiled, batch, size, true, steps: 1, warmup: 0);
        double total = profiled.Times.Values.Sum(t => t.Seconds);
        Console.WriteLine();
        Console.WriteLine($"Where a training step goes (batch {batch}, each op synchronised: {total * 1000:F0} ms in all)");
        Console.WriteLine("| op family | calls | ms | share |");
        Console.WriteLine("|---|---:|---:|---:|");
        foreach (var (op, (calls, seconds)) in profiled.Times.OrderByDescending(t => t.Value.Seconds))
            Console.WriteLine($"| {op} | {calls} | {seconds * 1000:F1} | {100 * seconds / total:F1}% |");
    }

    private static void Row(string mode, int batch, double ms) =>
        Console.WriteLine($"| {mode} | {batch} | {ms:F2} | {batch * 1000 / ms:F0} |");

    /// <summary>A comma-separated list of batch sizes; training needs two or more images (batch norm).</summary>
    private static List<int> Parse(string list, string option)
    {
        var sizes = new List<int>();
        foreach (string item in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int least = option == "--train-batches" ? 2 : 1;
            if (!int.TryParse(item, System.Globalization.CultureInfo.InvariantCulture, out int b) || b < least || b > 65536)
                throw new ArgumentException($"{option}: '{item}' is not a batch size in {least}..65536");
            sizes.Add(b);
        }
        return sizes;
    }

    /// <summary>Milliseconds per step: the median over the timed steps.</summary>
    private static double Time(GhostNetModel model, IBackend backend, int batch, int size, bool training, int steps, int warmup)
    {
        using var plan = model.Compile(batch, size, size, withGradients: training);
        var sgd = new SgdOptimizer(model.Parameters, backend, new SgdOptions());
        var rng = new Random(0);
        var images = new float[(long)batch * 3 * size * size];
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 2 - 1);
        plan.SetBatch(images, Enumerable.Range(0, batch).Select(_ => rng.Next(1000)).ToArray());
        void Step()
        {
            plan.Forward(training);
            if (!training) return;
            plan.Backward();
            sgd.Step(1e-4f);
        }
        for (int i = 0; i < warmup; i++) Step();
        var times = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            backend.Synchronize();
            var clock = Stopwatch.StartNew();
            Step();
            backend.Synchronize();
            times[i] = clock.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return times[steps / 2];
    }
}

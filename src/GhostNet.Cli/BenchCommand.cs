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
            using var backend = Devices.Create(r.GetValue(device)!, r.GetValue(threads));
            int s = r.GetValue(size), n = Math.Max(1, r.GetValue(steps)), w = Math.Max(0, r.GetValue(warmup));
            using var model = new GhostNetModel(config, backend, seed: 0);
            Console.WriteLine($"GhostNet width {config.Width} at {s}x{s} on {backend.Name}, {n} timed steps after {w} warm-up");
            Console.WriteLine($"| mode | batch | ms per step | images/s |");
            Console.WriteLine($"|---|---:|---:|---:|");
            foreach (int b in Parse(r.GetValue(train)!)) Row("train", b, Time(model, backend, b, s, true, n, w));
            foreach (int b in Parse(r.GetValue(infer)!)) Row("inference", b, Time(model, backend, b, s, false, n, w));
            if (r.GetValue(profile)) Profile(config, backend, Parse(r.GetValue(train)!).First(), s);
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

    private static IEnumerable<int> Parse(string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse);

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

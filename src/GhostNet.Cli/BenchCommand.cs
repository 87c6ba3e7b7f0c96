using System.CommandLine;
using System.Diagnostics;
using GhostNet.Backends;
using GhostNet.Cuda;
using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>
/// `ghostcuda bench`: a quick speed table without BenchmarkDotNet (the GPU machine has no SDK):
/// training steps through the trainer's own loop and inference forwards of GhostNet on random
/// data, timed after warm-up, with the host's waits for the device per step on CUDA. With
/// --profile, one training step per op family: the CUDA backend's launches, modelled DRAM bytes,
/// FLOPs and roofline time on a GPU's peak figures (recorded without running anything), and the
/// measured time of each family (each op synchronised) beside them on a real GPU.
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
        var profile = new Option<bool>("--profile")
        {
            Description = "Also print one training step per op family: the CUDA kernels' launches, modelled DRAM bytes, FLOPs and roofline time " +
                          "on a GPU's peak figures, and the measured time per family (each op synchronised)",
        };
        var profileOnly = new Option<bool>("--profile-only")
        {
            Description = "Print only the modelled profile: no timing, no kernel runs, no device memory (works without a GPU)",
        };
        var profileBatch = new Option<int?>("--profile-batch") { Description = "Training batch size of the profile (default: the first of --train-batches)" };
        var profileGpu = new Option<string?>("--profile-gpu")
        {
            Description = "GPU whose peak figures the model uses: " + string.Join(", ", GpuFigures.Table.Select(f => f.Key)) +
                          $" (default: the CUDA device's own if known, else {GpuFigures.H200.Key})",
        };
        var precision = Devices.PrecisionOption();
        var noGraphs = Devices.NoGraphsOption();
        var json = new Option<string?>("--json")
        {
            Description = "Also write the timed rows to this JSON file (replaced atomically), for the GPU check's results.json and `ghostcuda report`",
        };
        var command = new Command("bench", "Time a model's training steps and inference on a device (GhostNet by default).");
        arch.AddTo(command);
        foreach (var o in new Option[] { device, size, train, infer, steps, warmup, threads, profile, profileOnly, profileBatch, profileGpu, precision, json, noGraphs }) command.Options.Add(o);
        command.SetAction(r =>
        {
            var config = arch.Config(r, ModelRegistry.Get(r.GetValue(arch.Arch)!).NumClasses, null);
            int s = r.GetValue(size), n = r.GetValue(steps), w = r.GetValue(warmup);
            if (s is < Training.CheckpointInfo.MinInputSize or > Training.CheckpointInfo.MaxInputSize)
                throw new ArgumentException($"--size must lie in {Training.CheckpointInfo.MinInputSize}..{Training.CheckpointInfo.MaxInputSize}");
            if (n is < 1 or > 100_000) throw new ArgumentException("--steps must lie in 1..100000");
            if (w is < 0 or > 100_000) throw new ArgumentException("--warmup must lie in 0..100000");
            if (r.GetValue(threads) is < 0 or > 256) throw new ArgumentException("--threads must lie in 0..256 (0: one per core)");
            var gemm = Devices.Precision(r.GetValue(precision)!);
            var trainBatches = Parse(r.GetValue(train)!, "--train-batches");
            var inferBatches = Parse(r.GetValue(infer)!, "--infer-batches");
            bool profiling = r.GetValue(profile) || r.GetValue(profileOnly);
            int batchOfProfile = r.GetValue(profileBatch) ?? (trainBatches.Count > 0 ? trainBatches[0] : 0);
            if (r.GetValue(profileBatch) is { } pb && pb is < 2 or > 65536) throw new ArgumentException($"--profile-batch must lie in 2..65536, got {pb}");
            if (profiling && batchOfProfile == 0) throw new ArgumentException("--profile needs a training batch size (--profile-batch or --train-batches)");
            GpuFigures? chosen = null;
            if (r.GetValue(profileGpu) is { } key)
            {
                try
                {
                    chosen = GpuFigures.Named(key);
                }
                catch (ArgumentException e)
                {
                    throw new ArgumentException($"--profile-gpu: {e.Message}");
                }
            }
            if (r.GetValue(profileOnly))
            {
                Profile(config, null, batchOfProfile, s, chosen ?? FiguresOf(r.GetValue(device)!), gemm);
                return 0;
            }
            using var backend = Devices.Create(r.GetValue(device)!, r.GetValue(threads), gemm);
            if (backend is Cpu.CpuBackend)
            {
                long largest = trainBatches.Concat(profiling ? [batchOfProfile] : []).Select(b => GhostNetModel.PlanBytes(config, b, s, s, withGradients: true))
                    .Concat(inferBatches.Select(b => GhostNetModel.PlanBytes(config, b, s, s, withGradients: false))).DefaultIfEmpty(0).Max();
                MemoryBudget.Require(largest + GhostNetModel.StateBytes(config), $"the batch sizes at --size {s}");
            }
            using var model = new GhostNetModel(config, backend, seed: 0);
            Console.WriteLine($"{config.Title} at {s}x{s} on {backend.Name}{(backend is CudaBackend c ? $", {RunPrecision.Describe(c)}" : "")}, {n} timed steps after {w} warm-up");
            Console.WriteLine($"| mode | batch | ms per step | images/s | host waits per step | host ms per step |");
            Console.WriteLine($"|---|---:|---:|---:|---:|---:|");
            var rows = new List<BenchRow>();
            bool graphs = !r.GetValue(noGraphs);
            foreach (int b in trainBatches) rows.Add(Row("train", b, TimeTraining(model, backend, b, s, n, w, graphs)));
            foreach (int b in inferBatches) rows.Add(Row("inference", b, TimeInference(model, backend, b, s, n, w, graphs)));
            if (r.GetValue(json) is { } jsonPath)
                BenchRuns.Write(jsonPath, new BenchRun(backend.Name, config.Width, s, backend is CudaBackend ? gemm.ToString() : "fp32", n, w, rows) { Arch = config.Arch });
            if (profiling)
                Profile(config, backend, batchOfProfile, s, chosen ?? (backend is CudaBackend cuda ? GpuFigures.ForDevice(cuda.Device.Name) : null) ?? GpuFigures.H200, gemm);
            return 0;
        });
        return command;
    }

    /// <summary>The figures of the device a --device value names, without opening it; H200's when it is not a GPU the table knows.</summary>
    private static GpuFigures FiguresOf(string device)
    {
        device = device.Trim().ToLowerInvariant();
        var status = CudaProbe.Status;
        int ordinal = device.StartsWith("cuda:") && int.TryParse(device[5..], out int n) ? n : 0;
        bool gpu = device == "auto" || device.StartsWith("cuda");
        return gpu && status.Available && ordinal < status.Devices.Count ? GpuFigures.ForDevice(status.Devices[ordinal].Name) ?? GpuFigures.H200 : GpuFigures.H200;
    }

    /// <summary>
    /// The profile of one training step: modelled per op family (the launches a CUDA backend with
    /// the figures' SM count makes, recorded without running), and measured per family on
    /// <paramref name="backend"/> (null: not measured). A real GPU's times go beside the model;
    /// the CPU's and the emulator's are host times, printed in a table of their own.
    /// </summary>
    private static void Profile(IModelConfig config, IBackend? backend, int batch, int size, GpuFigures figures, RunPrecision precision)
    {
        var recorder = TrainingStepModel.Record(config, batch, size, figures.AsDevice(), precision.Gemm, precision.Activations);
        var summary = new CostSummary(recorder.Launches, figures);
        IReadOnlyDictionary<string, (long Calls, double Seconds)>? measured = null;
        long issued = -1;
        if (backend is not null)
        {
            using var profiled = new ProfilingBackend(backend, ownsInner: false);
            using var model = new GhostNetModel(config, profiled, seed: 0);
            var cuda = backend as CudaBackend;
            var launches = new LaunchRecorder();
            using var plan = model.Compile(batch, size, size, withGradients: true);
            var sgd = new SgdOptimizer(model.Parameters, profiled, new SgdOptions());
            plan.SetBatch(RandomBatch(batch, size, config.NumClasses));
            TrainingStepModel.Step(plan, sgd); // sizes the workspaces
            profiled.Reset();
            if (cuda is not null) cuda.Recorder = launches;
            try
            {
                TrainingStepModel.Step(plan, sgd); // call by call: each op timed alone
            }
            finally
            {
                if (cuda is not null) cuda.Recorder = null;
            }
            measured = profiled.Times.ToDictionary(t => t.Key, t => t.Value);
            if (cuda is not null) issued = launches.Launches.Count;
            bool beside = cuda is not null && !cuda.Device.IsEmulator;
            if (!beside)
            {
                PrintMeasured(measured, batch, backend.Name + (cuda is not null ? ": emulated, not GPU time" : ""));
                measured = null;
            }
        }
        PrintModel(summary, config, batch, size, measured, issued);
    }

    private static void PrintMeasured(IReadOnlyDictionary<string, (long Calls, double Seconds)> times, int batch, string where)
    {
        double total = times.Values.Sum(t => t.Seconds);
        Console.WriteLine();
        Console.WriteLine($"Where a training step goes on {where} (batch {batch}, each op synchronised: {total * 1000:F0} ms in all)");
        Console.WriteLine("| op family | calls | ms | share |");
        Console.WriteLine("|---|---:|---:|---:|");
        foreach (var (op, (calls, seconds)) in times.OrderByDescending(t => t.Value.Seconds))
            Console.WriteLine($"| {op} | {calls} | {seconds * 1000:F1} | {100 * seconds / total:F1}% |");
    }

    /// <summary>The issue's targets for the v2 kernels: GhostNet 1.0x at 224, batch 256, H200.</summary>
    internal const int TargetLaunches = 350;
    internal const double TargetMegabytesPerImage = 120, TargetStepMilliseconds = 25;

    internal static void PrintModel(CostSummary summary, IModelConfig config, int batch, int size,
        IReadOnlyDictionary<string, (long Calls, double Seconds)>? measured, long issued)
    {
        var f = summary.Figures;
        static string Ms(double seconds) => (seconds * 1e3).ToString("F3");
        string Mb(long bytes) => (bytes / 1e6).ToString("F1");
        string PerImage(long bytes) => (bytes / 1e6 / batch).ToString("F2");
        static string Gflop(long flops) => (flops / 1e9).ToString("F1");
        Console.WriteLine();
        Console.WriteLine($"Modelled training step ({config.Title} at {size}x{size}, batch {batch}) on {f}");
        Console.WriteLine("Launches as CudaBackend makes them, recorded without running; DRAM bytes and FLOPs from each launch's shapes " +
                          "(docs/kernels.md: every pass over a tensor counted once, L2 hits not counted, MB = 1e6 bytes); " +
                          "roofline = sum over launches of max(bytes / bandwidth, FLOPs / peak of the launch's precision); launch overhead apart.");
        string measuredHead = measured is null ? "" : " measured ms |";
        Console.WriteLine($"| op family | launches | MB | MB per image | GFLOP | DRAM ms | math ms | roofline ms | launch overhead ms |{measuredHead}");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + (measured is null ? "" : "---:|"));
        string Measured(string family) => measured is null ? "" : measured.TryGetValue(family, out var t) ? $" {t.Seconds * 1e3:F3} |" : " - |";
        foreach (var row in summary.Families)
            Console.WriteLine($"| {row.Name} | {row.Launches} | {Mb(row.Bytes)} | {PerImage(row.Bytes)} | {Gflop(row.Flops)} | {Ms(row.DramSeconds)} | " +
                              $"{Ms(row.MathSeconds)} | {Ms(row.RooflineSeconds)} | {Ms(summary.OverheadSeconds(row))} |{Measured(row.Name)}");
        if (measured is not null)
            foreach (var (family, t) in measured.Where(m => summary.Families.All(r => r.Name != m.Key)).OrderBy(m => m.Key, StringComparer.Ordinal))
                Console.WriteLine($"| {family} (no kernels) | 0 | - | - | - | - | - | - | - | {t.Seconds * 1e3:F3} |");
        var total = summary.Total;
        string measuredTotal = measured is null ? "" : $" {measured.Values.Sum(t => t.Seconds) * 1e3:F3} |";
        Console.WriteLine($"| total | {total.Launches} | {Mb(total.Bytes)} | {PerImage(total.Bytes)} | {Gflop(total.Flops)} | {Ms(total.DramSeconds)} | " +
                          $"{Ms(total.MathSeconds)} | {Ms(total.RooflineSeconds)} | {Ms(summary.OverheadSeconds(total))} |{measuredTotal}");
        double step = total.RooflineSeconds + summary.OverheadSeconds(total);
        Console.WriteLine($"Modelled step: {Ms(total.RooflineSeconds)} ms roofline + {Ms(summary.OverheadSeconds(total))} ms launch overhead = {Ms(step)} ms " +
                          $"({batch / step:F0} images/s)");
        if (issued >= 0)
            Console.WriteLine($"Launches issued in the measured step: {issued} (modelled with {f.Multiprocessors} SMs: {total.Launches})");

        Console.WriteLine();
        Console.WriteLine("| kernel | launches | MB | GFLOP | roofline ms | share of roofline |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var row in summary.Kernels)
            Console.WriteLine($"| {row.Name} | {row.Launches} | {Mb(row.Bytes)} | {Gflop(row.Flops)} | {Ms(row.RooflineSeconds)} | " +
                              $"{100 * row.RooflineSeconds / Math.Max(total.RooflineSeconds, 1e-30):F1}% |");

        Console.WriteLine();
        bool theirs = config is GhostNetConfig { Width: 1.0f } && size == 224 && batch == 256 && f.Key == GpuFigures.H200.Key;
        Console.WriteLine("Targets for the v2 kernels (issue: GhostNet 1.0x at 224, batch 256, on H200 figures)" +
                          (theirs ? "" : $"; this run is {config.Title} at {size}, batch {batch}, on {f.Key}: compare with care"));
        Console.WriteLine("| measure | target | this step | met |");
        Console.WriteLine("|---|---:|---:|---|");
        static string Met(bool ok) => ok ? "yes" : "no";
        double perImage = total.Bytes / 1e6 / batch;
        Console.WriteLine($"| launches per step | <= {TargetLaunches} | {total.Launches} | {Met(total.Launches <= TargetLaunches)} |");
        Console.WriteLine($"| DRAM traffic per training image | <= {TargetMegabytesPerImage:F0} MB | {perImage:F1} MB | {Met(perImage <= TargetMegabytesPerImage)} |");
        Console.WriteLine($"| modelled step (roofline + launch overhead) | <= {TargetStepMilliseconds:F0} ms | {step * 1e3:F2} ms | {Met(step * 1e3 <= TargetStepMilliseconds)} |");
    }

    private static BenchRow Row(string mode, int batch, StepTime t)
    {
        Console.WriteLine($"| {mode} | {batch} | {t.Ms:F2} | {batch * 1000 / t.Ms:F0} | {t.WaitsPerStep?.ToString("F1") ?? "-"} | {t.HostMs?.ToString("F2") ?? "-"} |");
        return new BenchRow(mode, batch, t.Ms, batch * 1000 / t.Ms, t.WaitsPerStep, t.HostMs);
    }

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

    /// <summary>
    /// A row's timing: milliseconds per step (the median over the timed steps) and, on CUDA, the
    /// host's waits for the device per step and the host's own milliseconds per step (the wall
    /// time less those waits: what the host spends preparing and launching).
    /// </summary>
    internal readonly record struct StepTime(double Ms, double? WaitsPerStep = null, double? HostMs = null);

    /// <summary>Random pixels and labels, as the loader gives them (bytes the backend normalises).</summary>
    private static HostBatch RandomBatch(int batch, int size, int classes)
    {
        var rng = new Random(0);
        var pixels = new byte[(long)batch * 3 * size * size];
        rng.NextBytes(pixels);
        return HostBatch.OfPixels(pixels, Enumerable.Range(0, batch).Select(_ => rng.Next(classes)).ToArray(), Normalization.ImageNet);
    }

    /// <summary>One batch given again and again: the trainer's loop without a loader.</summary>
    private sealed class RepeatedBatch(HostBatch batch, int times) : IBatchSource
    {
        public int BatchSize => batch.Count;
        public int BatchesPerEpoch => times;
        public IReadOnlyList<string> Classes { get; } = [];
        public double WaitSeconds => 0;
        public IEnumerable<HostBatch> Epoch(int epoch, CancellationToken cancel) => Enumerable.Repeat(batch, times);
    }

    /// <summary>
    /// Training steps as `ghostcuda train` makes them: the trainer's loop (the step captured as one
    /// graph where the backend can, totals read one step late), timed between its reports, which
    /// come one per step once the pipeline is full. One step more than timed is run: the last
    /// report follows the one before it with no step launched between.
    /// </summary>
    internal static StepTime TimeTraining(GhostNetModel model, IBackend backend, int batch, int size, int steps, int warmup, bool graphs)
    {
        using var plan = model.Compile(batch, size, size, withGradients: true);
        var sgd = new SgdOptimizer(model.Parameters, backend, new SgdOptions());
        warmup = Math.Max(warmup, 1); // the first report closes no interval
        int batches = warmup + steps + 1;
        var schedule = new LrSchedule(new LrScheduleOptions(LrScheduleKind.Cosine, 1e-4f, 1), batches);
        var trainer = new Trainer(plan, sgd, schedule, note: Console.Error.WriteLine) { CaptureSteps = graphs }; // notes not between the table's rows
        var cuda = backend as CudaBackend;
        var reports = new List<(long Ticks, long Waits, double WaitSeconds)>();
        trainer.TrainEpoch(new RepeatedBatch(RandomBatch(batch, size, model.Config.NumClasses), batches), new TrainingState(),
            (_, _) => reports.Add((Stopwatch.GetTimestamp(), cuda?.HostWaits ?? 0, cuda?.HostWaitSeconds ?? 0)), CancellationToken.None);
        var intervals = Enumerable.Range(warmup, steps).Select(i => Stopwatch.GetElapsedTime(reports[i - 1].Ticks, reports[i].Ticks).TotalMilliseconds).Order().ToArray();
        var (first, last) = (reports[warmup - 1], reports[warmup + steps - 1]);
        double wall = Stopwatch.GetElapsedTime(first.Ticks, last.Ticks).TotalMilliseconds;
        return cuda is null
            ? new StepTime(intervals[steps / 2])
            : new StepTime(intervals[steps / 2], (double)(last.Waits - first.Waits) / steps, (wall - (last.WaitSeconds - first.WaitSeconds) * 1e3) / steps);
    }

    /// <summary>
    /// Inference forwards (replayed as one graph from the second on, where the backend captures),
    /// each timed with the device synchronised at both ends; the waits counted are the forward's
    /// own, and the host's time is until the forward returns (what it spends launching).
    /// </summary>
    internal static StepTime TimeInference(GhostNetModel model, IBackend backend, int batch, int size, int steps, int warmup, bool graphs)
    {
        using var plan = model.Compile(batch, size, size, withGradients: false);
        plan.Note = Console.Error.WriteLine; // not between the table's rows
        plan.CaptureForward = graphs;
        plan.SetBatch(RandomBatch(batch, size, model.Config.NumClasses));
        for (int i = 0; i < warmup; i++) plan.Forward(false);
        var cuda = backend as CudaBackend;
        var (times, host) = (new double[steps], new double[steps]);
        long waits = 0;
        for (int i = 0; i < steps; i++)
        {
            backend.Synchronize();
            long before = cuda?.HostWaits ?? 0;
            var clock = Stopwatch.StartNew();
            plan.Forward(false);
            host[i] = clock.Elapsed.TotalMilliseconds;
            waits += (cuda?.HostWaits ?? 0) - before;
            backend.Synchronize();
            times[i] = clock.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        Array.Sort(host);
        return cuda is null ? new StepTime(times[steps / 2]) : new StepTime(times[steps / 2], (double)waits / steps, host[steps / 2]);
    }
}

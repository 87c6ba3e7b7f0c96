using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using GhostNet.Backends;
using GhostNet.Data;
using GhostNet.Data.Transforms;
using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>`ghostcuda eval` and `ghostcuda predict`: a checkpoint on a validation split, or on image files.</summary>
internal static class EvalCommand
{
    public static Command Eval()
    {
        var checkpoint = new Option<string>("--checkpoint") { Required = true, Description = "A checkpoint written by ghostcuda train" };
        var data = new Option<string?>("--data") { Description = "Data set (default: the one the checkpoint was trained on)" };
        var batch = new Option<int>("--batch-size", "-b") { DefaultValueFactory = _ => 64 };
        var workers = new Option<int>("--workers", "-j") { DefaultValueFactory = _ => 0 };
        var device = Devices.Option();
        var command = new Command("eval", "Loss, top-1, top-5 and a confusion summary of a checkpoint on a validation split.");
        foreach (var o in new Option[] { checkpoint, data, batch, workers, device }) command.Options.Add(o);
        command.SetAction(r =>
        {
            int batchSize = r.GetValue(batch), threads = r.GetValue(workers);
            if (batchSize < 1) throw new ArgumentException("--batch-size must be at least 1");
            if (threads is < 0 or > 256) throw new ArgumentException("--workers must lie in 0..256 (0: one per core)");
            var (info, tensors) = Checkpoint.Read(r.GetValue(checkpoint)!);
            using var backend = Devices.Create(r.GetValue(device)!, 0);
            using var model = Load(info, tensors, backend, r.GetValue(checkpoint)!);
            var setup = DataSets.Resolve(r.GetValue(data) ?? info.Dataset, Path.GetDirectoryName(Path.GetFullPath(r.GetValue(checkpoint)!))!, new SafeImageDecoder());
            if (!setup.Val.Classes.SequenceEqual(info.Classes)) throw new ArgumentException($"the data's classes differ from the checkpoint's {info.Classes.Count}");
            // A batch larger than the split is the split in one batch.
            var options = new DataLoaderOptions(Math.Min(batchSize, setup.Val.Count), Shuffle: false, DropLast: false, Workers: threads)
            {
                BadSamples = BadSamplePolicy.Skip, // left out and counted: a duplicate would skew the metrics
                MaxBufferBytes = MemoryBudget.LoaderBudget(),
            };
            long bytes = (backend is Cpu.CpuBackend ? GhostNetModel.PlanBytes(info.Config, options.BatchSize, info.InputSize, info.InputSize, withGradients: false) : 0)
                         + MemoryBudget.LoaderBytes(options, info.InputSize, $"--batch-size {batchSize} with --workers {threads}");
            MemoryBudget.Require(bytes, $"--batch-size {batchSize} with --workers {threads}");
            var loader = new DataLoader(setup.Val, setup.EvalTransform(info.InputSize), options);
            Console.WriteLine($"{r.GetValue(checkpoint)}: GhostNet width {info.Width}, {info.NumClasses} classes, {info.InputSize}x{info.InputSize}, epoch {info.State.Epoch}; " +
                              $"{setup.Name} validation split, {setup.Val.Count:N0} images, on {backend.Name}");
            var source = new LoaderSource(loader);
            Report.Evaluation(Trainer.Evaluate(model, source, info.InputSize, info.InputSize, CancellationToken.None), info.Classes, source.EpochSkippedSamples);
            return 0;
        });
        return command;
    }

    public static Command Predict()
    {
        var checkpoint = new Option<string>("--checkpoint") { Required = true, Description = "A checkpoint written by ghostcuda train" };
        var top = new Option<int>("--top") { DefaultValueFactory = _ => 5 };
        var device = Devices.Option();
        var images = new Argument<string[]>("images") { Arity = ArgumentArity.OneOrMore, Description = "JPEG or PNG files, or folders of them" };
        var command = new Command("predict", "The top classes of images, with probabilities.");
        command.Options.Add(checkpoint);
        command.Options.Add(top);
        command.Options.Add(device);
        command.Arguments.Add(images);
        command.SetAction(r =>
        {
            var clock = Stopwatch.StartNew();
            if (r.GetValue(top) < 1) throw new ArgumentException("--top must be at least 1");
            var (info, tensors) = Checkpoint.Read(r.GetValue(checkpoint)!);
            using var backend = Devices.Create(r.GetValue(device)!, 0);
            using var model = Load(info, tensors, backend, r.GetValue(checkpoint)!);
            double cropPct = info.Options.TryGetValue("eval_crop_pct", out var c) ? double.Parse(c, CultureInfo.InvariantCulture) : 0.875;
            var transform = new EvalTransform(info.InputSize, DataSets.NormalizationByName(info.Normalization), cropPct);
            var decoder = new SafeImageDecoder();
            var paths = ImagePaths(r.GetValue(images)!);
            int size = info.InputSize, k = info.NumClasses, topK = Math.Clamp(r.GetValue(top), 1, k);
            var pixels = new float[paths.Length * 3 * size * size];
            var ok = new List<int>();
            for (int i = 0; i < paths.Length; i++)
            {
                try
                {
                    using var image = decoder.Decode(paths[i]);
                    transform.Apply(image, new Random(0), pixels.AsSpan(ok.Count * 3 * size * size, 3 * size * size), paths[i]);
                    ok.Add(i);
                }
                catch (BadSampleException e)
                {
                    Console.Error.WriteLine($"warning: image skipped: {e.Message}");
                }
            }
            if (ok.Count == 0) throw new InvalidDataException(paths.Length == 1 ? $"{paths[0]} could not be used" : $"none of the {paths.Length} images could be used");
            double loadMs = clock.Elapsed.TotalMilliseconds;
            var forward = Stopwatch.StartNew();
            using var plan = model.Compile(ok.Count, size, size, withGradients: false);
            plan.SetBatch(pixels.AsSpan(0, ok.Count * 3 * size * size), new int[ok.Count]);
            plan.Forward(training: false);
            var logits = new float[ok.Count * k];
            backend.Download(plan.Logits, logits);
            double forwardMs = forward.Elapsed.TotalMilliseconds;
            for (int n = 0; n < ok.Count; n++)
            {
                var row = logits.AsSpan(n * k, k);
                float max = float.NegativeInfinity;
                foreach (float v in row) max = Math.Max(max, v);
                double sum = 0;
                foreach (float v in row) sum += Math.Exp(v - max);
                var best = Enumerable.Range(0, k).OrderByDescending(j => logits[n * k + j]).Take(topK);
                Console.WriteLine(paths[ok[n]]);
                foreach (int j in best) Console.WriteLine($"  {Math.Exp(logits[n * k + j] - max) / sum * 100,6:F2}%  {info.Classes[j]}");
            }
            Console.WriteLine($"{ok.Count} image(s): {loadMs:F0} ms to load the checkpoint and decode, {forwardMs:F1} ms to plan and run the forward pass on {backend.Name}");
            return 0;
        });
        return command;
    }

    /// <summary>The files named, with each folder replaced by its JPEG and PNG files in name order.</summary>
    private static string[] ImagePaths(string[] arguments)
    {
        var paths = new List<string>();
        foreach (string a in arguments)
        {
            if (!Directory.Exists(a))
            {
                paths.Add(a);
                continue;
            }
            var found = Directory.EnumerateFiles(a).Where(f => Path.GetExtension(f).ToLowerInvariant() is ".jpg" or ".jpeg" or ".png").Order(StringComparer.Ordinal).ToList();
            if (found.Count == 0) throw new ArgumentException($"{a} is a folder without .jpg, .jpeg or .png files");
            paths.AddRange(found);
        }
        return [.. paths];
    }

    /// <summary>The checkpoint's model; weights holding NaN or Inf (a diverged run) are refused rather than scored.</summary>
    private static GhostNetModel Load(CheckpointInfo info, List<Graph.SafetensorsTensor> tensors, IBackend backend, string path)
    {
        var bad = Checkpoint.NonFiniteTensors(tensors.Where(t => !t.Name.StartsWith(Checkpoint.MomentumPrefix, StringComparison.Ordinal)));
        if (bad.Count > 0)
            throw new InvalidDataException($"{path}: {bad.Count} tensor(s) hold NaN or Inf, e.g. {bad[0]} (the run diverged); nothing to evaluate");
        var model = new GhostNetModel(info.Config, backend);
        try
        {
            Checkpoint.Apply(model, tensors, withOptimizer: false, path);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }
}

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
        var noGraphs = Devices.NoGraphsOption();
        var precision = Devices.PrecisionOption();
        var command = new Command("eval", "Loss, top-1, top-5 and a confusion summary of a checkpoint on a validation split.");
        foreach (var o in new Option[] { checkpoint, data, batch, workers, device, precision, noGraphs }) command.Options.Add(o);
        command.SetAction(r =>
        {
            int batchSize = r.GetValue(batch), threads = r.GetValue(workers);
            if (batchSize < 1) throw new ArgumentException("--batch-size must be at least 1");
            if (threads is < 0 or > 256) throw new ArgumentException("--workers must lie in 0..256 (0: one per core)");
            var (info, tensors) = Checkpoint.Read(r.GetValue(checkpoint)!);
            using var backend = Devices.Create(r.GetValue(device)!, 0, Devices.Precision(r.GetValue(precision)!));
            using var model = Load(info, tensors, backend, r.GetValue(checkpoint)!);
            string dataName = r.GetValue(data) ?? info.Dataset;
            DataSetup setup;
            try
            {
                setup = DataSets.Resolve(dataName, Path.GetDirectoryName(Path.GetFullPath(r.GetValue(checkpoint)!))!, new SafeImageDecoder());
            }
            catch (ArgumentException e) when (r.GetValue(data) is null)
            {
                throw new ArgumentException($"the checkpoint's data set {info.Dataset} cannot be used here ({e.Message}); name one with --data", e);
            }
            DataSets.RequireClasses(info.Classes, setup.Val.Classes, r.GetValue(checkpoint)!, $"--data {dataName}");
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
            Console.WriteLine($"{r.GetValue(checkpoint)}: {info.Config.Title}, {info.NumClasses} classes, {info.InputSize}x{info.InputSize}, epoch {info.State.Epoch}; " +
                              $"{setup.Name} validation split, {setup.Val.Count:N0} images, on {backend.Name}");
            var source = new LoaderSource(loader);
            var result = Trainer.Evaluate(model, source, info.InputSize, info.InputSize, CancellationToken.None, Console.WriteLine, !r.GetValue(noGraphs));
            Report.Evaluation(result, info.Classes, source.EpochSkippedSamples);
            return Report.Broken(result) ? TrainRun.Diverged : 0;
        });
        return command;
    }

    public static Command Predict()
    {
        var checkpoint = new Option<string>("--checkpoint") { Required = true, Description = "A checkpoint written by ghostcuda train" };
        var top = new Option<int>("--top") { DefaultValueFactory = _ => 5 };
        var device = Devices.Option();
        var noGraphs = Devices.NoGraphsOption();
        var images = new Argument<string[]>("images") { Arity = ArgumentArity.OneOrMore, Description = "JPEG or PNG files, or folders of them" };
        var command = new Command("predict", "The top classes of images, with probabilities.");
        command.Options.Add(checkpoint);
        command.Options.Add(top);
        command.Options.Add(device);
        command.Options.Add(noGraphs);
        var precision = Devices.PrecisionOption();
        command.Options.Add(precision);
        command.Arguments.Add(images);
        command.SetAction(r =>
        {
            var clock = Stopwatch.StartNew();
            if (r.GetValue(top) < 1) throw new ArgumentException("--top must be at least 1");
            var (info, tensors) = Checkpoint.Read(r.GetValue(checkpoint)!);
            using var backend = Devices.Create(r.GetValue(device)!, 0, Devices.Precision(r.GetValue(precision)!));
            using var model = Load(info, tensors, backend, r.GetValue(checkpoint)!);
            double cropPct = info.Options.TryGetValue("eval_crop_pct", out var c) && double.TryParse(c, CultureInfo.InvariantCulture, out double pct) && pct is > 0 and <= 1
                ? pct : 0.875;
            var transform = new EvalTransform(info.InputSize, DataSets.NormalizationByName(info.Normalization), cropPct);
            var decoder = new SafeImageDecoder();
            var paths = ImagePaths(r.GetValue(images)!);
            int size = info.InputSize, k = info.NumClasses, topK = Math.Clamp(r.GetValue(top), 1, k), image = 3 * size * size;
            // Images go through in chunks, so a folder of any size needs memory for one chunk only.
            int chunk = Math.Min(PredictChunk, paths.Length);
            var pixels = new byte[chunk * image]; // HWC RGB bytes: the backend normalises them
            var logits = new float[chunk * k];
            var plans = new Dictionary<int, Plan>();
            var note = Notes.Once(Console.Error.WriteLine);
            double decodeMs = clock.Elapsed.TotalMilliseconds, forwardMs = 0;
            int predicted = 0, broken = 0;
            BadSampleException? lastBad = null;
            try
            {
                for (int first = 0; first < paths.Length; first += chunk)
                {
                    var decoding = Stopwatch.StartNew();
                    var ok = new List<int>();
                    for (int i = first; i < Math.Min(first + chunk, paths.Length); i++)
                    {
                        try
                        {
                            using var decoded = decoder.Decode(paths[i]);
                            transform.Apply(decoded, new Random(0), pixels.AsSpan(ok.Count * image, image), paths[i]);
                            ok.Add(i);
                        }
                        catch (BadSampleException e)
                        {
                            lastBad = e;
                            if (paths.Length > 1) Console.Error.WriteLine($"warning: image skipped: {e.Message}");
                        }
                    }
                    decodeMs += decoding.Elapsed.TotalMilliseconds;
                    if (ok.Count == 0) continue;
                    var forward = Stopwatch.StartNew();
                    if (!plans.TryGetValue(ok.Count, out var plan))
                    {
                        plans[ok.Count] = plan = model.Compile(ok.Count, size, size, withGradients: false);
                        plan.Note = note; // stderr: the top classes on stdout may be read by a script
                        plan.CaptureForward = !r.GetValue(noGraphs);
                    }
                    plan.SetBatch(pixels.AsSpan(0, ok.Count * image), new int[ok.Count], transform.Normalization);
                    plan.Forward(training: false);
                    backend.Download(plan.Logits, logits.AsSpan(0, ok.Count * k));
                    forwardMs += forward.Elapsed.TotalMilliseconds;
                    for (int n = 0; n < ok.Count; n++)
                    {
                        Console.WriteLine(paths[ok[n]]);
                        if (!PrintTop(logits.AsSpan(n * k, k), topK, info.Classes)) broken++;
                    }
                    predicted += ok.Count;
                }
            }
            finally
            {
                foreach (var p in plans.Values) p.Dispose();
            }
            if (predicted == 0) throw paths.Length == 1 && lastBad is not null ? lastBad : new InvalidDataException($"none of the {paths.Length} images could be used");
            Console.WriteLine($"{predicted} image(s): {decodeMs:F0} ms to load the checkpoint and decode, {forwardMs:F1} ms to plan and run the forward passes on {backend.Name}");
            if (broken > 0)
            {
                Console.Error.WriteLine($"error: {broken} of {predicted} images gave NaN or infinite logits: the model is broken");
                return TrainRun.Diverged;
            }
            return 0;
        });
        return command;
    }

    private const int PredictChunk = 64;

    /// <summary>Prints the top classes of one row of logits with their softmax probabilities; false when the row is not finite.</summary>
    private static bool PrintTop(ReadOnlySpan<float> row, int topK, IReadOnlyList<string> classes)
    {
        foreach (float v in row)
        {
            if (float.IsFinite(v)) continue;
            Console.WriteLine("  no prediction: NaN or infinite logits");
            return false;
        }
        float max = float.NegativeInfinity;
        foreach (float v in row) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in row) sum += Math.Exp(v - max);
        var values = row.ToArray();
        foreach (int j in Enumerable.Range(0, values.Length).OrderByDescending(j => values[j]).Take(topK))
            Console.WriteLine($"  {Math.Exp(values[j] - max) / sum * 100,6:F2}%  {classes[j]}");
        return true;
    }

    /// <summary>The files named, with each folder replaced by the JPEG and PNG files below it, in path order.</summary>
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
            // Subfolders too (a validation split's class folders), never through links: a link can loop.
            var walk = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true };
            var found = Directory.EnumerateFiles(a, "*", walk).Where(ImageFolderDataset.IsImageFile)
                .Order(StringComparer.Ordinal).ToList();
            if (found.Count == 0) throw new ArgumentException($"{a} is a folder without .jpg, .jpeg or .png files (subfolders included)");
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

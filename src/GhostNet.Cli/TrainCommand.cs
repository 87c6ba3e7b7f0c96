using System.CommandLine;
using System.Diagnostics;
using GhostNet.Data;
using GhostNet.Graph;
using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Cli;

/// <summary>
/// `ghostcuda train`: SGD training with a cosine schedule, progress lines and a validation pass
/// per epoch, on the CPU or a GPU (--device). For now on generated patterns; real data sets and
/// checkpoints arrive with their issues.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var arch = new ArchOptions();
        arch.Arch.DefaultValueFactory = _ => "ghostnet_050";
        var data = new Option<string>("--data") { Description = "Data set", DefaultValueFactory = _ => "synthetic" };
        data.AcceptOnlyFromAmong("synthetic");
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 3 };
        var batch = new Option<int>("--batch-size", "-b") { DefaultValueFactory = _ => 64 };
        var lr = new Option<float>("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 0.1f };
        var momentum = new Option<float>("--momentum") { DefaultValueFactory = _ => 0.9f };
        var wd = new Option<float>("--wd", "--weight-decay") { DefaultValueFactory = _ => 4e-5f };
        var nesterov = new Option<bool>("--nesterov");
        var noWdBn = new Option<bool>("--no-wd-bn") { Description = "No weight decay on batch-norm weights and biases" };
        var warmup = new Option<float>("--warmup-epochs") { DefaultValueFactory = _ => 0.5f };
        var smoothing = new Option<float>("--label-smoothing") { DefaultValueFactory = _ => 0.1f };
        var dropout = new Option<float>("--dropout") { DefaultValueFactory = _ => 0.2f };
        var inputSize = new Option<int>("--input-size") { DefaultValueFactory = _ => 32 };
        var classes = new Option<int>("--classes") { Description = "Classes of the synthetic set", DefaultValueFactory = _ => 10 };
        var trainSize = new Option<int>("--train-size") { Description = "Images in the synthetic training set", DefaultValueFactory = _ => 4096 };
        var valSize = new Option<int>("--val-size") { Description = "Images in the synthetic validation set", DefaultValueFactory = _ => 1024 };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var printFreq = new Option<int>("--print-freq", "-p") { DefaultValueFactory = _ => 10 };
        var threads = new Option<int>("--threads") { Description = "CPU threads (default: all cores)", DefaultValueFactory = _ => 0 };
        var device = Devices.Option();
        var init = new Option<InitScheme>("--init")
        {
            Description = "Weight initialisation: PyTorchDefault, or KaimingNormalFanOut as the official GhostNet code does",
            DefaultValueFactory = _ => InitScheme.PyTorchDefault,
        };

        var command = new Command("train", "Train a GhostNet.");
        arch.AddTo(command);
        foreach (var o in new Option[] { data, epochs, batch, lr, momentum, wd, nesterov, noWdBn, warmup, smoothing, dropout, inputSize, classes, trainSize, valSize, seed, printFreq, threads, init, device })
            command.Options.Add(o);
        command.SetAction(r =>
        {
            var run = new TrainRun(
                arch.Config(r, r.GetValue(classes), r.GetValue(dropout)), r.GetValue(epochs), r.GetValue(batch), r.GetValue(lr),
                new SgdOptions(r.GetValue(momentum), r.GetValue(wd), r.GetValue(nesterov), r.GetValue(noWdBn)),
                r.GetValue(warmup), r.GetValue(smoothing), r.GetValue(inputSize), r.GetValue(trainSize), r.GetValue(valSize),
                r.GetValue(seed), Math.Max(1, r.GetValue(printFreq)), r.GetValue(threads), r.GetValue(init), r.GetValue(device)!);
            return run.Execute();
        });
        return command;
    }

    private sealed record TrainRun(
        GhostNetConfig Config, int Epochs, int Batch, float Lr, SgdOptions Sgd, float WarmupEpochs, float LabelSmoothing,
        int InputSize, int TrainSize, int ValSize, int Seed, int PrintFreq, int Threads, InitScheme Init, string Device)
    {
        public int Execute()
        {
            if (Epochs < 1 || Batch < 2 || InputSize < 32 || TrainSize < Batch || ValSize < 1)
            {
                Console.Error.WriteLine($"error: need --epochs >= 1, --batch-size >= 2, --input-size >= 32, --train-size >= --batch-size ({Batch}) and --val-size >= 1");
                return 2;
            }
            using var backend = Devices.Create(Device, Threads);
            Console.WriteLine($"generating {TrainSize} + {ValSize} synthetic {InputSize}x{InputSize} images of {Config.NumClasses} classes");
            var train = SyntheticPatterns.Generate(TrainSize, Config.NumClasses, InputSize, Seed);
            var val = SyntheticPatterns.Generate(ValSize, Config.NumClasses, InputSize, Seed + 1_000_003);
            using var model = new GhostNetModel(Config, backend, Seed, Init);
            using var plan = model.Compile(Batch, InputSize, InputSize);
            plan.LabelSmoothing = LabelSmoothing;
            var sgd = new SgdOptimizer(model.Parameters, backend, Sgd);
            int stepsPerEpoch = TrainSize / Batch;
            var schedule = new CosineSchedule(Lr, (long)Epochs * stepsPerEpoch, (long)(WarmupEpochs * stepsPerEpoch));
            Console.WriteLine($"GhostNet width {Config.Width}: {model.Parameters.ParameterCount:N0} parameters on {backend.Name}; " +
                              $"{Epochs} epochs of {stepsPerEpoch} steps, batch {Batch}");
            var images = new float[Batch * train.ImageSize];
            var labels = new int[Batch];
            var order = Enumerable.Range(0, TrainSize).ToArray();
            long step = 0;
            for (int epoch = 0; epoch < Epochs; epoch++)
            {
                new Random(Seed * 7919 + epoch).Shuffle(order);
                var clock = Stopwatch.StartNew();
                double lossSum = 0;
                int seen = 0, correct = 0;
                for (int i = 0; i < stepsPerEpoch; i++, step++)
                {
                    train.CopyBatch(order.AsSpan(i * Batch, Batch), images, labels);
                    plan.SetBatch(images, labels);
                    plan.Forward(training: true);
                    float loss = plan.Loss();
                    if (!float.IsFinite(loss))
                    {
                        Console.Error.WriteLine($"error: loss became {loss} at epoch {epoch} step {i}; lower --lr (now {Lr})");
                        return 3;
                    }
                    correct += plan.CountCorrect().Top1;
                    plan.Backward();
                    float lr = schedule.At(step);
                    sgd.Step(lr);
                    lossSum += loss * Batch;
                    seen += Batch;
                    if ((i + 1) % PrintFreq == 0 || i + 1 == stepsPerEpoch)
                        Console.WriteLine($"epoch {epoch} [{i + 1,4}/{stepsPerEpoch}] loss {lossSum / seen:F4} top1 {100.0 * correct / seen:F1}% " +
                                          $"lr {lr:F4} {seen / clock.Elapsed.TotalSeconds:F0} img/s");
                }
                var (valLoss, top1, top5) = Evaluate(model, val);
                Console.WriteLine($"epoch {epoch} done in {clock.Elapsed.TotalSeconds:F1} s: train loss {lossSum / seen:F4}, " +
                                  $"val loss {valLoss:F4}, val top1 {top1:F2}%, top5 {top5:F2}%");
            }
            return 0;
        }

        private (double Loss, double Top1, double Top5) Evaluate(GhostNetModel model, InMemoryDataset val)
        {
            int batch = Math.Min(Batch, val.Count), rest = val.Count % batch;
            using var full = model.Compile(batch, val.Height, val.Width, withGradients: false);
            using var last = rest > 0 ? model.Compile(rest, val.Height, val.Width, withGradients: false) : null;
            var images = new float[batch * val.ImageSize];
            var labels = new int[batch];
            var indices = new int[batch];
            double loss = 0;
            int top1 = 0, top5 = 0;
            for (int start = 0; start < val.Count; start += batch)
            {
                int n = Math.Min(batch, val.Count - start);
                var plan = n == batch ? full : last!;
                for (int i = 0; i < n; i++) indices[i] = start + i;
                val.CopyBatch(indices.AsSpan(0, n), images, labels);
                plan.SetBatch(images.AsSpan(0, n * val.ImageSize), labels.AsSpan(0, n));
                plan.Forward(training: false);
                loss += plan.Loss() * n;
                var (c1, c5) = plan.CountCorrect();
                top1 += c1;
                top5 += c5;
            }
            return (loss / val.Count, 100.0 * top1 / val.Count, 100.0 * top5 / val.Count);
        }
    }
}

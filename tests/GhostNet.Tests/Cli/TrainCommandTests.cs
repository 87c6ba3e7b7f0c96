using GhostNet.Cli;
using GhostNet.Graph;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Cli;

/// <summary>
/// `ghostcuda train | eval | predict` end to end on a small generated ImageFolder, on the CPU.
/// Runs use width 0.25 at 32x32 so that an epoch takes a second or two.
/// </summary>
[NonParallelizable]
public class TrainCommandTests : TempFolderTest
{
    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var (previous, previousError) = (Console.Out, Console.Error);
        Console.SetOut(output);
        Console.SetError(error);
        try
        {
            int code = Root.RunAsync(args, output, error).GetAwaiter().GetResult();
            return (code, output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetOut(previous);
            Console.SetError(previousError);
        }
    }

    /// <summary>A small train command line; <paramref name="overrides"/> are option/value pairs that replace or add to it.</summary>
    internal static string[] Train(string outDir, int epochs, params string[] overrides)
    {
        var options = new Dictionary<string, string>
        {
            ["--data"] = "synthetic", ["--width"] = "0.25", ["--input-size"] = "32", ["-b"] = "32", ["--epochs"] = epochs.ToString(),
            ["--lr"] = "0.05", ["--device"] = "cpu", ["-j"] = "2", ["--out"] = outDir,
        };
        for (int i = 0; i < overrides.Length; i += 2) options[overrides[i]] = overrides[i + 1];
        return ["train", .. options.SelectMany(o => new[] { o.Key, o.Value })];
    }

    internal static TrainSettings Settings(string outDir, int epochs) => new(
        "synthetic", "ghostnet_100", 0.25f, epochs, null, 32, 0.05f, 0.9f, 4e-5f, false, LrScheduleKind.Cosine, 30, 0.1f, [], 0f, 0.1f, false, 0.2f, 32,
        2, 50, 0, "cpu", null, null, false, outDir, InitScheme.PyTorchDefault, false);

    [TestCase("--epochs", "0", "--epochs must lie in 1..")]
    [TestCase("--momentum", "1.5", "--momentum must lie in [0, 1)")]
    [TestCase("--lr-schedule", "multistep", "needs --milestones")]
    [TestCase("--input-size", "16", "--input-size must lie in 32..")]
    [TestCase("--device", "tpu", "expected cpu, cuda, cuda:N or auto")]
    [TestCase("--precision", "fp16", "--precision fp16: expected fp32, tf32, tf32x3 or bf16")]
    [TestCase("--data", "/no/such/folder", "not mnist, fashion-mnist, cifar10, synthetic or an existing folder")]
    public void Bad_options_are_clear_errors(string option, string value, string message)
    {
        var (code, _, err) = Run(Train(Path.Combine(Folder, "run"), 1, option, value));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain(message));
    }

    [Test]
    public void Resume_and_pretrained_exclude_each_other_and_evaluate_needs_weights()
    {
        Assert.That(Run(Train(Folder, 1, "--resume", "a", "--pretrained", "b")).Err, Does.Contain("exclude each other"));
        Assert.That(Run(Train(Folder, 1, "--evaluate", "true")).Err, Does.Contain("--evaluate needs weights"));
    }

    [Test]
    public void Two_epochs_write_a_checkpoint_a_log_and_plots_that_eval_and_predict_read()
    {
        string run = Path.Combine(Folder, "run");
        var (code, output, err) = Run(Train(run, 2));
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("epoch 1: train loss"));
        var log = File.ReadAllLines(Path.Combine(run, "log.csv"));
        Assert.That(log[0], Is.EqualTo(RunLog.Header));
        Assert.That(log, Has.Length.EqualTo(3));
        foreach (var png in new[] { "loss.png", "accuracy.png" })
            Assert.That(File.ReadAllBytes(Path.Combine(run, png)).Take(4), Is.EqualTo(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }), png);
        var (info, tensors) = Checkpoint.Read(Path.Combine(run, "checkpoint.safetensors"));
        Assert.That(info.State.Epoch, Is.EqualTo(2));
        Assert.That(info.Classes, Has.Count.EqualTo(6));
        Assert.That(tensors.Select(t => t.Name), Does.Contain("classifier.weight").And.Contain("optimizer.momentum_buffer.conv_stem.weight"));
        Assert.That(File.Exists(Path.Combine(run, "model_best.safetensors")));

        var eval = Run("eval", "--checkpoint", Path.Combine(run, "checkpoint.safetensors"), "--device", "cpu");
        Assert.That(eval.Code, Is.Zero, eval.Err);
        Assert.That(eval.Out, Does.Contain("evaluated 240 images"));
        string image = Directory.GetFiles(Path.Combine(run, "synthetic-data", "val", "disc")).First();
        var predict = Run("predict", "--checkpoint", Path.Combine(run, "model_best.safetensors"), "--device", "cpu", image);
        Assert.That(predict.Code, Is.Zero, predict.Err);
        Assert.That(predict.Out, Does.Contain(image).And.Contain("%  disc"));
    }

    [Test]
    public void An_interrupted_and_resumed_run_ends_bit_identical_to_an_uninterrupted_one()
    {
        string straight = Path.Combine(Folder, "straight"), broken = Path.Combine(Folder, "broken");
        Assert.That(new TrainRun(Settings(straight, 2)).Execute(CancellationToken.None), Is.Zero);
        // 30 steps an epoch: stop in the middle of the second epoch, as Ctrl-C would, then resume.
        // Step 41 is reported once step 42 is launched (totals are read one step late), and the
        // trainer reports that one too before it stops: the checkpoint holds 42 steps.
        Assert.That(new TrainRun(Settings(broken, 2)) { InterruptAfterSteps = 41 }.Execute(CancellationToken.None), Is.EqualTo(130));
        var (info, _) = Checkpoint.Read(Path.Combine(broken, "checkpoint.safetensors"));
        Assert.That((info.State.Epoch, info.State.BatchInEpoch), Is.EqualTo((1, 12)));
        Assert.That(new TrainRun(Settings(broken, 2) with { Resume = Path.Combine(broken, "checkpoint.safetensors") }).Execute(CancellationToken.None), Is.Zero);

        var a = Checkpoint.Read(Path.Combine(straight, "checkpoint.safetensors")).Tensors;
        var b = Checkpoint.Read(Path.Combine(broken, "checkpoint.safetensors")).Tensors;
        Assert.That(b.Select(t => t.Name), Is.EqualTo(a.Select(t => t.Name)));
        for (int i = 0; i < a.Count; i++) Assert.That(b[i].Data, Is.EqualTo(a[i].Data), $"{a[i].Name} differs after resume");
        string Row(string dir) => File.ReadAllLines(Path.Combine(dir, "log.csv"))[2].Split(',').Where((_, i) => i < 8).Aggregate((x, y) => x + "," + y);
        Assert.That(Row(broken), Is.EqualTo(Row(straight)), "epoch 1's losses and accuracies");
    }

    [Test]
    public void A_truncated_checkpoint_is_a_clear_error()
    {
        string run = Path.Combine(Folder, "run");
        Assert.That(Run(Train(run, 1)).Code, Is.Zero);
        string path = Path.Combine(run, "checkpoint.safetensors");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length * 2 / 3)]);
        var (code, _, err) = Run("eval", "--checkpoint", path, "--device", "cpu");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain(path).And.Contain("truncated"));
        (code, _, err) = Run(Train(run, 2, "--resume", path));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("truncated"));
    }

    [Test]
    public void A_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint()
    {
        string run = Path.Combine(Folder, "run");
        Assert.That(Run(Train(run, 1)).Code, Is.Zero);
        string path = Path.Combine(run, "checkpoint.safetensors");
        var good = File.ReadAllBytes(path);
        var (code, _, err) = Run(Train(run, 3, "--resume", path, "--lr", "1e30"));
        Assert.That(code, Is.EqualTo(3));
        Assert.That(err, Does.Contain("the training loss became").And.Contain("nothing since the last checkpoint was saved"));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(good), "the checkpoint of the last good epoch is untouched");
    }
}

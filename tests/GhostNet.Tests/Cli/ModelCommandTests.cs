using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Cli;

/// <summary>`ghostcuda models`, `info --arch` and a registered model other than GhostNet through train, eval and resume.</summary>
[NonParallelizable]
public class ModelCommandTests : TempFolderTest
{
    [Test]
    public void Models_lists_every_registered_model_with_its_counts()
    {
        var (code, output, err) = TrainCommandTests.Run("models");
        Assert.That(code, Is.Zero, err);
        foreach (string arch in Models.ModelRegistry.Names) Assert.That(output, Does.Contain(arch));
        Assert.That(output, Does.Match(@"resnet56\s+32x32\s+10\s+0\.86 M\s+125\.7 M"));
        Assert.That(output, Does.Match(@"ghostnet_100\s+224x224\s+1000\s+5\.18 M\s+141\.2 M"));
    }

    [Test]
    public void Info_takes_a_cifar_model_at_its_own_size_and_compares_a_ghost_twin_with_its_standard_one()
    {
        var (code, output, err) = TrainCommandTests.Run("info", "--arch", "resnet56");
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("ResNet-56 (10 classes) at 32x32"));
        Assert.That(output, Does.Match(@"total\s+855,770\s+125,747,840"));
        Assert.That(output, Does.Match(@"layer2\.0\s+basic block s2\s+32x16x16"), "one row per block");
        (code, output, err) = TrainCommandTests.Run("info", "--arch", "ghost_resnet56", "--ghost-ratio", "4");
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Match(Wrapped("Ghost modules s = 4, d = 3")));
        Assert.That(output, Does.Match(Wrapped("against resnet56 (0.86 M parameters, 125.7 M multiply-adds)")));
    }

    /// <summary>A pattern for <paramref name="text"/> as the console wraps it: any space may be a line break.</summary>
    private static string Wrapped(string text) => System.Text.RegularExpressions.Regex.Escape(text).Replace("\\ ", @"\s+");

    [TestCase("resnet56", "--ghost-ratio", "3", "error: --arch resnet56: resnet56 has no ghost ratio option (given 3)")]
    [TestCase("resnet56", "--width", "0.5", "error: --arch resnet56: resnet56 has no width multiplier option (given 0.5)")]
    [TestCase("ghost_resnet56", "--ghost-ratio", "1", "error: --ghost-ratio must lie in 2..16")]
    [TestCase("ghost_resnet56", "--ghost-dw-size", "4", "error: --ghost-dw-size must be odd, 1..9")]
    [TestCase("ghostnet_100", "--ghost-dw-size", "5", "error: --arch ghostnet_100: ghostnet_100 has no ghost dw size option (given 5)")]
    public void An_option_the_model_lacks_or_out_of_range_is_one_line(string arch, string option, string value, string message)
    {
        var (code, _, err) = TrainCommandTests.Run("info", "--arch", arch, option, value);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim(), Is.EqualTo(message));
    }

    /// <summary>compare: every model timed, ratios against the first, the table and the plot written; bad entries are one line.</summary>
    [Test]
    public void Compare_times_models_side_by_side_and_writes_a_table_and_a_plot()
    {
        string dir = Path.Combine(Folder, "compare");
        var (code, output, err) = TrainCommandTests.Run("compare", "resnet20", "ghost_resnet20:s=4,d=1", "--device", "cpu", "-b", "2", "--steps", "1",
            "--warmup", "0", "--out", dir);
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Match(@"\| ResNet-20 \| 0\.27 M \| 40\.8 M \| 1\.00x \| [0-9.]+ \| 1\.00x \|"));
        Assert.That(output, Does.Contain("| Ghost-ResNet-20 s=4 d=1 |"));
        Assert.That(File.ReadAllText(Path.Combine(dir, "compare.md")), Does.Contain("ratios against ResNet-20"));
        Assert.That(new FileInfo(Path.Combine(dir, "compare.png")).Length, Is.GreaterThan(1000));
        Assert.That(Directory.GetFiles(dir).Select(Path.GetFileName), Is.EquivalentTo(new[] { "compare.md", "compare.png" }), "no temporary file left");
        (code, _, err) = TrainCommandTests.Run("compare", "resnet20", "ghost_resnet20:q=2", "--device", "cpu");
        Assert.That((code, err.Trim()), Is.EqualTo((2, "error: model 'ghost_resnet20:q=2': unknown option 'q' (s or d)")));
        (code, _, err) = TrainCommandTests.Run("compare", "resnet20:s=3", "--device", "cpu");
        Assert.That((code, err.Trim()), Is.EqualTo((2, "error: model 'resnet20:s=3': resnet20 has no ghost ratio option (given 3)")));
        (code, _, err) = TrainCommandTests.Run("compare", "ghost_resnet20:s=1", "--device", "cpu");
        Assert.That((code, err.Trim()), Is.EqualTo((2, "error: model 'ghost_resnet20:s=1': s must lie in 2..16")));
        (code, _, err) = TrainCommandTests.Run("compare", "resnet21", "--device", "cpu");
        Assert.That((code, err.Trim()), Is.EqualTo((2, "error: model 'resnet21' is not registered (ghostcuda models lists them)")));
    }

    /// <summary>Ghost-ResNet-20 with s = 3 trains an epoch; its checkpoint says so, eval rebuilds it, and a resume with another s is refused.</summary>
    [Test]
    public void A_ghost_resnet_trains_and_its_checkpoint_keeps_its_ratio()
    {
        string run = Path.Combine(Folder, "run");
        string[] train = ["train", "--data", "synthetic", "--arch", "ghost_resnet20", "--ghost-ratio", "3", "--input-size", "32", "-b", "32",
            "--epochs", "1", "--lr", "0.05", "--device", "cpu", "-j", "2", "--out", run];
        var (code, output, err) = TrainCommandTests.Run(train);
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("Ghost-ResNet-20 s=3 d=3 (101,526 parameters, 6 classes) at 32x32"));
        string checkpoint = Path.Combine(run, "checkpoint.safetensors");
        var (info, tensors) = Checkpoint.Read(checkpoint);
        Assert.That((info.Arch, info.ModelOptions.GhostRatio, info.ModelOptions.GhostDwSize, info.ModelOptions.Width, info.DropRate), Is.EqualTo(("ghost_resnet20", 3, 3, (float?)null, 0f)));
        Assert.That(tensors.Select(t => t.Name), Does.Contain("layer2.0.conv1.primary_conv.0.weight").And.Contain("layer2.0.downsample.0.weight").And.Contain("fc.bias"));

        (code, output, err) = TrainCommandTests.Run("eval", "--checkpoint", checkpoint, "--device", "cpu");
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("Ghost-ResNet-20 s=3 d=3, 6 classes, 32x32"));

        (code, _, err) = TrainCommandTests.Run("train", "--data", "synthetic", "--arch", "ghost_resnet20", "--ghost-ratio", "2", "--epochs", "2",
            "--device", "cpu", "--resume", checkpoint, "--out", run);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim(), Is.EqualTo("error: --ghost-ratio 2 differs from the checkpoint's 3; leave it out to resume"));
    }
}

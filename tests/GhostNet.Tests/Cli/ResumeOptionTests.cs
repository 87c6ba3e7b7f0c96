using GhostNet.Cuda;
using GhostNet.Data;
using NUnit.Framework;

namespace GhostNet.Tests.Cli;

/// <summary>
/// Options that must agree with a resumed checkpoint, and the CLI's other one-line refusals:
/// each case is exit 2 with one line naming the option, and nothing is trained.
/// </summary>
[NonParallelizable]
public class ResumeOptionTests : TempFolderTest
{
    private string _data = "", _run = "", _checkpoint = "";

    [SetUp]
    public void OneEpoch()
    {
        _data = TinyImageFolder.Write(Folder, trainPerClass: 4, valPerClass: 2);
        _run = Path.Combine(Folder, "run");
        var (code, _, err) = TrainCommandTests.Run(Train(_run, 1, "--arch", "ghostnet_050", "-b", "4", "--seed", "7"));
        Assert.That(code, Is.Zero, err);
        _checkpoint = Path.Combine(_run, "checkpoint.safetensors");
    }

    private string[] Train(string run, int epochs, params string[] more) =>
        ["train", "--data", _data, "--input-size", "32", "--epochs", epochs.ToString(), "--device", "cpu", "-j", "1", "--out", run, .. more];

    [TestCase("--arch", "ghostnet_100", "--arch ghostnet_100 differs from the checkpoint's ghostnet_050")]
    [TestCase("--width", "0.25", "--width 0.25 differs")]
    [TestCase("-b", "8", "--batch-size 8 differs from the checkpoint's 4")]
    [TestCase("--seed", "3", "--seed 3 differs from the checkpoint's 7")]
    [TestCase("--input-size", "64", "--input-size 64 differs")]
    [TestCase("--dropout", "0.5", "--dropout 0.5 differs")]
    public void A_resumed_run_refuses_options_that_differ_from_its_checkpoint(string option, string value, string message)
    {
        var overrides = Train(_run, 3, "--resume", _checkpoint).ToList();
        int at = overrides.IndexOf(option);
        if (at >= 0) overrides[at + 1] = value;
        else overrides.AddRange([option, value]);
        byte[] before = File.ReadAllBytes(_checkpoint);
        var (code, _, err) = TrainCommandTests.Run([.. overrides]);
        Assert.That(code, Is.EqualTo(2), err);
        Assert.That(err.Trim().Split('\n'), Has.Length.EqualTo(1));
        Assert.That(err, Does.Contain(message));
        Assert.That(File.ReadAllBytes(_checkpoint), Is.EqualTo(before));
    }

    [Test]
    public void Left_out_options_come_from_the_checkpoint_and_a_finished_run_asks_for_more_epochs()
    {
        var (code, output, err) = TrainCommandTests.Run(Train(_run, 2, "--resume", _checkpoint));
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("GhostNet width 0.5").And.Contain("steps of 4 per epoch"));
        (code, _, err) = TrainCommandTests.Run(Train(_run, 2, "--resume", _checkpoint));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("has finished 2 epochs; raise --epochs above 2"));
        (code, _, err) = TrainCommandTests.Run(Train(Path.Combine(Folder, "other"), 1, "--start-epoch", "5"));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("--start-epoch 5 is not before --epochs 1"));
    }

    [Test]
    public void A_folder_given_as_a_checkpoint_is_named_as_a_folder()
    {
        foreach (var args in new[] { Train(_run, 3, "--resume", _run), Train(_run, 3, "--pretrained", _run), ["eval", "--checkpoint", _run, "--device", "cpu"] })
        {
            var (code, _, err) = TrainCommandTests.Run(args);
            Assert.That(code, Is.EqualTo(2), string.Join(' ', args));
            Assert.That(err.Trim(), Does.StartWith("error: ").And.Contain("is a directory"), string.Join(' ', args));
        }
    }

    [Test]
    public void Predict_takes_a_folder_of_images_and_fails_clearly_when_none_is_usable()
    {
        string classFolder = Path.Combine(_data, "val", SyntheticImageFolder.ClassNames[0]);
        var (code, output, err) = TrainCommandTests.Run("predict", "--checkpoint", _checkpoint, "--device", "cpu", classFolder);
        Assert.That(code, Is.Zero, err);
        foreach (var image in Directory.GetFiles(classFolder)) Assert.That(output, Does.Contain(image));
        string empty = Path.Combine(Folder, "empty");
        Directory.CreateDirectory(empty);
        (code, _, err) = TrainCommandTests.Run("predict", "--checkpoint", _checkpoint, "--device", "cpu", empty);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("is a folder without .jpg, .jpeg or .png files"));
        string bad = Path.Combine(Folder, "bad.png");
        File.WriteAllBytes(bad, [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        (code, _, err) = TrainCommandTests.Run("predict", "--checkpoint", _checkpoint, "--device", "cpu", bad);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim(), Is.EqualTo("error: " + bad + ": not a JPEG or PNG image"), "one line with the reason");
    }

    [Test]
    public void Cuda_without_a_gpu_is_one_line_naming_the_reason()
    {
        if (CudaProbe.Status.Available) Assert.Ignore("a GPU (or the emulator) is present: the refusal cannot happen here");
        var args = Train(Path.Combine(Folder, "gpu"), 1);
        args[Array.IndexOf(args, "cpu")] = "cuda";
        var (code, _, err) = TrainCommandTests.Run(args);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim(), Does.StartWith("error: --device cuda: CUDA is not available ("));
    }

    [Test]
    public void A_checkpoint_without_history_keeps_the_rows_of_the_existing_log()
    {
        // Checkpoints written before the history was stored: the log's own rows must survive a resume.
        var (tensors, metadata) = Graph.Safetensors.Read(_checkpoint);
        string key = metadata.Keys.Single(k => k.StartsWith("ghostnet"));
        var json = System.Text.Json.Nodes.JsonNode.Parse(metadata[key])!.AsObject();
        Assert.That(json.Remove("History"), "the run information has a History to remove");
        metadata[key] = json.ToJsonString();
        Graph.Safetensors.Write(_checkpoint, tensors, metadata);
        string log = Path.Combine(_run, "log.csv");
        string firstRow = File.ReadAllLines(log)[1];

        var (code, _, err) = TrainCommandTests.Run(Train(_run, 2, "--resume", _checkpoint));
        Assert.That(code, Is.Zero, err);
        var lines = File.ReadAllLines(log);
        Assert.That(lines, Has.Length.EqualTo(3));
        Assert.That(lines[1], Is.EqualTo(firstRow));
        Assert.That(lines[2], Does.StartWith("1,"));
    }
}

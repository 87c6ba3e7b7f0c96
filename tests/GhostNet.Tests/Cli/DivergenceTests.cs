using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Cli;

/// <summary>
/// A run that diverges stops with exit 3 and keeps the last finite model: model_best and the
/// checkpoint are never replaced by non-finite weights, and no NaN is ever scored as correct.
/// </summary>
[NonParallelizable]
public class DivergenceTests : TempFolderTest
{
    private string _data = "";

    [SetUp]
    public void TinyData()
    {
        _data = TinyImageFolder.Write(Folder, trainPerClass: 4, valPerClass: 4);
    }

    private string[] Train(string run, int epochs, string lr, params string[] more) =>
    [
        "train", "--data", _data, "--width", "0.25", "--input-size", "32", "-b", "8", "--epochs", epochs.ToString(), "--lr", lr,
        "--device", "cpu", "-j", "1", "--out", run, "--lr-schedule", "step", .. more,
    ];

    [TestCase("1e30")]
    [TestCase("1e15")]
    [TestCase("1e8")]
    public void A_diverging_epoch_stops_the_run_and_keeps_the_last_finite_model(string lr)
    {
        // One step per epoch: the step that diverges is the epoch's last, so its loss is still finite.
        string run = Path.Combine(Folder, "run");
        Assert.That(TrainCommandTests.Run(Train(run, 1, "0.05")).Code, Is.Zero);
        string checkpoint = Path.Combine(run, "checkpoint.safetensors"), best = Path.Combine(run, "model_best.safetensors");
        byte[] goodCheckpoint = File.ReadAllBytes(checkpoint), goodBest = File.ReadAllBytes(best);
        string goodLog = File.ReadAllText(Path.Combine(run, "log.csv"));

        var (code, output, err) = TrainCommandTests.Run(Train(run, 3, lr, "--resume", checkpoint));
        Assert.That(code, Is.EqualTo(3), output + err);
        Assert.That(err, Does.Contain("NaN or infinite").Or.Contain("validation loss").Or.Contain("the training loss became"));
        Assert.That(err, Does.Contain(checkpoint), "the message names the last good checkpoint");
        Assert.That(output, Does.Not.Contain("top-1 100.00%"));
        Assert.That(File.ReadAllBytes(best), Is.EqualTo(goodBest), "model_best is the last finite model");
        Assert.That(File.ReadAllBytes(checkpoint), Is.EqualTo(goodCheckpoint), "the checkpoint is the last finite one");
        Assert.That(File.ReadAllText(Path.Combine(run, "log.csv")), Is.EqualTo(goodLog));
        foreach (var file in new[] { checkpoint, best })
            Assert.That(Checkpoint.Read(file).Tensors.Where(t => t.DType == "F32").SelectMany(t => t.AsFloats()).All(float.IsFinite), file);
    }

    [Test]
    public void Eval_and_resume_of_a_checkpoint_with_nan_weights_say_so_and_fail()
    {
        string run = Path.Combine(Folder, "run");
        Assert.That(TrainCommandTests.Run(Train(run, 1, "0.05")).Code, Is.Zero);
        string path = Path.Combine(run, "checkpoint.safetensors");
        var (info, tensors) = Checkpoint.Read(path);
        int i = tensors.FindIndex(t => t.Name == "blocks.1.0.ghost1.primary_conv.0.weight");
        var values = tensors[i].AsFloats();
        values[3] = float.NaN;
        tensors[i] = Graph.SafetensorsTensor.Floats(tensors[i].Name, tensors[i].Shape, values);
        string poisoned = Path.Combine(Folder, "nan.safetensors");
        Graph.Safetensors.Write(poisoned, tensors, Graph.Safetensors.Read(path).Metadata);

        var (code, _, err) = TrainCommandTests.Run("eval", "--checkpoint", poisoned, "--data", _data, "--device", "cpu");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err.Trim(), Does.StartWith("error: " + poisoned).And.Contain("NaN or Inf").And.Contain("blocks.1.0.ghost1.primary_conv.0.weight"));
        (code, _, err) = TrainCommandTests.Run(Train(Path.Combine(Folder, "again"), 2, "0.05", "--resume", poisoned));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("NaN or Inf"));
        Assert.That(info.State.Epoch, Is.EqualTo(1));
    }
}

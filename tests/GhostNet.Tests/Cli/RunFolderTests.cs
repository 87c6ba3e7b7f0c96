using System.Diagnostics;
using GhostNet.Data;
using GhostNet.Graph;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Cli;

/// <summary>
/// The run folder is never lost or shared by accident, and the inputs a hostile-input battery
/// found wanting (a FIFO as a checkpoint, links from validation into training, a model that
/// gives NaN logits, NaN pretrained weights, predict on a split folder) each get one clear line.
/// </summary>
[NonParallelizable]
public class RunFolderTests : TempFolderTest
{
    private string _data = "";

    [SetUp]
    public void TinyData() => _data = TinyImageFolder.Write(Folder, trainPerClass: 4, valPerClass: 2);

    /// <summary>A tiny train command line; <paramref name="more"/> are option/value pairs that replace or add to it.</summary>
    private string[] Train(string run, params string[] more)
    {
        var options = new Dictionary<string, string>
        {
            ["--data"] = _data, ["--width"] = "0.25", ["--input-size"] = "32", ["-b"] = "4", ["--epochs"] = "1", ["--device"] = "cpu", ["-j"] = "1", ["--out"] = run,
        };
        for (int i = 0; i < more.Length; i += 2) options[more[i]] = more[i + 1];
        return ["train", .. options.SelectMany(o => new[] { o.Key, o.Value })];
    }

    private static void OneErrorLine(int code, int expected, string err, string contains)
    {
        Assert.That(code, Is.EqualTo(expected), err);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), err);
        Assert.That(lines[0], Does.StartWith("error: ").And.Contain(contains));
    }

    [Test]
    public void A_fresh_run_never_replaces_another_runs_results()
    {
        string run = Path.Combine(Folder, "run");
        Assert.That(TrainCommandTests.Run(Train(run)).Code, Is.Zero);
        var before = Directory.GetFiles(run, "*.safetensors").ToDictionary(f => f, File.ReadAllBytes);
        var (code, _, err) = TrainCommandTests.Run(Train(run, "--seed", "3"));
        OneErrorLine(code, 2, err, "already holds a run; continue it with --resume");
        foreach (var (file, bytes) in before) Assert.That(File.ReadAllBytes(file), Is.EqualTo(bytes), file);
        // Resuming from another folder into this one would replace it too.
        string other = Path.Combine(Folder, "other");
        Assert.That(TrainCommandTests.Run(Train(other)).Code, Is.Zero);
        (code, _, err) = TrainCommandTests.Run(Train(run, "--epochs", "2", "--resume", Path.Combine(other, "checkpoint.safetensors")));
        OneErrorLine(code, 2, err, "already holds a run");
        // Its own model_best would continue an older state over the folder's later checkpoint.
        (code, _, err) = TrainCommandTests.Run(Train(run, "--epochs", "2", "--resume", Path.Combine(run, "model_best.safetensors")));
        OneErrorLine(code, 2, err, "already holds a run");
    }

    [Test]
    public void A_folder_in_use_by_another_run_is_refused()
    {
        string run = Path.Combine(Folder, "run");
        Directory.CreateDirectory(run);
        using (new FileStream(Path.Combine(run, ".ghostcuda.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            var (code, _, err) = TrainCommandTests.Run(Train(run));
            OneErrorLine(code, 2, err, "is in use by another ghostcuda run");
        }
        Assert.That(TrainCommandTests.Run(Train(run)).Code, Is.Zero, "free again once the other run has ended");
        Assert.That(File.Exists(Path.Combine(run, ".ghostcuda.lock")), Is.True, "the lock file stays: deleting it could let two runs lock two files");
    }

    [Test]
    public void A_run_file_that_is_a_folder_is_found_before_the_first_step_and_failures_leave_no_empty_folder()
    {
        string run = Path.Combine(Folder, "run");
        Directory.CreateDirectory(Path.Combine(run, "log.csv"));
        var (code, output, err) = TrainCommandTests.Run(Train(run));
        OneErrorLine(code, 2, err, "log.csv is a folder");
        Assert.That(output, Does.Not.Contain("epoch 0:"));
        string fresh = Path.Combine(Folder, "fresh");
        foreach (var args in new[] { Train(fresh, "--device", "tpu"), Train(fresh, "-b", "1000000"), Train(fresh, "--lr", "1e30") })
        {
            var (c, _, e) = TrainCommandTests.Run(args);
            Assert.That(c, Is.Not.Zero, e);
            Assert.That(Directory.Exists(fresh) && !Directory.EnumerateFileSystemEntries(fresh).Any(), Is.False, $"{string.Join(' ', args)} left an empty folder");
        }
    }

    [Test]
    public void A_fifo_given_as_a_checkpoint_is_refused_at_once()
    {
        string fifo = Path.Combine(Folder, "fifo.safetensors");
        using (var mk = Process.Start("mkfifo", fifo)) mk.WaitForExit();
        var task = Task.Run(() => TrainCommandTests.Run("eval", "--checkpoint", fifo, "--device", "cpu"));
        Assert.That(task.Wait(TimeSpan.FromSeconds(30)), Is.True, "eval waits on the FIFO");
        OneErrorLine(task.Result.Code, 2, task.Result.Err, "not a regular file");
    }

    [Test]
    public void Validation_images_linked_from_training_are_refused()
    {
        string val = Path.Combine(_data, "val", SyntheticImageFolder.ClassNames[0]);
        Directory.Delete(val, recursive: true);
        Directory.CreateSymbolicLink(val, Path.Combine("..", "train", SyntheticImageFolder.ClassNames[0]));
        var (code, _, err) = TrainCommandTests.Run(Train(Path.Combine(Folder, "run")));
        Assert.That(code, Is.EqualTo(2), err);
        Assert.That(err, Does.Contain("are also training images through links"));
    }

    [Test]
    public void A_model_that_gives_nan_logits_fails_eval_and_predict_and_nan_pretrained_weights_are_refused()
    {
        string run = Path.Combine(Folder, "run");
        Assert.That(TrainCommandTests.Run(Train(run)).Code, Is.Zero);
        string path = Path.Combine(run, "checkpoint.safetensors");
        var (tensors, metadata) = Safetensors.Read(path);
        // Finite weights whose products overflow: the logits are NaN, the file itself is clean.
        int i = tensors.FindIndex(t => t.Name == "classifier.weight");
        var w = tensors[i].AsFloats();
        for (int j = 0; j < w.Length; j++) w[j] = j % 2 == 0 ? 3e38f : -3e38f;
        tensors[i] = SafetensorsTensor.Floats(tensors[i].Name, tensors[i].Shape, w);
        string huge = Path.Combine(Folder, "huge.safetensors");
        Safetensors.Write(huge, tensors, metadata);
        var (code, _, err) = TrainCommandTests.Run("eval", "--checkpoint", huge, "--data", _data, "--device", "cpu", "-j", "1");
        OneErrorLine(code, 3, err, "gave NaN or infinite logits");
        string image = Directory.EnumerateFiles(Path.Combine(_data, "val"), "*.jpg", SearchOption.AllDirectories).First();
        (code, var output, err) = TrainCommandTests.Run("predict", "--checkpoint", huge, "--device", "cpu", image);
        OneErrorLine(code, 3, err, "gave NaN or infinite logits");
        Assert.That(output, Does.Contain("no prediction"));

        w[0] = float.NaN;
        tensors[i] = SafetensorsTensor.Floats(tensors[i].Name, tensors[i].Shape, w);
        string nan = Path.Combine(Folder, "nan.safetensors");
        Safetensors.Write(nan, tensors, metadata);
        (code, _, err) = TrainCommandTests.Run(Train(Path.Combine(Folder, "tuned"), "--pretrained", nan));
        OneErrorLine(code, 2, err, "classifier.weight holds NaN or Inf");
    }

    [Test]
    public void Predict_walks_a_split_folder_and_a_single_bad_image_is_one_line()
    {
        string run = Path.Combine(Folder, "run");
        Assert.That(TrainCommandTests.Run(Train(run)).Code, Is.Zero);
        string checkpoint = Path.Combine(run, "checkpoint.safetensors");
        var (code, output, err) = TrainCommandTests.Run("predict", "--checkpoint", checkpoint, "--device", "cpu", Path.Combine(_data, "val"));
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain("4 image(s)"));
        string empty = Path.Combine(Folder, "empty.png");
        File.WriteAllBytes(empty, []);
        (code, _, err) = TrainCommandTests.Run("predict", "--checkpoint", checkpoint, "--device", "cpu", empty);
        OneErrorLine(code, 2, err, empty + ": empty file");
        _ = Checkpoint.Read(checkpoint);
    }
}

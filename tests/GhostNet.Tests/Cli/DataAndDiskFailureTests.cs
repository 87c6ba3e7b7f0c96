using System.Diagnostics;
using GhostNet.Data;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Cli;

/// <summary>Bad data and a full disk as `ghostcuda train` meets them: one line, exit 2, nothing good lost.</summary>
[NonParallelizable]
public class DataAndDiskFailureTests : TempFolderTest
{
    private string[] Train(string data, string run, params string[] more) =>
        ["train", "--data", data, "--width", "0.25", "--input-size", "32", "-b", "4", "--epochs", "1", "--device", "cpu", "-j", "1", "--out", run, .. more];

    private string Data(int perClass) => TinyImageFolder.Write(Folder, trainPerClass: perClass, valPerClass: 2);

    [Test]
    public void Strict_data_stops_at_a_bad_file_naming_it_and_keeps_the_batches_before_it()
    {
        string data = Data(perClass: 8);
        string bad = Path.Combine(data, "train", SyntheticImageFolder.ClassNames[1], "zz-bad.jpg");
        File.WriteAllBytes(bad, [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 1, 2, 3]);
        string run = Path.Combine(Folder, "run");
        var (code, _, err) = TrainCommandTests.Run(Train(data, run, "--strict-data"));
        Assert.That(code, Is.EqualTo(2), err);
        var errors = err.Split('\n').Where(l => l.StartsWith("error: ")).ToList();
        Assert.That(errors, Has.Count.EqualTo(1), err);
        Assert.That(errors[0], Does.Contain(bad));
        Assert.That(err, Does.Not.Contain("   at "), "no stack trace without --verbose");
        var (info, _) = Checkpoint.Read(Path.Combine(run, "checkpoint.safetensors"));
        Assert.That(info.State.Epoch, Is.Zero);

        (code, _, err) = TrainCommandTests.Run([.. Train(data, Path.Combine(Folder, "verbose"), "--strict-data"), "--verbose"]);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("   at "), "--verbose prints the stack trace");
    }

    [Test]
    public void A_bad_validation_image_under_strict_data_keeps_the_trained_epoch()
    {
        string data = Data(perClass: 4);
        File.WriteAllBytes(Path.Combine(data, "val", SyntheticImageFolder.ClassNames[0], "bad.png"), [0x89, (byte)'P', (byte)'N', (byte)'G', 0, 0]);
        string run = Path.Combine(Folder, "run");
        var (code, _, err) = TrainCommandTests.Run(Train(data, run, "--strict-data"));
        Assert.That(code, Is.EqualTo(2), err);
        Assert.That(err.Split('\n').Where(l => l.StartsWith("error: ")).Single(), Does.Contain("validation of epoch 0").And.Contain("bad.png").And.Contain("is saved"));
        var (info, _) = Checkpoint.Read(Path.Combine(run, "checkpoint.safetensors"));
        Assert.That((info.State.Epoch, info.State.BatchInEpoch), Is.EqualTo((0, 2)), "the trained epoch, to be validated on resume");
    }

    [Test]
    public void A_folder_whose_every_image_is_bad_is_one_line()
    {
        string data = Data(perClass: 2);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(data, "train"), "*", SearchOption.AllDirectories)) File.WriteAllBytes(file, [1, 2, 3]);
        var (code, _, err) = TrainCommandTests.Run(Train(data, Path.Combine(Folder, "run")));
        Assert.That(code, Is.EqualTo(2), err);
        Assert.That(err.Split('\n').Where(l => l.StartsWith("error: ")).Single(), Does.Contain("unreadable"));
        Assert.That(err, Does.Not.Contain("   at "));
    }

    [Test]
    public void A_disk_too_small_for_the_checkpoints_fails_before_the_first_step()
    {
        string mount = Path.Combine(Folder, "tiny");
        Directory.CreateDirectory(mount);
        if (!Mount(mount))
        {
            string why = "cannot mount a 3 MiB tmpfs (needs root)";
            if (Environment.GetEnvironmentVariable("CI") == "true") Assert.Fail(why + ": CI runs as root, so this must work there");
            Assert.Ignore(why);
        }
        try
        {
            var (code, output, err) = TrainCommandTests.Run(Train(Data(perClass: 4), Path.Combine(mount, "run")));
            Assert.That(code, Is.EqualTo(2), output + err);
            Assert.That(err.Trim(), Does.StartWith("error: ").And.Contain("free, but a run needs"));
            Assert.That(output, Does.Not.Contain("epoch 0:"), "refused before training");
        }
        finally
        {
            Run("umount", mount);
        }
    }

    private static bool Mount(string path) => Run("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", path);

    private static bool Run(string file, params string[] args)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            p.WaitForExit();
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}

using System.Diagnostics;
using System.Runtime.InteropServices;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Cli;

/// <summary>
/// `ghostcuda train` as a separate process, stopped by SIGINT, SIGTERM or SIGKILL at seeded
/// random points across training, validation and checkpoint writing. After every stop, every
/// safetensors file in the run folder loads and evaluates; resuming to the end gives final
/// tensors bit-identical to an uninterrupted run, and the same log rows.
/// </summary>
[NonParallelizable]
public partial class SignalTests : TempFolderTest
{
    private const int Epochs = 3, SigInt = 2, SigKill = 9, SigTerm = 15;
    private string _data = "";

    [SetUp]
    public void TinyData()
    {
        // 4 steps of 4 per epoch, and a validation split of 16 batches so that a signal after the last step lands in it.
        _data = TinyImageFolder.Write(Folder, trainPerClass: 8, valPerClass: 32);
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);

    private string[] Train(string outDir, params string[] more) => Train(outDir, Epochs, more);

    private string[] Train(string outDir, int epochs, params string[] more) =>
    [
        "train", "--data", _data, "--width", "0.25", "--input-size", "32", "-b", "4", "--epochs", epochs.ToString(), "--lr", "0.05",
        "--device", "cpu", "-j", "1", "--print-freq", "1", "--out", outDir, .. more,
    ];

    /// <summary>Runs ghostcuda; once <paramref name="afterLines"/> lines are out, waits <paramref name="delayMs"/> and sends the signals.</summary>
    private static (int Code, string Output) Ghostcuda(string[] args, int afterLines = -1, int delayMs = 0, params int[] signals)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ghostcuda.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var output = new System.Text.StringBuilder();
        int lines = 0;
        var reached = new ManualResetEventSlim(afterLines == 0);
        void OnLine(string? line)
        {
            if (line is null) return;
            lock (output) output.AppendLine(line);
            if (Interlocked.Increment(ref lines) == afterLines) reached.Set();
        }
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (afterLines >= 0 && signals.Length > 0)
        {
            while (!reached.Wait(10) && !process.HasExited) { }
            Thread.Sleep(delayMs);
            foreach (int signal in signals)
            {
                if (!process.HasExited) Kill(process.Id, signal);
                Thread.Sleep(5);
            }
        }
        if (!process.WaitForExit(120_000))
        {
            process.Kill();
            Assert.Fail($"ghostcuda {string.Join(' ', args)} did not end in 2 minutes:\n{output}");
        }
        process.WaitForExit();
        lock (output) return (process.ExitCode, output.ToString());
    }

    private static List<SafetensorsTensorBytes> Final(string run) =>
        Checkpoint.Read(Path.Combine(run, "checkpoint.safetensors")).Tensors.Select(t => new SafetensorsTensorBytes(t.Name, t.Data)).ToList();

    private sealed record SafetensorsTensorBytes(string Name, byte[] Data);

    /// <summary>The log's rows without the timing columns.</summary>
    private static string[] LogRows(string run) =>
        File.ReadAllLines(Path.Combine(run, "log.csv")).Select(l => string.Join(',', l.Split(',').Take(8))).ToArray();

    /// <summary>Every checkpoint in the folder reads, and `eval` runs on it.</summary>
    private void EveryFileLoads(string run, string stop)
    {
        foreach (var file in Directory.EnumerateFiles(run, "*.safetensors"))
        {
            Assert.DoesNotThrow(() => Checkpoint.Read(file), $"{stop}: {file} does not load");
            var (code, _, err) = TrainCommandTests.Run("eval", "--checkpoint", file, "--data", _data, "--device", "cpu", "-j", "1");
            Assert.That(code, Is.Zero, $"{stop}: eval of {file}: {err}");
        }
    }

    private void AssertSameAsStraight(string run, string straight, string stop)
    {
        Assert.That(Directory.EnumerateFiles(run, "*.tmp"), Is.Empty, $"{stop}: a temporary file is left");
        var a = Final(straight);
        var b = Final(run);
        Assert.That(b.Select(t => t.Name), Is.EqualTo(a.Select(t => t.Name)), stop);
        for (int i = 0; i < a.Count; i++) Assert.That(b[i].Data, Is.EqualTo(a[i].Data), $"{stop}: {a[i].Name} differs from the uninterrupted run");
        Assert.That(LogRows(run), Is.EqualTo(LogRows(straight)), $"{stop}: log rows");
    }

    [Test]
    public void Sigint_and_sigterm_at_random_points_save_a_checkpoint_that_resumes_bit_identically()
    {
        string straight = Path.Combine(Folder, "straight");
        var (code, output) = Ghostcuda(Train(straight));
        Assert.That(code, Is.Zero, output);
        int totalLines = output.Split('\n').Length;
        var phases = new List<string>();
        for (int seed = 0; seed < 6; seed++)
        {
            var rng = new Random(seed);
            int signal = seed % 2 == 0 ? SigInt : SigTerm;
            string run = Path.Combine(Folder, $"run{seed}");
            int after = rng.Next(1, totalLines - 2), delay = rng.Next(0, 40);
            string stop = $"seed {seed}: signal {signal} after {after} lines + {delay} ms";
            var (stopped, text) = Ghostcuda(Train(run), after, delay, signal);
            if (stopped == 0)
            {
                phases.Add($"{stop}: finished before the signal");
                AssertSameAsStraight(run, straight, stop);
                continue;
            }
            Assert.That(stopped, Is.EqualTo(128 + signal), $"{stop}:\n{text}");
            phases.Add($"{stop}: {text.Split('\n').Last(l => l.Contains("interrupted")).Trim()}");
            EveryFileLoads(run, stop);
            var (resumed, rest) = Ghostcuda(Train(run, "--resume", Path.Combine(run, "checkpoint.safetensors")));
            Assert.That(resumed, Is.Zero, $"{stop}: resume:\n{rest}");
            AssertSameAsStraight(run, straight, stop);
        }
        TestContext.Out.WriteLine(string.Join("\n", phases));
    }

    [Test]
    public void A_signal_during_validation_keeps_the_trained_epoch_and_resume_validates_it()
    {
        string straight = Path.Combine(Folder, "straight");
        Assert.That(Ghostcuda(Train(straight)).Code, Is.Zero);
        string run = Path.Combine(Folder, "run");
        // Header line, then four step lines of epoch 0: the signal follows the last step, while validation runs.
        var (code, text) = Ghostcuda(Train(run), afterLines: 5, delayMs: 0, SigInt);
        Assert.That(code, Is.EqualTo(130), text);
        Assert.That(text, Does.Contain("interrupted during validation of epoch 0"));
        var (info, _) = Checkpoint.Read(Path.Combine(run, "checkpoint.safetensors"));
        Assert.That((info.State.Epoch, info.State.BatchInEpoch), Is.EqualTo((0, 4)));
        var (resumed, rest) = Ghostcuda(Train(run, "--resume", Path.Combine(run, "checkpoint.safetensors")));
        Assert.That(resumed, Is.Zero, rest);
        Assert.That(rest, Does.Contain("epoch 0: train loss"));
        AssertSameAsStraight(run, straight, "validation");
    }

    [Test]
    public void Resume_with_the_checkpoint_alone_continues_its_settings_in_its_own_folder()
    {
        // Non-default schedule and optimiser settings: the checkpoint must carry them all.
        string[] settings = ["--wd", "1e-4", "--label-smoothing", "0.2", "--lr-schedule", "linear", "--warmup-epochs", "0.5", "--momentum", "0.8", "--nesterov", "--seed", "5"];
        string straight = Path.Combine(Folder, "straight");
        Assert.That(Ghostcuda(Train(straight, settings)).Code, Is.Zero);
        string run = Path.Combine(Folder, "run");
        var (code, text) = Ghostcuda(Train(run, settings), afterLines: 7, delayMs: 0, SigInt);
        Assert.That(code, Is.EqualTo(130), text);
        // Only --resume (and how to run: device, threads), from another working folder: data, out, schedule all from the checkpoint.
        var (resumed, rest) = Ghostcuda(["train", "--resume", Path.Combine(run, "checkpoint.safetensors"), "--device", "cpu", "-j", "1"]);
        Assert.That(resumed, Is.Zero, rest);
        AssertSameAsStraight(run, straight, "resume from the checkpoint alone");
    }

    [Test]
    public void A_second_signal_aborts_at_once_and_leaves_every_file_loadable()
    {
        string run = Path.Combine(Folder, "run");
        var (code, text) = Ghostcuda(Train(run, 50), afterLines: 3, delayMs: 0, SigInt, SigInt);
        Assert.That(code, Is.EqualTo(130), text);
        Assert.That(text, Does.Not.Contain("interrupted at epoch"), "the second signal did not wait for the checkpoint");
        EveryFileLoads(run, "second signal");
    }

    [Test]
    public void Kill_9_at_random_points_never_leaves_a_file_that_fails_to_load()
    {
        string straight = Path.Combine(Folder, "straight");
        var (code, output) = Ghostcuda(Train(straight));
        Assert.That(code, Is.Zero, output);
        int totalLines = output.Split('\n').Length;
        for (int seed = 0; seed < 4; seed++)
        {
            var rng = new Random(100 + seed);
            string run = Path.Combine(Folder, $"run{seed}");
            int after = rng.Next(1, totalLines - 2), delay = rng.Next(0, 40);
            string stop = $"seed {seed}: kill -9 after {after} lines + {delay} ms";
            var (killed, text) = Ghostcuda(Train(run), after, delay, SigKill);
            if (killed == 0) continue;
            Assert.That(killed, Is.EqualTo(137), $"{stop}:\n{text}");
            EveryFileLoads(run, stop);
            if (!File.Exists(Path.Combine(run, "checkpoint.safetensors"))) continue; // killed before the first save: nothing to resume
            var (resumed, rest) = Ghostcuda(Train(run, "--resume", Path.Combine(run, "checkpoint.safetensors")));
            Assert.That(resumed, Is.Zero, $"{stop}: resume:\n{rest}");
            AssertSameAsStraight(run, straight, stop);
        }
    }
}

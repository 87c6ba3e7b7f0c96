using NUnit.Framework;

namespace GhostNet.Tests.Cli;

/// <summary>
/// Every numeric option of `ghostcuda train`, `eval` and `predict` at 0, negative, NaN, infinite
/// and huge: a refused value is exit 2 with one line naming the option and no file written; an
/// accepted one trains (exit 0), or diverges with exit 3. The expected outcome of each case is in
/// the table; a case that behaves otherwise fails with its name.
/// </summary>
[NonParallelizable]
public class OptionFamilyTests : TempFolderTest
{
    private const string Huge = "huge";
    private static readonly string[] Values = ["0", "-1", "NaN", "Infinity", Huge];

    /// <summary>Option, its huge value, and the values (of <see cref="Values"/>) that are accepted.</summary>
    private static readonly (string Option, string HugeValue, string[] Accepted)[] TrainOptions =
    [
        ("--epochs", "2147483647", []),
        ("--start-epoch", "2147483647", ["0"]),
        ("-b", "1000000", []),
        ("--lr", "1e30", [Huge]),
        ("--momentum", "1e30", ["0"]),
        ("--wd", "1e30", ["0", Huge]),
        ("--lr-step", "2147483647", [Huge]),
        ("--lr-gamma", "1e30", []),
        ("--milestones", "2147483647", []),
        ("--warmup-epochs", "1e30", ["0"]),
        ("--label-smoothing", "1e30", ["0"]),
        ("--dropout", "1e30", ["0"]),
        ("--input-size", "100000", []),
        ("-j", "1000", ["0"]),
        ("--print-freq", "2147483647", [Huge]),
        ("--seed", "2147483647", ["0", "-1", Huge]),
        ("--width", "1e30", []),
    ];

    private string _data = "";

    [SetUp]
    public void TinyData()
    {
        _data = TinyImageFolder.Write(Folder, trainPerClass: 4, valPerClass: 2);
    }

    private string[] Train(string outDir, string option, string value)
    {
        var options = new Dictionary<string, string>
        {
            ["--data"] = _data, ["--width"] = "0.25", ["--input-size"] = "32", ["-b"] = "4", ["--epochs"] = "1", ["--lr"] = "0.05",
            ["--device"] = "cpu", ["-j"] = "1", ["--out"] = outDir,
        };
        options[option] = value;
        if (option == "--milestones") options["--lr-schedule"] = "multistep";
        return ["train", .. options.SelectMany(o => new[] { o.Key, o.Value })];
    }

    [Test]
    public void Every_numeric_train_option_at_its_extremes()
    {
        var failures = new List<string>();
        int n = 0;
        foreach (var (option, hugeValue, accepted) in TrainOptions)
        foreach (string v in Values)
        {
            string value = v == Huge ? hugeValue : v;
            string outDir = Path.Combine(Folder, $"run{n++}");
            var (code, _, err) = TrainCommandTests.Run(Train(outDir, option, value));
            string name = $"{option} {value}";
            if (accepted.Contains(v))
            {
                if (code is not (0 or 3)) failures.Add($"{name}: accepted expected, got exit {code}: {err.Trim()}");
                continue;
            }
            if (Refusal(name, option, code, err) is { } problem) failures.Add(problem);
            else if (Directory.Exists(outDir) && Directory.EnumerateFiles(outDir, "*.safetensors").Any()) failures.Add($"{name}: refused but wrote a checkpoint");
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    [Test]
    public void Every_numeric_eval_and_predict_option_at_its_extremes()
    {
        string run = Path.Combine(Folder, "run");
        Assert.That(TrainCommandTests.Run(Train(run, "--epochs", "1")).Code, Is.Zero);
        string checkpoint = Path.Combine(run, "checkpoint.safetensors");
        string image = Directory.EnumerateFiles(Path.Combine(_data, "val"), "*.jpg", SearchOption.AllDirectories).First();
        var failures = new List<string>();
        foreach (var (option, hugeValue, accepted) in new[] { ("-b", "1000000", new[] { Huge }), ("-j", "1000", ["0"]) })
        foreach (string v in Values)
        {
            string value = v == Huge ? hugeValue : v;
            var (code, _, err) = TrainCommandTests.Run("eval", "--checkpoint", checkpoint, "--data", _data, "--device", "cpu", option, value);
            string name = $"eval {option} {value}";
            if (accepted.Contains(v)) { if (code != 0) failures.Add($"{name}: accepted expected, got exit {code}: {err.Trim()}"); }
            else if (Refusal(name, option, code, err) is { } problem) failures.Add(problem);
        }
        foreach (string v in Values)
        {
            string value = v == Huge ? "2147483647" : v;
            var (code, _, err) = TrainCommandTests.Run("predict", "--checkpoint", checkpoint, "--device", "cpu", "--top", value, image);
            string name = $"predict --top {value}";
            if (v == Huge) { if (code != 0) failures.Add($"{name}: accepted (clamped to the class count) expected, got exit {code}: {err.Trim()}"); }
            else if (Refusal(name, "--top", code, err) is { } problem) failures.Add(problem);
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    [Test]
    public void Every_numeric_info_and_bench_option_at_its_extremes()
    {
        var failures = new List<string>();
        // Each case: the command line, and whether it is accepted. Accepted bench runs are kept tiny.
        string[] tiny = ["--device", "cpu", "--width", "0.25", "--size", "32", "--train-batches", "2", "--infer-batches", "1", "--steps", "1", "--warmup", "0"];
        var cases = new List<(string[] Args, bool Accepted)>();
        foreach (string v in new[] { "0", "-1", "NaN", "Infinity", "1000000" })
        {
            cases.Add((["info", "--size", v], false));
            cases.Add((["info", "--width", v == "1000000" ? "1e30" : v], false));
            cases.Add((["info", "--classes", v], v == "1000000"));
            cases.Add((["bench", .. tiny, "--size", v], false));
            cases.Add((["bench", .. tiny, "--steps", v], false));
            cases.Add((["bench", .. tiny, "--warmup", v], v == "0"));
            cases.Add((["bench", .. tiny, "--threads", v], v == "0"));
            cases.Add((["bench", .. tiny, "--train-batches", v], false));
            cases.Add((["bench", .. tiny, "--infer-batches", v], false));
            cases.Add((["bench", .. tiny, "--profile-batch", v], false));
        }
        foreach (var (args, accepted) in cases)
        {
            // The later of a repeated option would be refused by the parser: keep only the last value of each.
            var line = new List<string>();
            for (int i = 1; i < args.Length; i += 2)
            {
                int earlier = line.IndexOf(args[i]);
                if (earlier >= 0) line.RemoveRange(earlier, 2);
                line.AddRange([args[i], args[i + 1]]);
            }
            string option = args[^2], name = $"{args[0]} {option} {args[^1]}";
            var (code, _, err) = TrainCommandTests.Run([args[0], .. line]);
            if (accepted) { if (code != 0) failures.Add($"{name}: accepted expected, got exit {code}: {err.Trim()}"); }
            else if (Refusal(name, option, code, err) is { } problem) failures.Add(problem);
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    /// <summary>Null when the outcome is a proper refusal: exit 2 and one line "error: ..." naming the option.</summary>
    private static string? Refusal(string name, string option, int code, string err)
    {
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string[] names = option switch { "-b" => ["-b", "--batch-size"], "-j" => ["-j", "--workers"], "--wd" => ["--wd", "--weight-decay"], _ => [option] };
        if (code != 2) return $"{name}: refusal (exit 2) expected, got exit {code}: {err.Trim()}";
        if (lines.Length != 1 || !lines[0].StartsWith("error: ")) return $"{name}: one 'error:' line expected, got: {err.Trim()}";
        if (!names.Any(lines[0].Contains)) return $"{name}: the message does not name the option: {lines[0]}";
        return null;
    }
}

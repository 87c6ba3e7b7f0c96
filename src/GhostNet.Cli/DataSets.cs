using GhostNet.Backends;
using System.Diagnostics;
using GhostNet.Data;
using GhostNet.Data.Transforms;

namespace GhostNet.Cli;

/// <summary>A named data set resolved to its splits, transforms and defaults.</summary>
internal sealed record DataSetup(string Name, IImageDataset Train, IImageDataset Val, string NormalizationName, double EvalCropPct,
    Func<int, IImageTransform> TrainTransform, Func<int, IImageTransform> EvalTransform, int DefaultInputSize);

/// <summary>
/// --data: mnist | fashion-mnist (IDX under data/, fetched with tools/fetch-data.sh when missing),
/// cifar10 (binary batches under data/cifar10), synthetic (a generated ImageFolder of JPEGs), or a
/// folder with train/ and val/ ImageFolders (ImageNet's layout).
/// </summary>
internal static class DataSets
{
    public static Normalization NormalizationByName(string name) => name switch
    {
        "mnist" => Normalization.Mnist,
        "fashion-mnist" => Normalization.FashionMnist,
        "cifar10" => Normalization.Cifar10,
        _ => Normalization.ImageNet,
    };

    /// <summary>Whether --data names a built-in set rather than a folder.</summary>
    public static bool IsNamed(string data) => data is "mnist" or "fashion-mnist" or "cifar10" or "synthetic";

    public static DataSetup Resolve(string data, string outDir, SafeImageDecoder decoder)
    {
        switch (data)
        {
            case "mnist":
            case "fashion-mnist":
            {
                string folder = Fetched(data);
                var classes = data == "mnist" ? IdxDataset.MnistClasses : IdxDataset.FashionClasses;
                var norm = NormalizationByName(data);
                // Small grey images: a mild random resized crop, no flips (a flipped digit is another symbol).
                return new DataSetup(data, IdxDataset.FromFolder(folder, "train", classes), IdxDataset.FromFolder(folder, "t10k", classes), data, 1.0,
                    size => new TrainTransform(size, norm, 0.8, 1.0, 0.9, 1.0 / 0.9, flipProbability: 0), size => new EvalTransform(size, norm, 1.0), 32);
            }
            case "cifar10":
            {
                string folder = Path.Combine(DataRoot(), "cifar10");
                if (!File.Exists(Path.Combine(folder, "test_batch.bin")))
                    throw new ArgumentException($"--data cifar10 needs the binary batches (data_batch_1..5.bin, test_batch.bin) in {folder}; no copy can be fetched here");
                var norm = Normalization.Cifar10;
                return new DataSetup(data, new Cifar10Dataset(folder, true), new Cifar10Dataset(folder, false), data, 1.0,
                    size => new TrainTransform(size, norm, 0.6, 1.0), size => new EvalTransform(size, norm, 1.0), 32);
            }
            case "synthetic":
            {
                string root = Path.Combine(outDir, "synthetic-data");
                if (!Directory.Exists(root)) WriteSynthetic(root);
                return Folder(root, "synthetic", decoder, 64);
            }
            default:
                if (!Directory.Exists(data)) throw new ArgumentException($"--data {data}: not mnist, fashion-mnist, cifar10, synthetic or an existing folder");
                return Folder(data, Path.GetFileName(Path.GetFullPath(data).TrimEnd('/')), decoder, 224);
        }
    }

    /// <summary>
    /// The generated data set, written to a temporary folder and renamed when complete: a run
    /// killed while writing it leaves no half data set to train on later.
    /// </summary>
    private static void WriteSynthetic(string root)
    {
        string parent = Path.GetDirectoryName(Path.GetFullPath(root))!, name = Path.GetFileName(root);
        Directory.CreateDirectory(parent);
        foreach (var stale in Directory.EnumerateDirectories(parent, name + ".*.tmp"))
            if (int.TryParse(Path.GetFileName(stale)[(name.Length + 1)..^4], out int pid) && !IO.AtomicFile.IsAlive(pid)) Directory.Delete(stale, recursive: true);
        string temp = $"{root}.{Environment.ProcessId}.tmp";
        Console.WriteLine($"writing a synthetic ImageFolder of JPEGs to {root}");
        SyntheticImageFolder.Write(Path.Combine(temp, "train"), classes: 6, perClass: 160, width: 80, height: 64, seed: 1);
        SyntheticImageFolder.Write(Path.Combine(temp, "val"), classes: 6, perClass: 40, width: 80, height: 64, seed: 2);
        try
        {
            Directory.Move(temp, root);
        }
        catch (IOException) when (Directory.Exists(root))
        {
            Directory.Delete(temp, recursive: true); // another run wrote the same (seeded) set first
        }
    }

    private static DataSetup Folder(string root, string name, SafeImageDecoder decoder, int defaultSize)
    {
        string train = Path.Combine(root, "train"), val = Path.Combine(root, "val");
        if (!Directory.Exists(train) || !Directory.Exists(val)) throw new ArgumentException($"{root} needs train/ and val/ ImageFolders (root/train/<class>/<image>)");
        var trainSet = new ImageFolderDataset(train, decoder);
        var valSet = new ImageFolderDataset(val, decoder);
        foreach (var w in trainSet.Warnings.Concat(valSet.Warnings)) Console.Error.WriteLine($"warning: {w}");
        if (!trainSet.Classes.SequenceEqual(valSet.Classes)) throw new ArgumentException($"{train} and {val} have different class folders");
        // A validation folder linked to training images would score the model on what it learnt.
        var shared = valSet.RealFiles.Where(trainSet.RealFiles.Contains).ToList();
        if (shared.Count > 0)
            throw new InvalidDataException($"{val}: {shared.Count} validation image(s) are also training images through links (e.g. {shared[0]}); validation would score training images");
        var norm = Normalization.ImageNet;
        return new DataSetup(name, trainSet, valSet, "imagenet", 0.875, size => new TrainTransform(size, norm), size => new EvalTransform(size, norm), defaultSize);
    }

    /// <summary>Throws unless the data's classes are the checkpoint's, in order, naming the first that differs.</summary>
    public static void RequireClasses(IReadOnlyList<string> checkpoint, IReadOnlyList<string> data, string checkpointName, string dataName)
    {
        if (checkpoint.SequenceEqual(data)) return;
        int at = Enumerable.Range(0, Math.Min(checkpoint.Count, data.Count)).FirstOrDefault(i => checkpoint[i] != data[i], Math.Min(checkpoint.Count, data.Count));
        string first = at < Math.Min(checkpoint.Count, data.Count) ? $"class {at} is '{checkpoint[at]}' in the checkpoint, '{data[at]}' in the data"
            : $"the checkpoint has {checkpoint.Count} classes, the data {data.Count}";
        throw new ArgumentException($"{checkpointName} was trained on other classes than {dataName} has: {first}");
    }

    /// <summary>The repository's data/ folder (or ./data outside a checkout).</summary>
    public static string DataRoot() => Path.Combine(RepositoryRoot() ?? Directory.GetCurrentDirectory(), "data");

    private static string? RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "GhostNet.Cuda.sln"))) return dir.FullName;
        return null;
    }

    private static string Fetched(string set)
    {
        string folder = Path.Combine(DataRoot(), set);
        if (File.Exists(Path.Combine(folder, "t10k-labels-idx1-ubyte"))) return folder;
        string? script = RepositoryRoot() is { } root ? Path.Combine(root, "tools", "fetch-data.sh") : null;
        if (script is null || !File.Exists(script)) throw new ArgumentException($"{folder} is missing; run tools/fetch-data.sh {set} in the repository");
        Console.WriteLine($"{folder} is missing: running tools/fetch-data.sh {set}");
        using var process = Process.Start(new ProcessStartInfo("bash", [script, set]) { UseShellExecute = false })!;
        process.WaitForExit();
        if (process.ExitCode != 0) throw new ArgumentException($"tools/fetch-data.sh {set} failed (exit {process.ExitCode})");
        return folder;
    }
}

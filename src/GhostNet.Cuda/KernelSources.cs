using System.Reflection;

namespace GhostNet.Cuda;

/// <summary>
/// The kernels/*.cu files and their shared header, embedded in this assembly; or, when
/// GHOSTNET_KERNEL_DIR names a folder, that folder's *.cu and *.cuh files instead (a test run over
/// edited kernels without a rebuild: tools/cuda-emulator/mutate.sh). The kernel cache keys on the
/// source text, so edited kernels are compiled afresh.
/// </summary>
public static class KernelSources
{
    private const string Prefix = "kernels/";
    private static readonly Lazy<Dictionary<string, string>> All = new(() => Load(Directory));

    /// <summary>The folder GHOSTNET_KERNEL_DIR names, or null for the embedded sources.</summary>
    public static string? Directory => Environment.GetEnvironmentVariable("GHOSTNET_KERNEL_DIR") is { Length: > 0 } dir ? dir : null;

    /// <summary>The compilable files (one op family each), e.g. "depthwise_conv.cu".</summary>
    public static IReadOnlyList<string> Files => All.Value.Keys.Where(k => k.EndsWith(".cu")).Order().ToList();

    /// <summary>Headers by include name, handed to NVRTC (it has no file system access of ours).</summary>
    public static IReadOnlyDictionary<string, string> Headers => All.Value.Where(kv => kv.Key.EndsWith(".cuh")).ToDictionary(kv => kv.Key, kv => kv.Value);

    /// <summary>
    /// The files compiled a second time with bf16 activations (<see cref="Defines"/>): those whose
    /// kernels take their activations as common.cuh's <c>act</c>. A kernel of another file is
    /// missing from a bf16 backend, and its launch says so, rather than reading halves as floats.
    /// </summary>
    public static readonly IReadOnlySet<string> Bf16Files = new HashSet<string>
        { "batch_norm.cu", "cross_entropy.cu", "dense_conv.cu", "depthwise_conv.cu", "dropout.cu", "elementwise.cu", "gemm.cu", "sgd.cu" };

    /// <summary>The preprocessor definitions of a file compiled for activations of <paramref name="type"/> (common.cuh's act).</summary>
    public static IReadOnlyList<string> Defines(GhostNet.Backends.ElementType type) =>
        type == GhostNet.Backends.ElementType.BFloat16 ? ["-DGHOSTNET_BF16=1"] : [];

    /// <summary>The files a backend with activations of <paramref name="type"/> loads.</summary>
    public static IReadOnlyList<string> FilesFor(GhostNet.Backends.ElementType type) =>
        type == GhostNet.Backends.ElementType.Float32 ? Files : Files.Where(Bf16Files.Contains).ToList();

    public static string Source(string file) =>
        All.Value.TryGetValue(file, out var s) ? s
        : throw new FileNotFoundException(Directory is { } dir ? $"no kernel source '{file}' in GHOSTNET_KERNEL_DIR={dir}" : $"no embedded kernel source '{file}'");

    /// <summary>The sources by file name: of folder <paramref name="dir"/>, or the embedded ones when null.</summary>
    internal static Dictionary<string, string> Load(string? dir)
    {
        var result = new Dictionary<string, string>();
        if (dir is not null)
        {
            if (!System.IO.Directory.Exists(dir)) throw new DirectoryNotFoundException($"GHOSTNET_KERNEL_DIR={dir} is not a folder");
            foreach (var path in System.IO.Directory.EnumerateFiles(dir).Where(p => p.EndsWith(".cu") || p.EndsWith(".cuh")))
                result[Path.GetFileName(path)] = File.ReadAllText(path);
            if (!result.Keys.Any(k => k.EndsWith(".cu"))) throw new FileNotFoundException($"GHOSTNET_KERNEL_DIR={dir} holds no .cu file");
            return result;
        }
        var assembly = typeof(KernelSources).Assembly;
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var reader = new StreamReader(stream);
            result[name[Prefix.Length..]] = reader.ReadToEnd();
        }
        return result;
    }
}

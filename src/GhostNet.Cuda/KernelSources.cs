using System.Reflection;

namespace GhostNet.Cuda;

/// <summary>The kernels/*.cu files and their shared header, embedded in this assembly.</summary>
public static class KernelSources
{
    private const string Prefix = "kernels/";
    private static readonly Lazy<Dictionary<string, string>> All = new(Load);

    /// <summary>The compilable files (one op family each), e.g. "depthwise_conv.cu".</summary>
    public static IReadOnlyList<string> Files => All.Value.Keys.Where(k => k.EndsWith(".cu")).Order().ToList();

    /// <summary>Headers by include name, handed to NVRTC (it has no file system access of ours).</summary>
    public static IReadOnlyDictionary<string, string> Headers => All.Value.Where(kv => kv.Key.EndsWith(".cuh")).ToDictionary(kv => kv.Key, kv => kv.Value);

    public static string Source(string file) =>
        All.Value.TryGetValue(file, out var s) ? s : throw new FileNotFoundException($"no embedded kernel source '{file}'");

    private static Dictionary<string, string> Load()
    {
        var assembly = typeof(KernelSources).Assembly;
        var result = new Dictionary<string, string>();
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var reader = new StreamReader(stream);
            result[name[Prefix.Length..]] = reader.ReadToEnd();
        }
        return result;
    }
}

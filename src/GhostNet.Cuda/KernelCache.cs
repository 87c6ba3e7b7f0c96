using System.Security.Cryptography;
using System.Text;
using GhostNet.Backends;

namespace GhostNet.Cuda;

/// <summary>
/// Compiled kernels on disk, so that a second start compiles nothing. The key hashes the source,
/// every header, the options, the NVRTC version and the architecture. Each entry carries the
/// SHA-256 of its own bytes: a truncated or corrupted entry is detected, deleted and rebuilt,
/// never loaded. Entries are written to a temporary name and renamed.
/// </summary>
public sealed class KernelCache(string directory)
{
    public string Directory { get; } = directory;

    public static string DefaultDirectory =>
        Environment.GetEnvironmentVariable("GHOSTNET_KERNEL_CACHE") is { Length: > 0 } dir ? dir
        : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "ghostnet-cuda", "kernels");

    /// <summary>Compilations done by this cache (not found on disk, or found corrupt).</summary>
    public int Compilations { get; private set; }

    /// <summary>The image of <paramref name="file"/> for <paramref name="architecture"/>, its activations of <paramref name="activations"/> (KernelSources.Defines).</summary>
    public byte[] GetOrCompile(string file, string architecture, ElementType activations = ElementType.Float32)
    {
        var (major, minor) = RuntimeCompiler.Version;
        var source = KernelSources.Source(file);
        var headers = KernelSources.Headers;
        var defines = KernelSources.Defines(activations);
        string key = Key(source, headers, [.. RuntimeCompiler.Options(architecture), .. defines], $"{major}.{minor}", architecture);
        string path = Path.Combine(Directory, $"{Path.GetFileNameWithoutExtension(file)}-{architecture}{Suffix(activations)}-{key[..20]}.bin");
        if (TryRead(path) is { } cached) return cached;
        var code = RuntimeCompiler.Compile(file, source, headers, architecture, defines);
        Compilations++;
        Write(path, code);
        return code;
    }

    /// <summary>Removes an entry that loaded badly, so the next request rebuilds it.</summary>
    public void Evict(string file, string architecture, ElementType activations = ElementType.Float32)
    {
        if (!System.IO.Directory.Exists(Directory)) return;
        foreach (var f in System.IO.Directory.GetFiles(Directory, $"{Path.GetFileNameWithoutExtension(file)}-{architecture}{Suffix(activations)}-*.bin")) File.Delete(f);
    }

    private static string Suffix(ElementType activations) => activations == ElementType.Float32 ? "" : "-" + activations.Name();

    private static string Key(string source, IReadOnlyDictionary<string, string> headers, IReadOnlyList<string> options, string nvrtc, string arch)
    {
        var text = new StringBuilder(source);
        foreach (var (name, content) in headers.OrderBy(h => h.Key, StringComparer.Ordinal)) text.Append('\0').Append(name).Append('\0').Append(content);
        text.Append('\0').Append(string.Join(' ', options)).Append('\0').Append(nvrtc).Append('\0').Append(arch);
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    private static byte[]? TryRead(string path)
    {
        try
        {
            if (!File.Exists(path)) return null;
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length > 32 && SHA256.HashData(bytes.AsSpan(32)).AsSpan().SequenceEqual(bytes.AsSpan(0, 32)))
                return bytes[32..];
            File.Delete(path); // corrupt: rebuild
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    private void Write(string path, byte[] code)
    {
        try
        {
            GhostNet.IO.AtomicFile.Write(path, stream =>
            {
                stream.Write(SHA256.HashData(code));
                stream.Write(code);
            });
        }
        catch (IOException) { } // a cache that cannot be written only costs a compile next time
        catch (UnauthorizedAccessException) { }
    }
}

using System.Reflection;
using System.Runtime.InteropServices;

namespace GhostNet.Cuda.Interop;

/// <summary>
/// Finds the CUDA driver and NVRTC by the names they really have: libcuda.so.1 (no unversioned
/// name without the toolkit), and NVRTC under its versioned sonames (Debian: libnvrtc.so.11.2;
/// CUDA 12/13: libnvrtc.so.12 / .13) in the usual folders. Each library is looked up once; the
/// answer, found or not, is cached, because .NET would otherwise search again on every call.
/// </summary>
internal static class NativeLibraries
{
    public const string Driver = "ghostnet_cuda_driver";
    public const string Nvrtc = "ghostnet_nvrtc";

    private static readonly string[] DriverNames = ["libcuda.so.1", "libcuda.so", "nvcuda.dll"];
    private static readonly string[] NvrtcNames =
        ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so", "nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll"];

    private static readonly Lazy<IntPtr> DriverHandle = new(() => Load(DriverNames));
    private static readonly Lazy<IntPtr> NvrtcHandle = new(() => Load(NvrtcNames));

    static NativeLibraries() => NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    /// <summary>Call before the first P/Invoke so the resolver is in place.</summary>
    public static void EnsureResolver() { }

    public static bool DriverPresent => DriverHandle.Value != IntPtr.Zero;
    public static bool NvrtcPresent => NvrtcHandle.Value != IntPtr.Zero;

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) => name switch
    {
        Driver => DriverHandle.Value,
        Nvrtc => NvrtcHandle.Value,
        _ => IntPtr.Zero,
    };

    private static IntPtr Load(string[] names)
    {
        foreach (var folder in Folders())
        foreach (var name in names)
        {
            string candidate = folder is null ? name : Path.Combine(folder, name);
            if (folder is not null && !File.Exists(candidate)) continue;
            if (NativeLibrary.TryLoad(candidate, out var handle)) return handle;
        }
        return IntPtr.Zero;
    }

    private static IEnumerable<string?> Folders()
    {
        yield return null; // the loader's own search (LD_LIBRARY_PATH, ld.so.cache)
        foreach (var v in new[] { "CUDA_PATH", "CUDA_HOME" })
            if (Environment.GetEnvironmentVariable(v) is { Length: > 0 } root)
            {
                yield return Path.Combine(root, "lib64");
                yield return Path.Combine(root, "lib");
            }
        yield return "/usr/local/cuda/lib64";
        yield return "/usr/lib/x86_64-linux-gnu";
        yield return "/usr/lib64";
    }
}

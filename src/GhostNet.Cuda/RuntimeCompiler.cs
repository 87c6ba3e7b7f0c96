using GhostNet.Cuda.Interop;

namespace GhostNet.Cuda;

/// <summary>
/// NVRTC: compiles a kernel file to a cubin for one sm_XX (ptxas runs, so inline PTX and
/// register limits are checked) or to PTX for compute_XX. Kernels include no toolkit header; the
/// project's own headers are passed in memory. Always -std=c++17: NVRTC 11.8 defaults to older.
/// </summary>
public static unsafe class RuntimeCompiler
{
    public static bool IsAvailable
    {
        get
        {
            NativeLibraries.EnsureResolver();
            return NativeLibraries.NvrtcPresent;
        }
    }

    public static (int Major, int Minor) Version
    {
        get
        {
            Require();
            Check(Nvrtc.nvrtcVersion(out int major, out int minor), "nvrtcVersion");
            return (major, minor);
        }
    }

    /// <summary>Compute capabilities this NVRTC can target, e.g. 35..90 for 11.8.</summary>
    public static int[] SupportedArchitectures
    {
        get
        {
            Require();
            Check(Nvrtc.nvrtcGetNumSupportedArchs(out int count), "nvrtcGetNumSupportedArchs");
            var archs = new int[count];
            fixed (int* p = archs) Check(Nvrtc.nvrtcGetSupportedArchs(p), "nvrtcGetSupportedArchs");
            return archs;
        }
    }

    /// <summary>
    /// -lineinfo (source lines for compute-sanitizer and Nsight) everywhere except sm_90 with an
    /// NVRTC older than 12: 11.8's ptxas crashes (SIGSEGV, stack overflow) on gemm.cu's tiles for
    /// sm_90 with line info, and compiles them without it.
    /// </summary>
    public static IReadOnlyList<string> Options(string architecture) =>
        architecture.EndsWith("_90") && Version.Major < 12
            ? ["-std=c++17", $"--gpu-architecture={architecture}"]
            : ["-std=c++17", $"--gpu-architecture={architecture}", "-lineinfo"];

    /// <summary>Compiles <paramref name="file"/> to a cubin (architecture "sm_80") or PTX ("compute_80").</summary>
    public static byte[] Compile(string file, string source, IReadOnlyDictionary<string, string> headers, string architecture) =>
        Compile(file, source, headers, architecture, verbose: false).Code;

    /// <summary>
    /// As <see cref="Compile(string, string, IReadOnlyDictionary{string, string}, string)"/>, with more
    /// options, e.g. -DEMU_RACECHECK=1 (the CUDA emulator's race detector for this program; an unused macro elsewhere).
    /// </summary>
    public static byte[] Compile(string file, string source, IReadOnlyDictionary<string, string> headers, string architecture, IReadOnlyList<string> extraOptions) =>
        Compile(file, source, headers, architecture, verbose: false, extraOptions).Code;

    /// <summary>Compiles to a cubin and returns what ptxas reports of each kernel: registers, stack frame, spills.</summary>
    public static (byte[] Cubin, IReadOnlyList<KernelResources> Kernels) CompileWithResources(
        string file, string source, IReadOnlyDictionary<string, string> headers, string architecture, IReadOnlyList<string>? extraOptions = null)
    {
        if (!architecture.StartsWith("sm_")) throw new ArgumentException($"resources are reported for cubins (sm_XX), not {architecture}");
        var (code, log) = Compile(file, source, headers, architecture, verbose: true, extraOptions);
        return (code, KernelResources.Parse(log));
    }

    private static (byte[] Code, string Log) Compile(string file, string source, IReadOnlyDictionary<string, string> headers, string architecture, bool verbose,
                                                     IReadOnlyList<string>? extraOptions = null)
    {
        Require();
        var names = headers.Keys.ToArray();
        var contents = names.Select(n => headers[n]).ToArray();
        Check(Nvrtc.nvrtcCreateProgram(out var program, source, file, names.Length, contents, names), "nvrtcCreateProgram", file);
        try
        {
            string[] options = [.. Options(architecture), .. verbose ? ["-Xptxas=-v"] : Array.Empty<string>(), .. extraOptions ?? []];
            int result = Nvrtc.nvrtcCompileProgram(program, options.Length, options);
            if (result != Nvrtc.Success)
                throw new CudaException($"NVRTC could not compile {file} for {architecture} ({Nvrtc.ErrorString(result)}):\n{Log(program)}", result);
            bool cubin = architecture.StartsWith("sm_");
            nuint size;
            Check(cubin ? Nvrtc.nvrtcGetCUBINSize(program, out size) : Nvrtc.nvrtcGetPTXSize(program, out size), "nvrtcGetCode size", file);
            var code = new byte[size];
            fixed (byte* p = code) Check(cubin ? Nvrtc.nvrtcGetCUBIN(program, p) : Nvrtc.nvrtcGetPTX(program, p), "nvrtcGetCode", file);
            return (code, verbose ? Log(program) : "");
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(ref program);
        }
    }

    private static string Log(IntPtr program)
    {
        if (Nvrtc.nvrtcGetProgramLogSize(program, out nuint size) != Nvrtc.Success || size == 0) return "(no log)";
        var log = new byte[size];
        fixed (byte* p = log) Nvrtc.nvrtcGetProgramLog(program, p);
        return Utf8.FromBuffer(log);
    }

    private static void Require()
    {
        if (!IsAvailable)
            throw new CudaException("NVRTC was not found (tried libnvrtc.so.13, .12, .11.2 in the loader path, $CUDA_PATH and /usr/local/cuda); on Debian install libnvrtc11.2 from non-free (tools/install-nvrtc.sh)");
    }

    private static void Check(int result, string call, string? file = null)
    {
        if (result != Nvrtc.Success) throw new CudaException($"{call}{(file is null ? "" : " for " + file)} failed ({Nvrtc.ErrorString(result)})", result);
    }
}

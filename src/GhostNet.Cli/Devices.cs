using System.CommandLine;
using GhostNet.Backends;
using GhostNet.Cpu;
using GhostNet.Cuda;

namespace GhostNet.Cli;

/// <summary>--device cpu | cuda | cuda:N | auto, and the `ghostcuda devices` report.</summary>
internal static class Devices
{
    public static Option<string> Option() => new("--device")
    {
        Description = "cpu, cuda, cuda:N, or auto (the first GPU if CUDA works, else the CPU)",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<string> PrecisionOption() => new("--precision")
    {
        Description = "GEMM arithmetic on a GPU: fp32 (SIMT, exact), tf32 (tensor cores, 10-bit mantissa, as PyTorch's cuDNN convs) " +
                      "or tf32x3 (three tf32 products: about fp32's accuracy on tensor cores); the CPU computes fp32",
        DefaultValueFactory = _ => "fp32",
    };

    /// <summary>--no-cuda-graphs: every step and forward launched call by call (to compare, or to rule graphs out).</summary>
    public static Option<bool> NoGraphsOption() => new("--no-cuda-graphs")
    {
        Description = "Launch every training step and forward call by call instead of replaying it as one CUDA graph (the same results, more host time)",
    };

    public static GemmPrecision Precision(string value) => value.Trim().ToLowerInvariant() switch
    {
        "fp32" => GemmPrecision.Fp32,
        "tf32" => GemmPrecision.Tf32,
        "tf32x3" => GemmPrecision.Tf32x3,
        _ => throw new ArgumentException($"--precision {value}: expected fp32, tf32 or tf32x3"),
    };

    /// <summary>The backend a --device value names, its GEMMs in <paramref name="precision"/> on a GPU.</summary>
    public static IBackend Create(string device, int cpuThreads, GemmPrecision precision)
    {
        var backend = Create(device, cpuThreads);
        if (backend is CudaBackend cuda) cuda.Precision = precision;
        return backend;
    }

    /// <summary>The backend a --device value names; "auto" falls back to the CPU with the reason on stderr.</summary>
    public static IBackend Create(string device, int cpuThreads)
    {
        device = device.Trim().ToLowerInvariant();
        if (device == "cpu") return new CpuBackend(cpuThreads);
        var status = CudaProbe.Status;
        if (device == "auto")
        {
            if (status.Available) return new CudaBackend(0);
            Console.Error.WriteLine($"no GPU used: {status.Reason}; training on the CPU");
            return new CpuBackend(cpuThreads);
        }
        if (device == "cuda" || device.StartsWith("cuda:"))
        {
            int ordinal = device == "cuda" ? 0 : int.TryParse(device[5..], out int n) ? n : throw new ArgumentException($"--device {device}: expected cuda:N");
            if (!status.Available) throw new ArgumentException($"--device {device}: CUDA is not available ({status.Reason})");
            return new CudaBackend(ordinal);
        }
        throw new ArgumentException($"--device {device}: expected cpu, cuda, cuda:N or auto");
    }

    public static Command DevicesCommand()
    {
        var command = new Command("devices", "Show the GPUs and CUDA libraries found, or why the CPU backend will be used.");
        command.SetAction(_ =>
        {
            var s = CudaProbe.Status;
            Console.WriteLine($"CUDA: {(s.Available ? "available" : "not available")}: {s.Reason}");
            Console.WriteLine($"NVRTC: {s.Nvrtc}");
            foreach (var d in s.Devices) Console.WriteLine("  " + d);
            Console.WriteLine($"CPU: {Environment.ProcessorCount} threads{(System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? ", AVX2" : "")}" +
                              $"{(System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? ", AVX-512" : "")}");
            return 0;
        });
        return command;
    }
}

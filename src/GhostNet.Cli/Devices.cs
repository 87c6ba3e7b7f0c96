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
        Description = "Arithmetic on a GPU: fp32 (SIMT GEMMs, exact), tf32 (tensor-core GEMMs, 10-bit mantissa, as PyTorch's cuDNN convs), " +
                      "tf32x3 (three tf32 products: about fp32's accuracy on tensor cores) or bf16 (activations and their gradients " +
                      "held in bf16, half the memory traffic; weights, statistics and every sum in fp32, as PyTorch's bf16 autocast, " +
                      "no loss scaling needed); the CPU computes fp32",
        DefaultValueFactory = _ => "fp32",
    };

    /// <summary>--no-cuda-graphs: every step and forward launched call by call (to compare, or to rule graphs out).</summary>
    public static Option<bool> NoGraphsOption() => new("--no-cuda-graphs")
    {
        Description = "Launch every training step and forward call by call instead of replaying it as one CUDA graph (the same results, more host time)",
    };

    public static RunPrecision Precision(string value) => value.Trim().ToLowerInvariant() switch
    {
        "fp32" => RunPrecision.Fp32,
        "tf32" => new(GemmPrecision.Tf32, ElementType.Float32),
        "tf32x3" => new(GemmPrecision.Tf32x3, ElementType.Float32),
        "bf16" => new(GemmPrecision.Fp32, ElementType.BFloat16),
        _ => throw new ArgumentException($"--precision {value}: expected fp32, tf32, tf32x3 or bf16"),
    };

    /// <summary>The backend a --device value names, set to <paramref name="precision"/> on a GPU.</summary>
    public static IBackend Create(string device, int cpuThreads, RunPrecision precision)
    {
        var backend = Create(device, cpuThreads);
        if (backend is CudaBackend cuda) precision.ApplyTo(cuda);
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

/// <summary>
/// What --precision names: the GEMMs' arithmetic and how activations are held (bf16: half the
/// bytes, every kernel computing in fp32; the GEMMs then run on the SIMT cores, fp32 products of
/// bf16 operands being exact).
/// </summary>
internal readonly record struct RunPrecision(GemmPrecision Gemm, ElementType Activations)
{
    public static readonly RunPrecision Fp32 = new(GemmPrecision.Fp32, ElementType.Float32);

    public void ApplyTo(CudaBackend cuda)
    {
        cuda.Precision = Gemm;
        cuda.ActivationType = Activations;
    }

    /// <summary>As --precision spells it: fp32, tf32, tf32x3 or bf16.</summary>
    public override string ToString() => Activations == ElementType.BFloat16 ? "bf16" : Gemm.ToString().ToLowerInvariant();

    /// <summary>The startup line's words for a GPU run: "GEMMs in Tf32", or "bf16 activations, GEMMs in Fp32".</summary>
    public static string Describe(CudaBackend cuda) =>
        cuda.ActivationType == ElementType.BFloat16 ? $"bf16 activations, GEMMs in {GemmPrecision.Fp32}" : $"GEMMs in {cuda.Precision}";
}

using GhostNet.Cuda.Interop;

namespace GhostNet.Cuda;

public sealed record CudaDeviceInfo(int Ordinal, string Name, int Major, int Minor, int Multiprocessors, long TotalMemory)
{
    public string Architecture => $"sm_{Major}{Minor}";
    /// <summary>The CUDA emulator of tools/cuda-emulator: its times are the host CPU's, not a GPU's.</summary>
    public bool IsEmulator => Name.Contains("CUDA emulator", StringComparison.Ordinal);
    public override string ToString() => $"cuda:{Ordinal} {Name} ({Architecture}, {Multiprocessors} SMs, {TotalMemory / (1 << 20):N0} MiB)";
}

/// <summary>What detection found: usable or not, and why not in one line.</summary>
public sealed record CudaStatus(bool Available, string Reason, int DriverVersion, IReadOnlyList<CudaDeviceInfo> Devices, string Nvrtc);

/// <summary>
/// Finds the driver, the devices and NVRTC once per process and never throws: no driver, a stub
/// driver (cuInit 34), no device (100), a driver too old (35) or no NVRTC all mean "use the CPU
/// backend", with the reason.
/// </summary>
public static unsafe class CudaProbe
{
    private static readonly Lazy<CudaStatus> Cached = new(Detect);

    public static CudaStatus Status => Cached.Value;

    private static CudaStatus Detect()
    {
        try
        {
            NativeLibraries.EnsureResolver();
            string nvrtc = RuntimeCompiler.IsAvailable ? $"NVRTC {RuntimeCompiler.Version.Major}.{RuntimeCompiler.Version.Minor}" : "no NVRTC";
            if (!NativeLibraries.DriverPresent) return No("no CUDA driver (libcuda.so.1 not found)", nvrtc);
            int init = Driver.cuInit(0);
            if (init != Driver.Success)
                return No(init switch
                {
                    34 => "the CUDA driver is a stub (CUDA_ERROR_STUB_LIBRARY): no real driver is installed",
                    100 => "no CUDA device (CUDA_ERROR_NO_DEVICE)",
                    35 => "the CUDA driver is older than this runtime needs (CUDA_ERROR_INSUFFICIENT_DRIVER)",
                    _ => $"cuInit failed ({CuResultNames.Of(init)})",
                }, nvrtc);
            Driver.cuDriverGetVersion(out int version);
            CudaException.Check(Driver.cuDeviceGetCount(out int count), "cuDeviceGetCount");
            var devices = new List<CudaDeviceInfo>();
            for (int i = 0; i < count; i++) devices.Add(Describe(i));
            if (devices.Count == 0) return No("no CUDA device", nvrtc);
            if (!RuntimeCompiler.IsAvailable) return new CudaStatus(false, "NVRTC not found: kernels cannot be compiled", version, devices, nvrtc);
            return new CudaStatus(true, $"{devices.Count} device(s), driver {version / 1000}.{version % 1000 / 10}, {nvrtc}", version, devices, nvrtc);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or CudaException or BadImageFormatException)
        {
            return No($"CUDA detection failed: {e.Message}", "unknown");
        }
    }

    private static CudaDeviceInfo Describe(int ordinal)
    {
        CudaException.Check(Driver.cuDeviceGet(out int device, ordinal), "cuDeviceGet");
        byte* name = stackalloc byte[256];
        CudaException.Check(Driver.cuDeviceGetName(name, 256, device), "cuDeviceGetName");
        Driver.cuDeviceGetAttribute(out int major, Driver.AttributeComputeCapabilityMajor, device);
        Driver.cuDeviceGetAttribute(out int minor, Driver.AttributeComputeCapabilityMinor, device);
        Driver.cuDeviceGetAttribute(out int sms, Driver.AttributeMultiprocessorCount, device);
        Driver.cuDeviceTotalMem(out nuint bytes, device);
        return new CudaDeviceInfo(ordinal, Utf8.FromPointer(name), major, minor, sms, (long)bytes);
    }

    private static CudaStatus No(string reason, string nvrtc) => new(false, reason, 0, [], nvrtc);
}

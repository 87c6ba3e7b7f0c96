namespace GhostNet.Cuda;

/// <summary>
/// A GPU's peak figures for the roofline model of a training step. DRAM bandwidth is ~90% of the
/// spec sheet's (what a streaming kernel sustains; the issue's H200 figure, 4.3 of 4.8 TB/s);
/// FLOP rates are the spec sheet's dense peaks (no sparsity), unreachable in practice, so the
/// model is a lower bound. The launch overhead (a kernel launched from the host one after another,
/// without CUDA graphs) is an assumption and is reported apart from the roofline time.
/// </summary>
public sealed record GpuFigures(string Key, string Name, double DramBytesPerSecond, double Fp32FlopsPerSecond, double Tf32FlopsPerSecond,
    double Bf16FlopsPerSecond, int Multiprocessors, int Major, int Minor, long MemoryBytes, double LaunchOverheadSeconds)
{
    private const double T = 1e12;
    private const double LaunchOverhead = 2.5e-6;

    public static GpuFigures H200 { get; } = new("H200", "NVIDIA H200 SXM", 4.3 * T, 67 * T, 495 * T, 990 * T, 132, 9, 0, 141L << 30, LaunchOverhead);

    /// <summary>The devices the model knows; <see cref="H200"/> is the default.</summary>
    public static IReadOnlyList<GpuFigures> Table { get; } =
    [
        H200,
        new("H100", "NVIDIA H100 SXM", 3.0 * T, 67 * T, 495 * T, 990 * T, 132, 9, 0, 80L << 30, LaunchOverhead),
        new("H100-PCIe", "NVIDIA H100 PCIe", 1.8 * T, 51 * T, 378 * T, 756 * T, 114, 9, 0, 80L << 30, LaunchOverhead),
        new("A100", "NVIDIA A100 80GB", 1.8 * T, 19.5 * T, 156 * T, 312 * T, 108, 8, 0, 80L << 30, LaunchOverhead),
        new("A100-40GB", "NVIDIA A100 40GB", 1.4 * T, 19.5 * T, 156 * T, 312 * T, 108, 8, 0, 40L << 30, LaunchOverhead),
    ];

    public double Peak(Precision precision) => precision switch
    {
        Precision.Tf32 => Tf32FlopsPerSecond,
        Precision.Bf16 => Bf16FlopsPerSecond,
        _ => Fp32FlopsPerSecond,
    };

    /// <summary>The figures for a device as the driver names it ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"), or null for a device the table lacks (the emulator, say).</summary>
    public static GpuFigures? ForDevice(string deviceName)
    {
        string n = deviceName.ToUpperInvariant();
        string? key = n.Contains("H200") ? "H200"
            : n.Contains("H100") ? n.Contains("PCIE") ? "H100-PCIe" : "H100"
            : n.Contains("A100") ? n.Contains("80GB") ? "A100" : "A100-40GB"
            : null;
        return key is null ? null : Named(key);
    }

    /// <summary>The figures of a table key, case-insensitive; an unknown key is an error listing the known ones.</summary>
    public static GpuFigures Named(string key) =>
        Table.FirstOrDefault(f => string.Equals(f.Key, key.Trim(), StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"no figures for GPU '{key}'; known: {string.Join(", ", Table.Select(f => f.Key))}");

    /// <summary>A device description for <see cref="CudaBackend.ForModel"/>: launch shapes follow the SM count.</summary>
    public CudaDeviceInfo AsDevice() => new(0, $"{Name} (modelled, no device)", Major, Minor, Multiprocessors, MemoryBytes);

    public override string ToString() =>
        $"{Name}: {DramBytesPerSecond / T:F1} TB/s DRAM, {Fp32FlopsPerSecond / T:F0} TFLOP/s fp32, {Tf32FlopsPerSecond / T:F0} tf32, " +
        $"{Bf16FlopsPerSecond / T:F0} bf16 (dense), {Multiprocessors} SMs, {LaunchOverheadSeconds * 1e6:F1} us per launch";
}

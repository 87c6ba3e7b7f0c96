namespace GhostNet.Cuda;

/// <summary>The arithmetic a launch's FLOPs are done in: it picks the peak its roofline time uses.</summary>
public enum Precision
{
    /// <summary>fp32 FMAs on the SIMT cores (every v1 kernel).</summary>
    Fp32,
    /// <summary>TF32 tensor-core MMAs with fp32 accumulation.</summary>
    Tf32,
    /// <summary>bf16 tensor-core MMAs with fp32 accumulation.</summary>
    Bf16,
}

/// <summary>
/// The modelled cost of one kernel launch, computed from its shapes at the launch call: the bytes
/// it moves through DRAM (each pass a kernel makes over a tensor counts once; re-reads inside a
/// pass, such as GEMM tiles or stencil neighbours, are assumed to hit L1/L2) and its FLOPs (a
/// multiply-add is 2). The rules are in docs/kernels.md, "Modelled cost per training step".
/// </summary>
public readonly record struct LaunchCost(long Bytes, long Flops, Precision Precision = Precision.Fp32)
{
    /// <summary>An fp32 kernel reading <paramref name="read"/> and writing <paramref name="written"/> 4-byte elements, plus <paramref name="otherBytes"/> (double partial sums).</summary>
    public static LaunchCost Fp32(long read, long written, long flops, long otherBytes = 0) =>
        new(4 * (read + written) + otherBytes, flops, Precision.Fp32);

    public static LaunchCost operator +(LaunchCost a, LaunchCost b) =>
        a.Precision == b.Precision ? new(a.Bytes + b.Bytes, a.Flops + b.Flops, a.Precision)
            : throw new ArgumentException($"costs in {a.Precision} and {b.Precision} do not add");
}

/// <summary>One kernel launch as the backend made it: the kernel, the op family of the call that made it, the grid, the block and the modelled cost.</summary>
public readonly record struct LaunchRecord(string Kernel, string Family, uint GridX, uint GridY, uint GridZ, uint Block, LaunchCost Cost)
{
    public override string ToString() =>
        $"{Kernel} [{Family}] grid {GridX}x{GridY}x{GridZ} block {Block}: {Cost.Bytes} B, {Cost.Flops} FLOP {Cost.Precision}";
}

/// <summary>
/// What <see cref="CudaBackend.Recorder"/> collects: every launch in order, and the backend calls
/// per op family (also those that launch nothing, such as uploads), so a recorded step can be
/// checked against <see cref="GhostNet.Backends.ProfilingBackend"/>'s call counts.
/// </summary>
public sealed class LaunchRecorder
{
    private readonly List<LaunchRecord> _launches = [];
    private readonly Dictionary<string, long> _calls = [];

    public IReadOnlyList<LaunchRecord> Launches => _launches;
    public IReadOnlyDictionary<string, long> Calls => _calls;

    public void Reset()
    {
        _launches.Clear();
        _calls.Clear();
    }

    internal void Call(string family) => _calls[family] = _calls.GetValueOrDefault(family) + 1;

    internal void Add(in LaunchRecord launch) => _launches.Add(launch);
}

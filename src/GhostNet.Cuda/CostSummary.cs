using GhostNet.Backends;

namespace GhostNet.Cuda;

/// <summary>
/// Launches, DRAM bytes, FLOPs and roofline time of a group of launches (an op family, a kernel,
/// or all of them). A launch's roofline time is max(bytes / bandwidth, FLOPs / peak of its
/// precision); <see cref="DramSeconds"/> and <see cref="MathSeconds"/> are the two terms summed
/// apart, so a row shows what bounds it.
/// </summary>
public sealed record CostRow(string Name, long Launches, long Bytes, long Flops, double DramSeconds, double MathSeconds, double RooflineSeconds);

/// <summary>Recorded launches (one training step, say) costed on one GPU's figures: per op family, per kernel, and in total.</summary>
public sealed class CostSummary
{
    public CostSummary(IEnumerable<LaunchRecord> launches, GpuFigures figures)
    {
        Figures = figures;
        var list = launches.ToList();
        Families = Rows(list, l => l.Family).OrderBy(r => Order(r.Name)).ThenBy(r => r.Name, StringComparer.Ordinal).ToList();
        Kernels = Rows(list, l => l.Kernel).OrderByDescending(r => r.RooflineSeconds).ThenBy(r => r.Name, StringComparer.Ordinal).ToList();
        Total = Row("total", list);
    }

    public GpuFigures Figures { get; }
    public IReadOnlyList<CostRow> Families { get; }
    public IReadOnlyList<CostRow> Kernels { get; }
    public CostRow Total { get; }

    /// <summary>The per-launch overhead term of a row (<see cref="GpuFigures.LaunchOverheadSeconds"/> per launch), kept out of the roofline.</summary>
    public double OverheadSeconds(CostRow row) => row.Launches * Figures.LaunchOverheadSeconds;

    public static double Roofline(in LaunchCost cost, GpuFigures figures) =>
        Math.Max(cost.Bytes / figures.DramBytesPerSecond, cost.Flops / figures.Peak(cost.Precision));

    private IEnumerable<CostRow> Rows(List<LaunchRecord> launches, Func<LaunchRecord, string> key) =>
        launches.GroupBy(key).Select(g => Row(g.Key, g));

    private CostRow Row(string name, IEnumerable<LaunchRecord> launches)
    {
        long count = 0, bytes = 0, flops = 0;
        double dram = 0, math = 0, roofline = 0;
        foreach (var l in launches)
        {
            count++;
            bytes += l.Cost.Bytes;
            flops += l.Cost.Flops;
            dram += l.Cost.Bytes / Figures.DramBytesPerSecond;
            math += l.Cost.Flops / Figures.Peak(l.Cost.Precision);
            roofline += Roofline(l.Cost, Figures);
        }
        return new CostRow(name, count, bytes, flops, dram, math, roofline);
    }

    private static int Order(string family)
    {
        int i = OpFamily.All.ToList().IndexOf(family);
        return i < 0 ? int.MaxValue : i;
    }
}

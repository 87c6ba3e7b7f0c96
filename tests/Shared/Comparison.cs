namespace GhostNet.Tests.Shared;

/// <summary>The comparison every cross-implementation test uses (linked into both test projects).</summary>
internal static class Comparison
{
    /// <summary>||ours - ref|| / max(||ref||, floor): the floor stands in for a reference that is zero in exact arithmetic.</summary>
    public static double RelativeError(float[] ours, float[] reference, double floor = 0)
    {
        if (ours.Length != reference.Length) throw new ArgumentException($"{ours.Length} values against {reference.Length}");
        double diff = 0, norm = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            double d = (double)ours[i] - reference[i];
            diff += d * d;
            norm += (double)reference[i] * reference[i];
        }
        return Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), Math.Max(floor, 1e-30));
    }
}

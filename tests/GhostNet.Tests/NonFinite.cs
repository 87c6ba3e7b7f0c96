using NUnit.Framework;

namespace GhostNet.Tests;

/// <summary>
/// NaN and infinities at seeded positions, and the class-for-class comparison the NaN tests use:
/// NaN where the reference has NaN, the same infinity where it has one, and finite values within
/// a relative tolerance elsewhere (docs/reliability.md states each op's semantics).
/// </summary>
internal static class NonFinite
{
    public static readonly float[] Kinds = [float.NaN, float.PositiveInfinity, float.NegativeInfinity];

    /// <summary>
    /// Sets <paramref name="count"/> seeded positions of <paramref name="values"/> to NaN, +Inf and
    /// -Inf in turn, and the last three of every run of <paramref name="run"/> values too (the
    /// scalar tails after the CPU's 8-wide SIMD loops). Returns the positions set.
    /// </summary>
    public static Dictionary<int, float> Inject(float[] values, Random rng, int count, int run)
    {
        var set = new Dictionary<int, float>();
        for (int i = 0; i < count; i++) set[rng.Next(values.Length)] = Kinds[i % 3];
        for (int end = run; end <= values.Length; end += run)
            for (int j = 0; j < 3 && j < run; j++) set[end - 1 - j] = Kinds[j];
        foreach (var (i, v) in set) values[i] = v;
        TestContext.Out.WriteLine($"non-finite at {string.Join(" ", set.OrderBy(p => p.Key).Select(p => $"{p.Key}:{Name(p.Value)}"))}");
        return set;
    }

    public static string Name(float v) => float.IsNaN(v) ? "NaN" : float.IsPositiveInfinity(v) ? "+Inf" : float.IsNegativeInfinity(v) ? "-Inf" : "finite";

    /// <summary>Asserts <paramref name="ours"/> has the classes of <paramref name="reference"/> element by element and its finite values within <paramref name="tolerance"/>.</summary>
    public static void AssertSameClasses(string what, float[] ours, float[] reference, double tolerance = 1e-5)
    {
        Assert.That(ours, Has.Length.EqualTo(reference.Length), what);
        var mismatches = Enumerable.Range(0, ours.Length)
            .Where(i => float.IsFinite(ours[i]) != float.IsFinite(reference[i]) || (!float.IsFinite(ours[i]) && Name(ours[i]) != Name(reference[i])))
            .ToArray();
        Assert.That(mismatches, Is.Empty,
            $"{what}: {mismatches.Length} elements of another class, first at {string.Join(", ", mismatches.Take(5).Select(i => $"{i} ({Name(ours[i])} for {Name(reference[i])})"))}");
        var finite = Enumerable.Range(0, ours.Length).Where(i => float.IsFinite(reference[i])).ToArray();
        double error = GhostNet.Tests.Shared.Comparison.RelativeError(finite.Select(i => ours[i]).ToArray(), finite.Select(i => reference[i]).ToArray(), 1e-6);
        TestContext.Out.WriteLine($"{what}: {ours.Length - finite.Length} non-finite alike, finite relative error {error:E2}");
        Assert.That(error, Is.LessThanOrEqualTo(tolerance), $"{what}: finite values, relative error {error:E2}");
    }
}

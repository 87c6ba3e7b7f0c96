namespace GhostNet.Backends;

/// <summary>
/// A counter-based generator: the value for (seed, index) is the SplitMix64 finaliser of
/// seed + index * golden ratio. No state, so any backend and any thread order draw the same
/// numbers, and backward recomputes a dropout mask instead of storing it. The CUDA kernels
/// carry the same function.
/// </summary>
public static class CounterRng
{
    public static ulong Mix(ulong seed, ulong index)
    {
        ulong z = seed + (index + 1) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 24 bits, exactly representable as a float.</summary>
    public static float Uniform(ulong seed, ulong index) => (Mix(seed, index) >> 40) * (1.0f / (1 << 24));
}

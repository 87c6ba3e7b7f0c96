using GhostNet.Backends;

namespace GhostNet.Cpu;

// Inverted dropout: y = x / (1 - p) where CounterRng.Uniform(seed, i) >= p, else 0; i is the
// element's index in the contiguous tensor. Backward recomputes the same mask. A dropped element
// is multiplied by 0, not replaced by 0, so NaN and Inf stay NaN as in PyTorch.
public sealed unsafe partial class CpuBackend
{
    public void DropoutForward(in Tensor x, in Tensor y, float p, DropoutSeed seed)
    {
        ShapeChecks.Same("dropout_fwd", x, y);
        x.RequireContiguous("dropout_fwd");
        y.RequireContiguous("dropout_fwd");
        Dropout(Ptr(x), Ptr(y), x.Count, p, SeedOf(seed), false);
    }

    public void DropoutBackward(in Tensor dy, in Tensor dx, bool accumulate, float p, DropoutSeed seed)
    {
        ShapeChecks.Same("dropout_bwd", dy, dx);
        dy.RequireContiguous("dropout_bwd");
        dx.RequireContiguous("dropout_bwd");
        Dropout(Ptr(dy), Ptr(dx), dy.Count, p, SeedOf(seed), accumulate);
    }

    // The seed in memory where it has a place (two elements, low word first), as the kernel reads it.
    private static ulong SeedOf(in DropoutSeed seed)
    {
        if (seed.At.IsNone) return seed.Value;
        seed.At.RequireShape("dropout", "seed", 1, 2, 1, 1);
        return *(ulong*)PlanePtr(seed.At, 0, 0);
    }

    private static void Dropout(float* x, float* y, long count, float p, ulong seed, bool accumulate)
    {
        if (p < 0 || p >= 1) throw new ArgumentOutOfRangeException(nameof(p), $"dropout probability {p} is not in [0, 1)");
        float scale = 1f / (1f - p);
        for (long i = 0; i < count; i++)
        {
            float v = x[i] * (CounterRng.Uniform(seed, (ulong)i) >= p ? scale : 0f);
            y[i] = accumulate ? y[i] + v : v;
        }
    }
}

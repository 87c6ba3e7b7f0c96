namespace GhostNet.Tests.Ops;

/// <summary>
/// Batch-norm biases that put one element per channel where a fused ReLU's mask is hardest to
/// recompute: y = fma(x, scale, shift) a tiny value whose sign, or zero-ness, a multiply then an
/// add would get differently. There the backward's mask, recomputed from x, must still be the
/// forward's (BnAffine on the device, Affine on the CPU: scale = gamma * invstd, shift =
/// fma(-mean, scale, beta)).
/// </summary>
internal static class ReluBoundary
{
    /// <summary>
    /// For each channel c, a bias that zeroes one of the candidate elements <paramref name="x"/>[c]
    /// within rounding, chosen so that it splits fma from multiply-add there when any does (the
    /// flag), else the first candidate's.
    /// </summary>
    public static (float[] Beta, bool[] Splits) Biases(float[][] x, float[] gamma, float[] mean, float[] invStd)
    {
        var beta = new float[x.Length];
        var splits = new bool[x.Length];
        for (int c = 0; c < x.Length; c++)
        {
            float scale = gamma[c] * invStd[c];
            for (int e = x[c].Length - 1; e >= 0 && !splits[c]; e--)
            {
                float v = x[c][e], b = (float)((double)mean[c] * scale - (double)v * scale);
                beta[c] = b;
                for (int step = 0; step < 64 && !splits[c]; step++)
                {
                    float candidate = Step(b, step % 2 == 0 ? step / 2 : -(step + 1) / 2);
                    float shift = MathF.FusedMultiplyAdd(-mean[c], scale, candidate);
                    float fused = MathF.FusedMultiplyAdd(v, scale, shift), separate = v * scale + shift;
                    if ((fused > 0) != (separate > 0))
                    {
                        beta[c] = candidate;
                        splits[c] = true;
                    }
                }
            }
        }
        return (beta, splits);
    }

    private static float Step(float v, int ulps)
    {
        for (int i = 0; i < Math.Abs(ulps); i++) v = ulps > 0 ? MathF.BitIncrement(v) : MathF.BitDecrement(v);
        return v;
    }
}

using System.Runtime.Intrinsics;
using GhostNet.Backends;

namespace GhostNet.Cpu;

// The stride-1, "same"-padded depthwise convolution (every cheap operation of a Ghost module and
// most of GhostNet's depthwise layers), as register-blocked stencils over zero-padded planes.
// Each plane is first copied into a (H + 2p) x (W + 2p) scratch plane with zero borders, so the
// inner loops have no bounds checks: an output vector of 8 columns is the sum of k*k FMAs of
// shifted unaligned loads, stored once (the general path makes k*k passes over each output row).
// dx is the same stencil on the padded output gradient with the kernel flipped; dw sums, per
// tap, dot products of output-gradient rows with shifted padded input rows.
public sealed unsafe partial class CpuBackend
{
    private const int Lanes = 8;

    private static bool IsSameStride1(ConvGeometry g) => g.Stride == 1 && g.Padding == g.Kernel / 2 && g.Kernel % 2 == 1;

    /// <summary>Copies an h x w plane into the centre of a zeroed (h + 2p) x (w + 2p) plane.</summary>
    private static void PadPlane(float* src, int h, int w, int p, float* dst)
    {
        int wp = w + 2 * p;
        Simd.Clear(dst, (h + 2 * p) * wp);
        for (int y = 0; y < h; y++) Simd.Copy(src + (long)y * w, dst + (long)(y + p) * wp + p, w);
    }

    /// <summary>out[y, x] (+)= sum over taps of taps[a, b] * padded[y + a, x + b], for an h x w output.</summary>
    private static void Stencil(float* padded, int wp, float* taps, int k, float* output, int h, int w, bool accumulate)
    {
        var tv = stackalloc Vector256<float>[k * k];
        for (int t = 0; t < k * k; t++) tv[t] = Vector256.Create(taps[t]);
        for (int y = 0; y < h; y++)
        {
            float* o = output + (long)y * w;
            int x = 0;
            for (; x <= w - Lanes; x += Lanes)
            {
                var acc = accumulate ? Vector256.Load(o + x) : Vector256<float>.Zero;
                for (int a = 0; a < k; a++)
                {
                    float* row = padded + (long)(y + a) * wp + x;
                    for (int b = 0; b < k; b++) acc = Vector256.FusedMultiplyAdd(tv[a * k + b], Vector256.Load(row + b), acc);
                }
                Vector256.Store(acc, o + x);
            }
            for (; x < w; x++)
            {
                float s = accumulate ? o[x] : 0f;
                for (int a = 0; a < k; a++)
                {
                    float* row = padded + (long)(y + a) * wp + x;
                    for (int b = 0; b < k; b++) s += taps[a * k + b] * row[b];
                }
                o[x] = s;
            }
        }
    }

    private struct DepthwiseStride1ForwardJob : IParallelBody
    {
        public CpuBackend Backend;
        public Tensor X, Y;
        public float* W;
        public int K, Multiplier;

        public readonly void Execute(int index, int worker)
        {
            int n = index / Y.C, c = index % Y.C, p = K / 2, wp = X.W + 2 * p;
            float* padded = Backend.Scratch(worker, (long)(X.H + 2 * p) * wp);
            PadPlane(PlanePtr(X, n, c / Multiplier), X.H, X.W, p, padded);
            Stencil(padded, wp, W + (long)c * K * K, K, PlanePtr(Y, n, c), Y.H, Y.W, accumulate: false);
        }
    }

    /// <summary>Input channel ci: its dx plane (all m outputs' flipped stencils) and the filters of its m outputs.</summary>
    private struct DepthwiseStride1BackwardJob : IParallelBody
    {
        public CpuBackend Backend;
        public Tensor X, Dy, Dx;
        public float* W, Dw;
        public int K, Multiplier;
        public bool Accumulate;

        public readonly void Execute(int ci, int worker)
        {
            int k = K, kk = k * k, p = k / 2, h = X.H, w = X.W, wp = w + 2 * p;
            long padSize = (long)(h + 2 * p) * wp;
            float* paddedX = Backend.Scratch(worker, 2 * padSize + kk);
            float* paddedDy = paddedX + padSize;
            float* flipped = paddedDy + padSize;
            Span<double> dw = stackalloc double[Multiplier * kk];
            dw.Clear();
            for (int n = 0; n < X.N; n++)
            {
                PadPlane(PlanePtr(X, n, ci), h, w, p, paddedX);
                for (int j = 0; j < Multiplier; j++)
                {
                    int co = ci * Multiplier + j;
                    float* dy = PlanePtr(Dy, n, co);
                    float* taps = W + (long)co * kk;
                    for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++)
                    {
                        double s = 0;
                        for (int y = 0; y < h; y++) s += Simd.Dot(dy + (long)y * w, paddedX + (long)(y + a) * wp + b, w);
                        dw[j * kk + a * k + b] += s;
                    }
                    if (Dx.IsNone) continue;
                    for (int t = 0; t < kk; t++) flipped[t] = taps[kk - 1 - t];
                    PadPlane(dy, h, w, p, paddedDy);
                    Stencil(paddedDy, wp, flipped, k, PlanePtr(Dx, n, ci), h, w, accumulate: Accumulate || j > 0);
                }
            }
            for (int i = 0; i < dw.Length; i++) Dw[(long)ci * Multiplier * kk + i] = (float)dw[i];
        }
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace GhostNet.Cpu;

/// <summary>Vectorised loops over contiguous float runs, shared by the CPU kernels.</summary>
internal static unsafe class Simd
{
    private const int V = 8; // Vector256<float>.Count

    // ReLU, one definition for the op and the ReLU fused into batch norm, twins of relu and
    // relu_grad in kernels/common.cuh. NaN semantics (docs/reliability.md): relu(NaN) = NaN,
    // relu(-Inf) = 0, relu(-0) = +0; the gradient is NaN where y is NaN, so a poisoned forward
    // gives no finite gradient. Vector256.Max propagates NaN since .NET 9 (IEEE 754:2019
    // maximum); a scalar `x > 0 ? x : 0` would not.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Relu(float x) => x <= 0 ? 0 : x;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Relu(Vector256<float> x) => Vector256.Max(x, Vector256<float>.Zero);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ReluGrad(float y, float dy) => y > 0 ? dy : float.IsNaN(y) ? y : 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ReluGrad(Vector256<float> y, Vector256<float> dy) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(y, Vector256<float>.Zero), dy,
            Vector256.ConditionalSelect(Vector256.IsNaN(y), y, Vector256<float>.Zero));

    public static void Clear(float* y, int n) => new Span<float>(y, n).Clear();

    public static void Copy(float* x, float* y, int n) => new ReadOnlySpan<float>(x, n).CopyTo(new Span<float>(y, n));

    /// <summary>y = x, or y += x.</summary>
    public static void CopyOrAdd(float* x, float* y, int n, bool accumulate)
    {
        if (accumulate) Add(x, y, y, n); else Copy(x, y, n);
    }

    public static void Add(float* a, float* b, float* y, int n)
    {
        int i = 0;
        for (; i <= n - V; i += V)
            Vector256.Store(Vector256.Load(a + i) + Vector256.Load(b + i), y + i);
        for (; i < n; i++) y[i] = a[i] + b[i];
    }

    /// <summary>y += a * x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Axpy(float a, float* x, float* y, int n)
    {
        int i = 0;
        var va = Vector256.Create(a);
        for (; i <= n - V; i += V)
            Vector256.Store(Vector256.FusedMultiplyAdd(va, Vector256.Load(x + i), Vector256.Load(y + i)), y + i);
        for (; i < n; i++) y[i] += a * x[i];
    }

    /// <summary>y = a * x, or y += a * x.</summary>
    public static void ScaleInto(float a, float* x, float* y, int n, bool accumulate)
    {
        if (accumulate) { Axpy(a, x, y, n); return; }
        int i = 0;
        var va = Vector256.Create(a);
        for (; i <= n - V; i += V) Vector256.Store(va * Vector256.Load(x + i), y + i);
        for (; i < n; i++) y[i] = a * x[i];
    }

    /// <summary>y = a, or y += a, for every element.</summary>
    public static void FillOrAdd(float a, float* y, int n, bool accumulate)
    {
        if (!accumulate) { new Span<float>(y, n).Fill(a); return; }
        int i = 0;
        var va = Vector256.Create(a);
        for (; i <= n - V; i += V) Vector256.Store(Vector256.Load(y + i) + va, y + i);
        for (; i < n; i++) y[i] += a;
    }

    // Long reductions (a dW element sums over N * H * W products, 25k at the stem) lose about
    // sqrt(n) ulps in fp32 and far more under cancellation. Sum, Dot and SumSquaredDeviation
    // therefore add fp32 partial sums of Chunk elements into a double.
    private const int Chunk = 256;

    public static float Sum(float* x, int n)
    {
        if (n <= Chunk) return SumShort(x, n);
        double total = 0;
        for (int i = 0; i < n; i += Chunk) total += SumShort(x + i, Math.Min(Chunk, n - i));
        return (float)total;
    }

    public static float Dot(float* x, float* y, int n)
    {
        if (n <= Chunk) return DotShort(x, y, n);
        double total = 0;
        for (int i = 0; i < n; i += Chunk) total += DotShort(x + i, y + i, Math.Min(Chunk, n - i));
        return (float)total;
    }

    /// <summary>Sum of (x - c)^2, the centred second moment that keeps variance accurate in fp32.</summary>
    public static float SumSquaredDeviation(float* x, int n, float c)
    {
        if (n <= Chunk) return SumSquaredDeviationShort(x, n, c);
        double total = 0;
        for (int i = 0; i < n; i += Chunk) total += SumSquaredDeviationShort(x + i, Math.Min(Chunk, n - i), c);
        return (float)total;
    }

    private static float SumShort(float* x, int n)
    {
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 2 * V; i += 2 * V)
        {
            acc0 += Vector256.Load(x + i);
            acc1 += Vector256.Load(x + i + V);
        }
        float s = Vector256.Sum(acc0 + acc1);
        for (; i < n; i++) s += x[i];
        return s;
    }

    private static float DotShort(float* x, float* y, int n)
    {
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 2 * V; i += 2 * V)
        {
            acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i), Vector256.Load(y + i), acc0);
            acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + V), Vector256.Load(y + i + V), acc1);
        }
        float s = Vector256.Sum(acc0 + acc1);
        for (; i < n; i++) s += x[i] * y[i];
        return s;
    }

    private static float SumSquaredDeviationShort(float* x, int n, float c)
    {
        var vc = Vector256.Create(c);
        var acc = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - V; i += V)
        {
            var d = Vector256.Load(x + i) - vc;
            acc = Vector256.FusedMultiplyAdd(d, d, acc);
        }
        float s = Vector256.Sum(acc);
        for (; i < n; i++) { float d = x[i] - c; s += d * d; }
        return s;
    }
}

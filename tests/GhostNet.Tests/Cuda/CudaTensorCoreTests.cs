using GhostNet.Backends;
using GhostNet.Cuda;
using NUnit.Framework;
using Twin = GhostNet.Tests.Cuda.GpuHarness.Twin;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// gemm.cu's tensor-core kernels (gemm_tf32_*, gemm_tf32x3_*) against the CPU, through every
/// GEMM layout the backend launches: pointwise forward (A k-contiguous, B j-contiguous), its data
/// gradient (A^T) and weight gradient (both k-contiguous, K segmented over images' planes, split-K
/// pieces), the dense conv's im2col GEMMs, and the linear layers (B^T forward, A^T in dW).
/// Tf32: every element within 4 * 2^-11 * sum_k |a b| of the CPU's value (each operand rounded to
/// nearest tf32, 2^-11 relative, so a product is off by at most ~2^-10 of |a b|; the rest covers fp32
/// sums), the bound computed by the CPU op on |inputs|. Tf32x3: 1e-5 relative as the fp32 tests
/// (1e-4 for weight gradients, as CudaOpTests). Each case also checks that the GEMMs it launched
/// were the tensor-core kernels of that precision.
/// </summary>
[Category("Gpu")]
public class CudaTensorCoreTests
{
    private const double Unit = 1.0 / 2048; // 2^-11, tf32's unit roundoff
    private const double Tf32Units = 4;

    private static GpuHarness Create(GemmPrecision precision)
    {
        var t = GpuHarness.Create();
        t.Gpu.Precision = precision;
        // split_sum's launch shows that a shape split K (AssertKernels); the in-GEMM sum gives
        // the same bits in every precision (CudaOpTests.Split_k_summed_in_the_gemm_equals_split_sum).
        t.Gpu.SumSplitKInGemm = false;
        t.Gpu.Recorder = new LaunchRecorder();
        return t;
    }

    /// <summary>The same shape with |values| (CPU side used: the bound's inputs).</summary>
    private static Twin Abs(GpuHarness t, in Twin x)
    {
        var a = t.New(x.C.N, x.C.C, x.C.H, x.C.W);
        t.Set(a, GpuHarness.Get(t.Cpu, x.C).Select(MathF.Abs).ToArray());
        return a;
    }

    /// <summary><paramref name="bound"/>: the CPU op on |inputs| (sum_k |a b|, plus |old| where accumulated).</summary>
    private static void Check(GpuHarness t, GemmPrecision precision, string what, in Twin r, in Twin bound, double fp32Tolerance = 1e-5)
    {
        if (precision == GemmPrecision.Tf32x3)
        {
            t.Compare(what, r, fp32Tolerance);
            return;
        }
        var cpu = GpuHarness.Get(t.Cpu, r.C);
        var gpu = GpuHarness.Get(t.Gpu, r.G);
        var b = GpuHarness.Get(t.Cpu, bound.C);
        double worst = 0;
        int bad = -1;
        for (int i = 0; i < cpu.Length; i++)
        {
            double error = Math.Abs((double)gpu[i] - cpu[i]), allowed = Tf32Units * Unit * b[i];
            if (!(error <= allowed + 1e-30) && bad < 0) bad = i; // NaN fails too
            if (b[i] > 0) worst = Math.Max(worst, error / (Unit * b[i]));
        }
        TestContext.Out.WriteLine($"{what}: worst error {worst:F3} x 2^-11 sum|ab| (allowed {Tf32Units})");
        Assert.That(bad, Is.EqualTo(-1), () => $"{what}: element {bad}: GPU {gpu[bad]}, CPU {cpu[bad]}, bound {Tf32Units * Unit * b[bad]:E2}");
    }

    /// <summary>Every GEMM launched was a tensor-core kernel of this precision; split-K was used where expected.</summary>
    private static void AssertKernels(GpuHarness t, GemmPrecision precision, bool? split = null)
    {
        var launches = t.Gpu.Recorder!.Launches;
        var gemms = launches.Where(l => l.Kernel.StartsWith("gemm_")).ToList();
        string prefix = precision == GemmPrecision.Tf32 ? "gemm_tf32_" : "gemm_tf32x3_";
        Assert.That(gemms, Is.Not.Empty);
        Assert.That(gemms.Select(l => l.Kernel), Has.All.StartsWith(prefix));
        Assert.That(gemms.Select(l => l.Cost.Precision), Has.All.EqualTo(Precision.Tf32));
        if (split is { } s) Assert.That(launches.Any(l => l.Kernel == "split_sum"), Is.EqualTo(s), "split-K pieces");
    }

    private static readonly GemmPrecision[] Precisions = [GemmPrecision.Tf32, GemmPrecision.Tf32x3];

    // n, cin, h, w, cout: 7x7 and 7x9 planes (K segments of odd length over the images), 150
    // channels (K not a multiple of 16), 2 split-K pieces of dW at (8, 13, 7, 9, 11) and (2, 24, 14, 13, 70) on the emulator's 4 SMs.
    [TestCase(8, 13, 7, 9, 11, true, GemmPrecision.Tf32)]
    [TestCase(8, 13, 7, 9, 11, true, GemmPrecision.Tf32x3)]
    [TestCase(3, 150, 7, 7, 20, false, GemmPrecision.Tf32)]
    [TestCase(3, 150, 7, 7, 20, false, GemmPrecision.Tf32x3)]
    [TestCase(2, 24, 14, 13, 70, true, GemmPrecision.Tf32)]
    [TestCase(2, 24, 14, 13, 70, true, GemmPrecision.Tf32x3)]
    public void Pointwise_conv_matches_cpu(int n, int cin, int h, int w, int cout, bool split, GemmPrecision precision)
    {
        using var t = Create(precision);
        var x = t.Random(n, cin, h, w);
        var wt = t.Random(cout, cin, 1, 1, 0.3f);
        var y = t.New(n, cout, h, w);
        t.Cpu.PointwiseConvForward(x.C, wt.C, y.C);
        t.Gpu.PointwiseConvForward(x.G, wt.G, y.G);
        var ax = Abs(t, x);
        var aw = Abs(t, wt);
        var ay = t.New(n, cout, h, w);
        t.Cpu.PointwiseConvForward(ax.C, aw.C, ay.C);
        Check(t, precision, "y", y, ay);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Set(x.Grad, t.Values(x.C.Count)); // accumulated into
        var ady = Abs(t, y.Grad);
        t.Set(ax.Grad, GpuHarness.Get(t.Cpu, x.Grad.C).Select(MathF.Abs).ToArray());
        t.Cpu.PointwiseConvBackward(x.C, wt.C, y.Grad.C, x.Grad.C, true, wt.Grad.C);
        t.Gpu.PointwiseConvBackward(x.G, wt.G, y.Grad.G, x.Grad.G, true, wt.Grad.G);
        t.Cpu.PointwiseConvBackward(ax.C, aw.C, ady.C, ax.Grad.C, true, aw.Grad.C);
        Check(t, precision, "dx (accumulated)", x.Grad, ax.Grad);
        Check(t, precision, "dw", wt.Grad, aw.Grad, 1e-4);
        AssertKernels(t, precision, split);
    }

    [Test]
    public void Pointwise_conv_reads_and_writes_channel_windows([ValueSource(nameof(Precisions))] GemmPrecision precision)
    {
        using var t = Create(precision);
        var wide = t.Random(3, 11, 6, 7);
        var wt = t.Random(5, 4, 1, 1);
        var outWide = t.Random(3, 9, 6, 7);
        var aWide = Abs(t, wide);
        var aw = Abs(t, wt);
        var aOut = Abs(t, outWide); // untouched channels: bound |old|, error 0
        t.Cpu.PointwiseConvForward(wide.C.Channels(2, 4), wt.C, outWide.C.Channels(3, 5));
        t.Gpu.PointwiseConvForward(wide.G.Channels(2, 4), wt.G, outWide.G.Channels(3, 5));
        t.Cpu.PointwiseConvForward(aWide.C.Channels(2, 4), aw.C, aOut.C.Channels(3, 5));
        Check(t, precision, "whole output buffer (window written, rest untouched)", outWide, aOut);
        t.Set(outWide.Grad, t.Values(outWide.C.Count));
        var aDy = Abs(t, outWide.Grad);
        t.Cpu.PointwiseConvBackward(wide.C.Channels(2, 4), wt.C, outWide.Grad.C.Channels(3, 5), wide.Grad.C.Channels(2, 4), false, wt.Grad.C);
        t.Gpu.PointwiseConvBackward(wide.G.Channels(2, 4), wt.G, outWide.Grad.G.Channels(3, 5), wide.Grad.G.Channels(2, 4), false, wt.Grad.G);
        t.Cpu.PointwiseConvBackward(aWide.C.Channels(2, 4), aw.C, aDy.C.Channels(3, 5), aWide.Grad.C.Channels(2, 4), false, aw.Grad.C);
        Check(t, precision, "dw over windows", wt.Grad, aw.Grad, 1e-4);
        var dx = GpuHarness.Get(t.Gpu, wide.Grad.G);
        var adx = GpuHarness.Get(t.Cpu, aWide.Grad.C);
        var cdx = GpuHarness.Get(t.Cpu, wide.Grad.C);
        for (int n = 0; n < 3; n++)
            for (int i = 2 * 42; i < 6 * 42; i++) // the window's channels 2..5 of image n
            {
                int e = n * 11 * 42 + i;
                Assert.That(Math.Abs(dx[e] - cdx[e]), Is.LessThanOrEqualTo(Tf32Units * Unit * adx[e] + 1e-30), $"dx window element {e}");
            }
        AssertKernels(t, precision);
    }

    // n, cin, h, w, cout, k, stride, im2col workspace bound (1: one image a chunk)
    [TestCase(2, 5, 9, 7, 6, 5, 1, 64 << 20, GemmPrecision.Tf32)]
    [TestCase(2, 5, 9, 7, 6, 5, 1, 64 << 20, GemmPrecision.Tf32x3)]
    [TestCase(1, 4, 13, 13, 8, 3, 2, 64 << 20, GemmPrecision.Tf32)]
    [TestCase(1, 4, 13, 13, 8, 3, 2, 64 << 20, GemmPrecision.Tf32x3)]
    [TestCase(3, 4, 11, 9, 5, 3, 1, 1, GemmPrecision.Tf32)]
    [TestCase(3, 4, 11, 9, 5, 3, 1, 1, GemmPrecision.Tf32x3)]
    public void Dense_conv_matches_cpu(int n, int cin, int h, int w, int cout, int k, int stride, int workspaceBytes, GemmPrecision precision)
    {
        using var t = Create(precision);
        t.Gpu.ConvWorkspaceBytes = workspaceBytes;
        var g = new ConvGeometry(k, stride, k / 2);
        var x = t.Random(n, cin, h, w);
        var wt = t.Random(cout, cin, k, k, 0.3f);
        var y = t.New(n, cout, g.OutputSize(h), g.OutputSize(w));
        t.Cpu.ConvForward(x.C, wt.C, y.C, g);
        t.Gpu.ConvForward(x.G, wt.G, y.G, g);
        var ax = Abs(t, x);
        var aw = Abs(t, wt);
        var ay = t.New(n, cout, g.OutputSize(h), g.OutputSize(w));
        t.Cpu.ConvForward(ax.C, aw.C, ay.C, g);
        Check(t, precision, "y", y, ay);
        t.Set(y.Grad, t.Values(y.C.Count));
        var ady = Abs(t, y.Grad);
        t.Cpu.ConvBackward(x.C, wt.C, y.Grad.C, x.Grad.C, false, wt.Grad.C, g);
        t.Gpu.ConvBackward(x.G, wt.G, y.Grad.G, x.Grad.G, false, wt.Grad.G, g);
        t.Cpu.ConvBackward(ax.C, aw.C, ady.C, ax.Grad.C, false, aw.Grad.C, g);
        Check(t, precision, "dx", x.Grad, ax.Grad);
        Check(t, precision, "dw", wt.Grad, aw.Grad, 1e-4);
        AssertKernels(t, precision);
    }

    // n, k, m, and the tensor-core tile the forward (M = n, N = m) picks; dW (K = n samples) in
    // split-K pieces at 5,000 and 1,264 samples.
    [TestCase(128, 37, 64, 128, 64, false, GemmPrecision.Tf32)]
    [TestCase(128, 37, 64, 128, 64, false, GemmPrecision.Tf32x3)]
    [TestCase(64, 33, 128, 64, 128, false, GemmPrecision.Tf32)]
    [TestCase(64, 33, 128, 64, 128, false, GemmPrecision.Tf32x3)]
    [TestCase(60, 17, 60, 64, 64, false, GemmPrecision.Tf32)]
    [TestCase(60, 17, 60, 64, 64, false, GemmPrecision.Tf32x3)]
    [TestCase(16, 9, 250, 16, 256, false, GemmPrecision.Tf32)]
    [TestCase(16, 9, 250, 16, 256, false, GemmPrecision.Tf32x3)]
    [TestCase(250, 21, 16, 256, 16, false, GemmPrecision.Tf32)]
    [TestCase(250, 21, 16, 256, 16, false, GemmPrecision.Tf32x3)]
    [TestCase(30, 50, 30, 32, 32, false, GemmPrecision.Tf32)]
    [TestCase(30, 50, 30, 32, 32, false, GemmPrecision.Tf32x3)]
    [TestCase(5000, 3, 4, 256, 16, true, GemmPrecision.Tf32)]
    [TestCase(5000, 3, 4, 256, 16, true, GemmPrecision.Tf32x3)]
    [TestCase(1264, 5, 6, 256, 16, true, GemmPrecision.Tf32)]
    [TestCase(1264, 5, 6, 256, 16, true, GemmPrecision.Tf32x3)]
    public void Linear_matches_cpu_on_every_tile(int n, int k, int m, int tileM, int tileN, bool split, GemmPrecision precision)
    {
        var tile = CudaBackend.PickKernel(n, m, precision);
        Assert.That((tile.M, tile.N), Is.EqualTo((tileM, tileN)), "the shape exercises the tile it is meant to");
        using var t = Create(precision);
        var x = t.Random(n, k, 1, 1);
        var w = t.Random(m, k, 1, 1, 0.1f);
        var b = t.Random(m, 1, 1, 1);
        var y = t.New(n, m, 1, 1);
        t.Cpu.LinearForward(x.C, w.C, b.C, y.C);
        t.Gpu.LinearForward(x.G, w.G, b.G, y.G);
        var ax = Abs(t, x);
        var aw = Abs(t, w);
        var ab = Abs(t, b);
        var ay = t.New(n, m, 1, 1);
        t.Cpu.LinearForward(ax.C, aw.C, ab.C, ay.C);
        Check(t, precision, "y", y, ay);
        t.Set(y.Grad, t.Values(y.C.Count));
        var ady = Abs(t, y.Grad);
        t.Cpu.LinearBackward(x.C, w.C, y.Grad.C, x.Grad.C, false, w.Grad.C, b.Grad.C);
        t.Gpu.LinearBackward(x.G, w.G, y.Grad.G, x.Grad.G, false, w.Grad.G, b.Grad.G);
        t.Cpu.LinearBackward(ax.C, aw.C, ady.C, ax.Grad.C, false, aw.Grad.C, ab.Grad.C);
        Check(t, precision, "dx", x.Grad, ax.Grad);
        Check(t, precision, "dw", w.Grad, aw.Grad, 1e-4);
        t.Compare("db (column_sum, fp32 either way)", b.Grad, 1e-4);
        AssertKernels(t, precision, split);
    }

    /// <summary>Tf32 rounds: on a long K its error is well above fp32's (the switch is not a no-op).</summary>
    [Test]
    public void Tf32_is_coarser_than_fp32_and_3xtf32()
    {
        double Error(GemmPrecision p)
        {
            using var t = Create(p);
            t.Gpu.Recorder = null;
            var x = t.Random(64, 300, 1, 1);
            var w = t.Random(64, 300, 1, 1);
            var b = t.Random(64, 1, 1, 1);
            var y = t.New(64, 64, 1, 1);
            t.Cpu.LinearForward(x.C, w.C, b.C, y.C);
            t.Gpu.LinearForward(x.G, w.G, b.G, y.G);
            return GpuHarness.RelativeError(GpuHarness.Get(t.Gpu, y.G), GpuHarness.Get(t.Cpu, y.C));
        }
        double fp32 = Error(GemmPrecision.Fp32), tf32 = Error(GemmPrecision.Tf32), x3 = Error(GemmPrecision.Tf32x3);
        TestContext.Out.WriteLine($"relative error: fp32 {fp32:E2}, tf32 {tf32:E2}, 3xtf32 {x3:E2}");
        Assert.That(tf32, Is.GreaterThan(1e-5), "tf32 rounds its operands");
        Assert.That(tf32, Is.LessThan(1e-2));
        Assert.That(x3, Is.LessThan(tf32 / 30), "3xTF32 recovers about fp32 accuracy");
        Assert.That(x3, Is.LessThan(1e-5));
    }

    /// <summary>NaN and +-Inf in an operand give the CPU's NaN and infinities (3xTF32 included: its cross terms skip non-finite values).</summary>
    [Test]
    public void Non_finite_operands_propagate([ValueSource(nameof(Precisions))] GemmPrecision precision)
    {
        using var t = Create(precision);
        double tolerance = precision == GemmPrecision.Tf32 ? 1e-2 : 1e-5;
        var x = t.RandomNonFinite(2, 6, 9, 9, 5);
        var pw = t.Random(5, 6, 1, 1, 0.3f);
        var yp = t.New(2, 5, 9, 9);
        t.Cpu.PointwiseConvForward(x.C, pw.C, yp.C); t.Gpu.PointwiseConvForward(x.G, pw.G, yp.G);
        t.CompareClasses("pointwise conv", yp, tolerance);
        t.Set(yp.Grad, t.Values(yp.C.Count));
        t.Cpu.PointwiseConvBackward(x.C, pw.C, yp.Grad.C, x.Grad.C, false, pw.Grad.C);
        t.Gpu.PointwiseConvBackward(x.G, pw.G, yp.Grad.G, x.Grad.G, false, pw.Grad.G);
        t.CompareClasses("pointwise dw", pw.Grad, tolerance);
        var g = new ConvGeometry(3, 1, 1);
        var cw = t.Random(5, 6, 3, 3, 0.3f);
        var yc = t.New(2, 5, 9, 9);
        t.Cpu.ConvForward(x.C, cw.C, yc.C, g); t.Gpu.ConvForward(x.G, cw.G, yc.G, g);
        t.CompareClasses("dense conv", yc, tolerance);
        var xl = t.RandomNonFinite(4, 37, 1, 1, 3);
        var lw = t.Random(10, 37, 1, 1, 0.1f);
        var lb = t.Random(10, 1, 1, 1);
        var yl = t.New(4, 10, 1, 1);
        t.Cpu.LinearForward(xl.C, lw.C, lb.C, yl.C); t.Gpu.LinearForward(xl.G, lw.G, lb.G, yl.G);
        t.CompareClasses("linear", yl, tolerance);
        AssertKernels(t, precision);
    }
}

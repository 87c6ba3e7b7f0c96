using GhostNet.Backends;
using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

public partial class CudaOpTests
{
    // v2.8: a split-K weight gradient's pieces added by each tile's last block (finish_split) give
    // split_sum's bits, in every precision. The shapes split (asserted): the pointwise dW in 8
    // pieces of one image, the linear dW in 8 pieces of 640 samples, the dense conv's dW in 4
    // workspace chunks of 2 images (2 x 1,024 pixels, 8 pieces each) whose later chunks add to dW (beta 1).
    [TestCase("pointwise", GemmPrecision.Fp32)]
    [TestCase("pointwise", GemmPrecision.Tf32)]
    [TestCase("pointwise", GemmPrecision.Tf32x3)]
    [TestCase("linear", GemmPrecision.Fp32)]
    [TestCase("linear", GemmPrecision.Tf32)]
    [TestCase("dense", GemmPrecision.Fp32)]
    public void Split_k_summed_in_the_gemm_equals_split_sum(string op, GemmPrecision precision)
    {
        using var t = GpuHarness.Create();
        t.Gpu.Precision = precision;
        t.Gpu.ConvWorkspaceBytes = 500_000; // 2 images' columns and their gradient: 442,368 bytes
        var g = new ConvGeometry(3, 2, 1);
        var (x, w, y) = op switch
        {
            "pointwise" => (t.Random(8, 13, 7, 9), t.Random(11, 13, 1, 1, 0.3f), t.New(8, 11, 7, 9)),
            "linear" => (t.Random(5000, 3, 1, 1), t.Random(4, 3, 1, 1, 0.3f), t.New(5000, 4, 1, 1)),
            _ => (t.Random(8, 3, 64, 64), t.Random(6, 3, 3, 3, 0.3f), t.New(8, 6, 32, 32)),
        };
        var bias = t.Random(w.C.N, 1, 1, 1);
        t.Set(y.Grad, t.Values(y.C.Count));
        var results = new List<float[]>();
        var kernels = new List<string[]>();
        foreach (bool inGemm in new[] { true, false })
        {
            t.Gpu.SumSplitKInGemm = inGemm;
            t.Gpu.Recorder = new LaunchRecorder();
            t.Poison(w.Grad);
            if (op == "pointwise") t.Gpu.PointwiseConvBackward(x.G, w.G, y.Grad.G, default, false, w.Grad.G);
            else if (op == "linear") t.Gpu.LinearBackward(x.G, w.G, y.Grad.G, default, false, w.Grad.G, bias.Grad.G);
            else t.Gpu.ConvBackward(x.G, w.G, y.Grad.G, default, false, w.Grad.G, g);
            kernels.Add(t.Gpu.Recorder.Launches.Select(l => l.Kernel).ToArray());
            results.Add(GpuHarness.Get(t.Gpu, w.Grad.G));
        }
        t.Gpu.Recorder = null;
        Assert.That(kernels[0], Has.None.EqualTo("split_sum"), "summed in the GEMM");
        Assert.That(kernels[1].Count(k => k == "split_sum"), Is.EqualTo(op == "dense" ? 4 : 1), "the shape splits K (the dense conv: once per workspace chunk)");
        Assert.That(results[0], Is.EqualTo(results[1]), "dW");
        Assert.That(results[0], Has.All.Not.NaN, "every element written");
    }
}

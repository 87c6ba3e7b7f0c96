using GhostNet.Backends;
using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

public partial class CudaOpTests
{
    // The GEMM's activation epilogue (v2.14): a linear layer and the ReLU or hard-sigmoid after it
    // in one launch must write the very bits of the linear layer, then relu_fwd or
    // hard_sigmoid_fwd: y (kept for the backward) and the activation. A NaN and an Inf in x go
    // through both paths. On the SIMT GEMM (fp32) and the tensor-core one (tf32), whose epilogue
    // is its own; SE's shapes (256 samples, 960 -> 240 and 240 -> 960) and a small odd one; and
    // against the CPU.
    [TestCase(256, 960, 240, "Relu", "Fp32")]
    [TestCase(256, 240, 960, "HardSigmoid", "Fp32")]
    [TestCase(5, 37, 10, "HardSigmoid", "Fp32")]
    [TestCase(8, 960, 1280, "Relu", "Tf32")]
    [TestCase(5, 37, 10, "HardSigmoid", "Tf32")]
    [TestCase(64, 40, 10, "Clamp01", "Fp32")]
    [TestCase(64, 40, 10, "Clamp01", "Tf32")] // clamp's band (0, 1) is narrow: enough outputs that a tenth of them surely fall in it
    [TestCase(8, 960, 1280, "HardSwish", "Fp32")] // MobileNetV3's conv_head and its hard-swish
    [TestCase(5, 37, 10, "HardSwish", "Tf32")]
    public void Linear_with_its_activation_equals_the_linear_and_the_activation(int n, int k, int m, string activationName, string precision)
    {
        using var t = GpuHarness.Create();
        var activation = Enum.Parse<Activation>(activationName);
        t.Gpu.Precision = Enum.Parse<GemmPrecision>(precision);
        var x = t.Random(n, k, 1, 1);
        var xv = GpuHarness.Get(t.Cpu, x.C);
        (xv[1], xv[(n - 1) * k + 2]) = (float.NaN, float.PositiveInfinity); // two samples' rows non-finite, the others finite
        t.Set(x, xv);
        // Pre-activations of both signs and across the gate's (-3, 3) bend: weights big enough.
        var w = t.Random(m, k, 1, 1, 4f / MathF.Sqrt(k));
        var b = t.Random(m, 1, 1, 1);
        var (fused, unfused) = ((Y: t.New(n, m, 1, 1), A: t.New(n, m, 1, 1)), (Y: t.New(n, m, 1, 1), A: t.New(n, m, 1, 1)));
        t.Gpu.Recorder = new LaunchRecorder();
        foreach (var (path, inGemm) in new[] { (fused, true), (unfused, false) })
        {
            t.Gpu.ActivationInGemm = inGemm;
            t.Gpu.LinearForward(x.G, w.G, b.G, path.Y.G, activation, path.A.G);
        }
        t.Gpu.ActivationInGemm = true;
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).ToArray();
        t.Gpu.Recorder = null;
        string act = Kernel(activation) + "_fwd";
        Assert.That(kernels.Length, Is.EqualTo(3));
        Assert.That(kernels[1], Is.EqualTo(kernels[0]), "the same GEMM tile either way");
        Assert.That(kernels[2], Is.EqualTo(act));
        float[] Read(in GpuHarness.Twin v) => GpuHarness.Get(t.Gpu, v.G);
        Assert.That(Read(fused.Y), Is.EqualTo(Read(unfused.Y)), "y");
        Assert.That(Read(fused.A), Is.EqualTo(Read(unfused.A)), "activation(y)");
        var a = Read(fused.A);
        if (activation == Activation.HardSwish)
            Assert.That(Read(fused.Y).Count(v => v > -3f && v < 3f), Is.InRange(a.Length / 10, a.Length * 9 / 10), "hard-swish's bend and its ends");
        else if (activation != Activation.Relu)
            Assert.That(a.Count(v => v > 0f && v < 1f), Is.GreaterThan(a.Length / 10), "the gate's bend is exercised");
        else Assert.That(a.Count(v => v == 0f), Is.InRange(a.Length / 10, a.Length * 9 / 10), "both sides of the ReLU");
        if (precision != "Fp32") return; // tf32 is compared with the CPU in CudaTensorCoreTests
        t.Cpu.LinearForward(x.C, w.C, b.C, fused.Y.C, activation, fused.A.C);
        t.CompareClasses("y", fused.Y);
        t.CompareClasses("activation(y)", fused.A);
    }

    // v2.17: the bias gradient's column sums differentiate the activation and write y's gradient
    // for the backward GEMMs, in place of relu_bwd or hard_sigmoid_bwd before them. y's gradient,
    // db, dx (written and added to) and dW must equal the unfused launches bit for bit, and match
    // the CPU. The ReLU's zeros and the gate's saturated ends are both exercised (pre-activations
    // of both signs and beyond +-3, two outputs pinned there by their biases).
    [TestCase(256, 960, 240, "Relu", false)]
    [TestCase(256, 240, 960, "HardSigmoid", true)]
    [TestCase(5, 37, 10, "HardSigmoid", false)]
    [TestCase(7, 19, 300, "Relu", true)]
    [TestCase(6, 11, 13, "HardSigmoid", false, false)]
    [TestCase(64, 40, 10, "Clamp01", true)]
    [TestCase(6, 11, 13, "Clamp01", false, false)]
    [TestCase(8, 960, 1280, "HardSwish", true)]
    [TestCase(6, 11, 13, "HardSwish", false, false)]
    public void Linear_backward_through_its_activation_equals_the_activation_backward_and_the_linear_backward(int n, int k, int m, string activationName, bool accumulate,
        bool bias = true)
    {
        using var t = GpuHarness.Create();
        var activation = Enum.Parse<Activation>(activationName);
        var x = t.Random(n, k, 1, 1);
        var w = t.Random(m, k, 1, 1, 4f / MathF.Sqrt(k));
        var b = t.Random(m, 1, 1, 1);
        var bv = GpuHarness.Get(t.Cpu, b.C);
        (bv[0], bv[1]) = (10f, -10f); // an output saturated at each end in every draw: the gate's and the ReLU's zero gradients
        t.Set(b, bv);
        var (y, a) = (t.New(n, m, 1, 1), t.New(n, m, 1, 1));
        t.Gpu.LinearForward(x.G, w.G, b.G, y.G, activation, a.G);
        t.Cpu.LinearForward(x.C, w.C, b.C, y.C, activation, a.C);
        t.Mirror(y); // the backward on both devices from the same forward
        t.Mirror(a);
        t.Set(a.Grad, t.Values(n * m));
        float[] dxBefore = t.Values(n * k);
        var runs = new List<float[][]>();
        var (dx, dw, db) = (t.New(n, k, 1, 1), t.New(m, k, 1, 1), t.New(m, 1, 1, 1));
        t.Gpu.Recorder = new LaunchRecorder();
        foreach (bool fuse in new[] { true, false })
        {
            t.Gpu.ActivationGradientInBiasSum = fuse;
            t.Set(dx, dxBefore);
            foreach (var v in new[] { y.Grad, dw, db }) t.Poison(v);
            t.Gpu.LinearBackward(x.G, w.G, new ActivatedOutput(y.G, activation, a.G), dx.G, accumulate, dw.G, bias ? db.G : default);
            runs.Add([GpuHarness.Get(t.Gpu, y.Grad.G), GpuHarness.Get(t.Gpu, db.G), GpuHarness.Get(t.Gpu, dx.G), GpuHarness.Get(t.Gpu, dw.G)]);
        }
        t.Gpu.ActivationGradientInBiasSum = true;
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).Where(k => k != "fill_view" && !k.StartsWith("gemm_")).ToArray();
        t.Gpu.Recorder = null;
        string backward = Kernel(activation) + "_bwd";
        // Without a bias there is no column sum to fold the activation into: both runs unfused.
        Assert.That(kernels, Is.EqualTo(bias ? new[] { "column_sum", backward, "column_sum" } : [backward, backward]));
        string[] names = ["y's gradient", "db", "dx", "dW"];
        for (int i = 0; i < names.Length; i++) Assert.That(runs[0][i], Is.EqualTo(runs[1][i]), names[i]);
        var dz = runs[0][0];
        Assert.That(dz.Count(v => v == 0f), Is.InRange(1, dz.Length - 1), "the activation passes some gradient and stops some");
        t.Cpu.Upload(dxBefore, dx.C);
        t.Cpu.LinearBackward(x.C, w.C, new ActivatedOutput(y.C, activation, a.C), dx.C, accumulate, dw.C, bias ? db.C : default);
        t.CompareClasses("y's gradient", y.Grad);
        if (bias) t.CompareClasses("db", db);
        t.CompareClasses("dx", dx);
        t.CompareClasses("dW", dw);
    }

    /// <summary>The elementwise kernels of an activation, without their _fwd / _bwd.</summary>
    private static string Kernel(Activation activation) => activation switch
    {
        Activation.Relu => "relu", Activation.HardSigmoid => "hard_sigmoid", Activation.Clamp01 => "clamp01", Activation.HardSwish => "hard_swish",
        _ => throw new ArgumentOutOfRangeException(nameof(activation)),
    };
}

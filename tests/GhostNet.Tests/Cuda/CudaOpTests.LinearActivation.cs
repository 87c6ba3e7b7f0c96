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
        string act = activation == Activation.Relu ? "relu_fwd" : "hard_sigmoid_fwd";
        Assert.That(kernels.Length, Is.EqualTo(3));
        Assert.That(kernels[1], Is.EqualTo(kernels[0]), "the same GEMM tile either way");
        Assert.That(kernels[2], Is.EqualTo(act));
        float[] Read(in GpuHarness.Twin v) => GpuHarness.Get(t.Gpu, v.G);
        Assert.That(Read(fused.Y), Is.EqualTo(Read(unfused.Y)), "y");
        Assert.That(Read(fused.A), Is.EqualTo(Read(unfused.A)), "activation(y)");
        var a = Read(fused.A);
        if (activation == Activation.HardSigmoid)
            Assert.That(a.Count(v => v > 0f && v < 1f), Is.GreaterThan(a.Length / 10), "the gate's bend is exercised");
        else Assert.That(a.Count(v => v == 0f), Is.InRange(a.Length / 10, a.Length * 9 / 10), "both sides of the ReLU");
        if (precision != "Fp32") return; // tf32 is compared with the CPU in CudaTensorCoreTests
        t.Cpu.LinearForward(x.C, w.C, b.C, fused.Y.C, activation, fused.A.C);
        t.CompareClasses("y", fused.Y);
        t.CompareClasses("activation(y)", fused.A);
    }
}

using GhostNet.Backends;
using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

public partial class CudaOpTests
{
    // v2.18: the pointwise conv that reads squeeze-excite's output x * gate (ghost2's primary conv)
    // scales x by the gate as its GEMMs load it: the forward's (gemm_f32_stats_gate_*) and the
    // weight gradient's (gemm_f32_bn_gate_*); squeeze-excite's output is never written. z, the
    // statistics and y, then dx, dW, dgamma and dbeta must equal the unfused launches (channel_scale,
    // then the same GEMMs ungated) bit for bit, and match the CPU. Cases: SE-like shapes (a 7 x 7
    // and a 14 x 14 plane), odd ones; (8, 12, 14, 14, ...) splits dW into pieces that cut images
    // (the gate's segment steps inside a piece); x a channel window of a wider buffer; the apply
    // deferred or not.
    [TestCase(8, 12, 14, 14, 20, Activation.Relu, false)]
    [TestCase(4, 96, 7, 7, 40, Activation.None, true)]
    [TestCase(3, 17, 5, 9, 6, Activation.Relu, true)]
    [TestCase(2, 40, 16, 16, 80, Activation.None, false)]
    public void Pointwise_conv_reading_a_gated_input_equals_the_channel_scale_and_the_conv(int n, int c, int h, int w, int cout, Activation act, bool deferApply)
    {
        using var t = GpuHarness.Create();
        var xBuffer = t.Random(n, c + 3, h, w);
        var x = xBuffer.Channels(2, c);
        var gate = t.Random(n, c, 1, 1, 0.5f, 0.5f); // as a hard-sigmoid leaves it, in [0, 1]
        var filters = t.Random(cout, c, 1, 1, 0.3f);
        var o = new BatchNormOptions(Activation: act);
        var bn = BatchNormTwins.Create(t, cout);
        float[] runningMean = GpuHarness.Get(t.Cpu, bn.RunningMean.C), runningVar = GpuHarness.Get(t.Cpu, bn.RunningVar.C);
        var (scaled, z, y) = (t.New(n, c, h, w), t.New(n, cout, h, w), t.New(n, cout, h, w));
        var input = (Gpu: new GatedInput(x.G, gate.G, scaled.G), Cpu: new GatedInput(x.C, gate.C, scaled.C));
        float[] Read(in GpuHarness.Twin v) => GpuHarness.Get(t.Gpu, v.G);
        var forward = new List<float[][]>();
        t.Gpu.Recorder = new LaunchRecorder();
        foreach (bool gated in new[] { true, false })
        {
            t.Gpu.GateInGemm = gated;
            t.Set(bn.RunningMean, runningMean);
            t.Set(bn.RunningVar, runningVar);
            foreach (var v in new[] { scaled, z, y, bn.Mean, bn.InvStd }) t.Poison(v);
            t.Gpu.PointwiseConvBatchNormForward(input.Gpu, filters.G, z.G, y.G, bn.Gpu, o, deferApply);
            if (gated) Assert.That(Read(scaled).All(float.IsNaN), "squeeze-excite's output is not written");
            forward.Add([Read(z), Read(y), Read(bn.Mean), Read(bn.InvStd), Read(bn.RunningMean), Read(bn.RunningVar)]);
        }
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).Where(k => k != "fill_view").ToArray(); // less the poisoning
        string[] apply = deferApply ? [] : ["batch_norm_apply"];
        var gemmF = CudaBackend.PickTile(cout, h * w);
        Assert.That(kernels, Is.EqualTo(new[] { $"gemm_f32_stats_gate_{gemmF.M}x{gemmF.N}" }.Concat(apply)
            .Concat(["channel_scale", $"gemm_f32_stats_{gemmF.M}x{gemmF.N}"]).Concat(apply)));
        string[] names = ["z", "y", "saved mean", "saved invstd", "running mean", "running var"];
        for (int i = 0; i < names.Length; i++)
            if (!deferApply || names[i] != "y") Assert.That(forward[0][i], Is.EqualTo(forward[1][i]), names[i]);

        // The backward from the forward's state; dx accumulates into what is there.
        t.Set(y.Grad, t.Values(y.C.Count));
        float[] earlier = t.Values(n * c * h * w);
        var backward = new List<float[][]>();
        t.Gpu.Recorder.Reset();
        foreach (bool gated in new[] { true, false })
        {
            t.Gpu.GateInGemm = gated;
            t.Poison(scaled);
            t.Set(scaled.Grad, earlier);
            foreach (var v in new[] { filters.Grad, bn.Gamma.Grad, bn.Beta.Grad }) t.Poison(v);
            t.Gpu.PointwiseConvBatchNormBackward(input.Gpu, filters.G, z.G, y.Grad.G, scaled.Grad.G, true, filters.Grad.G, bn.Gpu, o);
            backward.Add([Read(scaled.Grad), Read(filters.Grad), Read(bn.Gamma.Grad), Read(bn.Beta.Grad)]);
        }
        kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).Where(k => k != "fill_view" && k != "split_sum").ToArray();
        t.Gpu.Recorder = null;
        t.Gpu.GateInGemm = true;
        var (dataTile, weightTile) = (CudaBackend.PickTile(c, h * w), CudaBackend.PickTile(cout, c));
        string[] gemms = [$"gemm_f32_bn_{dataTile.M}x{dataTile.N}", $"gemm_f32_bn_{weightTile.M}x{weightTile.N}"];
        Assert.That(kernels, Is.EqualTo(new[] { "batch_norm_bwd_reduce", gemms[0], $"gemm_f32_bn_gate_{weightTile.M}x{weightTile.N}",
            "channel_scale", "batch_norm_bwd_reduce", gemms[0], gemms[1] }));
        string[] grads = ["dx", "dW", "dgamma", "dbeta"];
        for (int i = 0; i < grads.Length; i++) Assert.That(backward[0][i], Is.EqualTo(backward[1][i]), grads[i]);

        // Against the CPU: its forward from the same start, then its backward from the GPU's forward state.
        t.Set(bn.RunningMean, runningMean);
        t.Set(bn.RunningVar, runningVar);
        t.Gpu.PointwiseConvBatchNormForward(input.Gpu, filters.G, z.G, y.G, bn.Gpu, o, deferApply);
        t.Cpu.PointwiseConvBatchNormForward(input.Cpu, filters.C, z.C, y.C, bn.Cpu, o, deferApply);
        t.Compare("z", z);
        if (!deferApply) t.Compare("y", y);
        foreach (var (name, v) in new[] { ("saved mean", bn.Mean), ("saved invstd", bn.InvStd), ("running mean", bn.RunningMean), ("running var", bn.RunningVar) })
            t.Compare(name, v);
        foreach (var v in new[] { z, bn.Mean, bn.InvStd }) t.Mirror(v);
        t.Set(scaled.Grad, earlier);
        t.Gpu.PointwiseConvBatchNormBackward(input.Gpu, filters.G, z.G, y.Grad.G, scaled.Grad.G, true, filters.Grad.G, bn.Gpu, o);
        t.Cpu.PointwiseConvBatchNormBackward(input.Cpu, filters.C, z.C, y.Grad.C, scaled.Grad.C, true, filters.Grad.C, bn.Cpu, o);
        t.Compare("dx", scaled.Grad);
        t.Compare("dW", filters.Grad);
        t.Compare("dgamma", bn.Gamma.Grad);
        t.Compare("dbeta", bn.Beta.Grad);
    }
}

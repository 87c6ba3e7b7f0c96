using GhostNet.Backends;
using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

public partial class CudaOpTests
{
    // v2.10: the pointwise conv's GEMM computes the batch norm's statistics in its epilogue. z must
    // equal the unfused conv's exactly (the same tile), the statistics and y match the unfused
    // launches (batch_norm_stats) and the CPU to rounding, and a second run repeats every bit.
    // n, cin, h, w, cout, relu, offset: x a channel window; (1, 16, 112, 112, 24) is the
    // first bottleneck's 16x256 tiles (49 column blocks); 300 channels are several row blocks; an
    // offset of 40 puts the mean far from 0 against a spread near 1 (centred parts must keep it).
    [TestCase(8, 13, 7, 9, 11, Activation.Relu, 0f)]
    [TestCase(2, 24, 14, 13, 70, Activation.None, 0f)]
    [TestCase(1, 16, 112, 112, 24, Activation.Relu, 0f)]
    [TestCase(3, 40, 16, 16, 300, Activation.None, 40f)]
    [TestCase(4, 150, 7, 7, 20, Activation.Relu, 40f)]
    public void Pointwise_conv_with_batch_norm_statistics_matches_the_unfused_launches(int n, int cin, int h, int w, int cout, Activation act, float offset)
    {
        using var t = GpuHarness.Create();
        var x = t.Random(n, cin + 2, h, w, 1f, offset).Channels(1, cin);
        var filters = t.Random(cout, cin, 1, 1, 0.3f, 0.05f);
        var o = new BatchNormOptions(Activation: act);
        var bn = BatchNormTwins.Create(t, cout);
        float[] runningMean = GpuHarness.Get(t.Cpu, bn.RunningMean.C), runningVar = GpuHarness.Get(t.Cpu, bn.RunningVar.C);
        float[] Read(in GpuHarness.Twin v) => GpuHarness.Get(t.Gpu, v.G);
        var z = t.New(n, cout, h, w);
        var y = t.New(n, cout, h, w);
        var runs = new List<float[][]>();
        t.Gpu.Recorder = new LaunchRecorder();
        foreach (bool fuse in new[] { true, true, false })
        {
            t.Gpu.GemmBatchNormStatistics = fuse;
            t.Set(bn.RunningMean, runningMean);
            t.Set(bn.RunningVar, runningVar);
            foreach (var v in new[] { z, y, bn.Mean, bn.InvStd }) t.Poison(v);
            t.Gpu.PointwiseConvBatchNormForward(x.G, filters.G, z.G, y.G, bn.Gpu, o);
            runs.Add([Read(z), Read(y), Read(bn.Mean), Read(bn.InvStd), Read(bn.RunningMean), Read(bn.RunningVar)]);
        }
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).Where(k => k != "fill_view").ToArray(); // less the poisoning
        t.Gpu.Recorder = null;
        Assert.That(kernels.Where(k => !k.StartsWith("gemm_")), Is.EqualTo(new[] { "batch_norm_apply", "batch_norm_apply", "batch_norm_stats", "batch_norm_apply" }));
        Assert.That(kernels.Where(k => k.StartsWith("gemm_")).Select(k => k.StartsWith("gemm_f32_stats_")), Is.EqualTo(new[] { true, true, false }), "the statistics' GEMM");
        string[] names = ["z", "y", "saved mean", "saved invstd", "running mean", "running var"];
        for (int i = 0; i < names.Length; i++) Assert.That(runs[1][i], Is.EqualTo(runs[0][i]), $"{names[i]}: a second run repeats every bit");
        Assert.That(runs[0][0], Is.EqualTo(runs[2][0]), "z: the unfused conv's");
        // A last-bit difference of the float mean moves y by |mean| invstd ulps: with a mean far from
        // 0 (offset 40: |mean| / std near 250) that alone is several 1e-6 (seed 1592138099: 7.1e-6).
        double MeanUlps(float[] mean, float[] invstd) => mean.Zip(invstd, (m, s) => Math.Abs(m) * s).Max() * Math.Pow(2, -23);
        for (int i = 1; i < names.Length; i++)
        {
            double error = GpuHarness.RelativeError(runs[0][i], runs[2][i]);
            double tolerance = 1e-6 + (names[i] == "y" ? MeanUlps(runs[2][2], runs[2][3]) : 0);
            TestContext.Out.WriteLine($"{names[i]}: relative error against the unfused launches {error:E2} (tolerance {tolerance:E2})");
            Assert.That(error, Is.LessThanOrEqualTo(tolerance), names[i]);
        }
        // Against the CPU (the fused run's state left on the GPU is the unfused one's: put it back).
        // The batch norm from the GPU's z: with a mean far from 0, the two devices' z differ by
        // rounding that the normalisation magnifies by |mean| / std, which is no fault of either;
        // so does a last-bit difference of the float mean (y's tolerance grows by that much).
        t.Gpu.GemmBatchNormStatistics = true;
        t.Set(bn.RunningMean, runningMean);
        t.Set(bn.RunningVar, runningVar);
        t.Gpu.PointwiseConvBatchNormForward(x.G, filters.G, z.G, y.G, bn.Gpu, o);
        t.Cpu.PointwiseConvForward(x.C, filters.C, z.C);
        t.Compare("z", z);
        t.Cpu.Upload(Read(z), z.C);
        t.Cpu.BatchNormTrainForward(z.C, y.C, bn.Cpu, o);
        float[] cpuMean = GpuHarness.Get(t.Cpu, bn.Mean.C), cpuInvStd = GpuHarness.Get(t.Cpu, bn.InvStd.C);
        t.Compare("y", y, 1e-5 + MeanUlps(cpuMean, cpuInvStd));
        t.Compare("saved mean", bn.Mean);
        t.Compare("saved invstd", bn.InvStd);
        t.Compare("running mean", bn.RunningMean);
        t.Compare("running var", bn.RunningVar);
    }

    // v2.9: the pointwise conv's backward GEMMs compute the batch norm's input gradient where they
    // load it (gemm_f32_bn_*). dx, dW, dgamma and dbeta must equal the unfused launches
    // (batch_norm_bwd_reduce, batch_norm_bwd_data, the plain GEMMs) exactly, and match the CPU.
    // n, cin, h, w, cout, relu, accumulate: dy is a channel window of a wider buffer and x a window
    // too (the Ghost module's concat, with its own image strides); (8, 13, 7, 9, 11) splits dW into
    // 8 pieces of one image (K segments inside a piece at (2, 24, 14, 13, 70)); 150 channels run K
    // past 16-wide tiles unevenly; 1 x 1 planes are refused by the fused path and run unfused.
    [TestCase(8, 13, 7, 9, 11, Activation.Relu, true)]
    [TestCase(2, 24, 14, 13, 70, Activation.None, false)]
    [TestCase(3, 150, 7, 7, 20, Activation.Relu, false)]
    [TestCase(4, 16, 28, 28, 24, Activation.None, true)]
    [TestCase(1, 40, 16, 16, 120, Activation.Relu, false)]
    [TestCase(8, 20, 1, 1, 30, Activation.Relu, true)]
    public void Pointwise_conv_backward_through_batch_norm_equals_the_unfused_launches(int n, int cin, int h, int w, int cout, Activation act, bool accumulate)
    {
        using var t = GpuHarness.Create();
        var xBuffer = t.Random(n, cin + 3, h, w);
        var x = xBuffer.Channels(1, cin);
        var filters = t.Random(cout, cin, 1, 1, 0.3f);
        var z = t.New(n, cout, h, w);
        var yBuffer = t.New(n, cout + 5, h, w);
        var y = yBuffer.Channels(2, cout);
        var bn = BatchNormTwins.Create(t, cout);
        var (gamma, beta, mean, invstd, pg, pc) = (bn.Gamma, bn.Beta, bn.Mean, bn.InvStd, bn.Gpu, bn.Cpu);
        var o = new BatchNormOptions(Activation: act);
        t.Gpu.PointwiseConvForward(x.G, filters.G, z.G);
        t.Gpu.BatchNormTrainForward(z.G, y.G, pg, o);
        t.Cpu.PointwiseConvForward(x.C, filters.C, z.C);
        t.Cpu.BatchNormTrainForward(z.C, y.C, pc, o);
        t.Set(yBuffer.Grad, t.Values(yBuffer.C.Count));
        float[] earlier = t.Values(xBuffer.C.Count); // what dx accumulates into
        float[] Read(in GpuHarness.Twin v) => GpuHarness.Get(t.Gpu, v.G);
        var results = new List<float[][]>();
        t.Gpu.Recorder = new LaunchRecorder();
        foreach (bool fuse in new[] { true, false })
        {
            t.Gpu.FuseGemmBatchNorm = fuse;
            t.Set(xBuffer.Grad, earlier);
            foreach (var v in new[] { filters.Grad, gamma.Grad, beta.Grad }) t.Poison(v);
            t.Gpu.PointwiseConvBatchNormBackward(x.G, filters.G, z.G, y.Grad.G, x.Grad.G, accumulate, filters.Grad.G, pg, o);
            results.Add([Read(xBuffer.Grad), Read(filters.Grad), Read(gamma.Grad), Read(beta.Grad)]);
        }
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).Where(k => k != "fill_view").ToArray(); // less the poisoning
        t.Gpu.Recorder = null;
        int fusedLaunches = Array.IndexOf(kernels, "batch_norm_bwd_reduce", 1);
        var (fusedKernels, unfusedKernels) = (kernels[..fusedLaunches], kernels[fusedLaunches..]);
        Assert.That(unfusedKernels, Does.Contain("batch_norm_bwd_data"), "the unfused path");
        if (h * w == 1) Assert.That(fusedKernels, Does.Contain("batch_norm_bwd_data"), "1 x 1 planes run unfused");
        else
        {
            Assert.That(fusedKernels, Has.None.EqualTo("batch_norm_bwd_data"), "z's gradient never written");
            Assert.That(fusedKernels.Where(k => k.StartsWith("gemm_")), Has.Exactly(2).Items.And.All.StartsWith("gemm_f32_bn_"), "both GEMMs load the batch norm's input gradient");
        }
        string[] names = ["dx", "dW", "dgamma", "dbeta"];
        for (int i = 0; i < 4; i++) Assert.That(results[0][i], Is.EqualTo(results[1][i]), names[i]);

        // Against the CPU from the same forward state (the devices' statistics differ in the last
        // bits, which moves a ReLU decision near zero now and then).
        foreach (var v in new[] { z, mean, invstd }) t.Mirror(v);
        t.Set(xBuffer.Grad, earlier);
        t.Gpu.FuseGemmBatchNorm = true;
        t.Gpu.PointwiseConvBatchNormBackward(x.G, filters.G, z.G, y.Grad.G, x.Grad.G, accumulate, filters.Grad.G, pg, o);
        t.Cpu.PointwiseConvBatchNormBackward(x.C, filters.C, z.C, y.Grad.C, x.Grad.C, accumulate, filters.Grad.C, pc, o);
        t.Compare("dx", xBuffer.Grad);
        t.Compare("dW", filters.Grad, WeightGradTolerance);
        t.Compare("dgamma", gamma.Grad, WeightGradTolerance);
        t.Compare("dbeta", beta.Grad, WeightGradTolerance);
        // An input without a gradient (none): only the parameters' gradients.
        t.Poison(filters.Grad);
        t.Gpu.PointwiseConvBatchNormBackward(x.G, filters.G, z.G, y.Grad.G, default, false, filters.Grad.G, pg, o);
        t.Cpu.PointwiseConvBatchNormBackward(x.C, filters.C, z.C, y.Grad.C, default, false, filters.Grad.C, pc, o);
        t.Compare("dW without dx", filters.Grad, WeightGradTolerance);
    }
}

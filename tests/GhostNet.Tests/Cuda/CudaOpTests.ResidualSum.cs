using GhostNet.Backends;
using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

public partial class CudaOpTests
{
    // v2.16: a bottleneck's residual sum is written in place of its last output. With an identity
    // shortcut, by the Ghost module's cheap operation: depthwise_conv_fwd_stats_apply writes the
    // intrinsic maps (the backward reads them) and them plus the shortcut into the sum's first
    // channels, batch_norm_apply the ghost maps plus the shortcut into the rest, and the ghost
    // maps' half of the concat is never written. The sum, the intrinsic maps, z and the
    // statistics must equal the unfused launches' (the concat, then add_views) bit for bit, the
    // sum's neighbouring channels stay untouched, and all match the CPU. Cases: k3 and k5 and the
    // generic kernel (k 7), ratio 2 with an even and an odd output (the concat's last channel
    // dropped), ratio 3 (channel multiplier 2, the last ghost map dropped), ReLU or not,
    // split statistics (2-3 chunks on the emulator's 4 SMs) and not. A sum written over its
    // addend (in place), and an addend that is the concat the kernels write or leave unwritten,
    // fall back to add_views.
    [TestCase(4, 3, 3, 64, 64, 3, 1, Activation.None, Activation.None, "apart")]
    [TestCase(2, 12, 11, 14, 13, 3, 1, Activation.Relu, Activation.None, "apart")]
    [TestCase(3, 5, 4, 15, 15, 5, 1, Activation.None, Activation.Relu, "apart")]
    [TestCase(8, 3, 5, 40, 40, 5, 2, Activation.Relu, Activation.Relu, "apart")]
    [TestCase(1, 4, 4, 11, 10, 7, 1, Activation.None, Activation.None, "apart")]
    [TestCase(2, 6, 5, 9, 9, 3, 1, Activation.None, Activation.None, "the sum")]
    [TestCase(2, 6, 5, 9, 9, 3, 1, Activation.Relu, Activation.None, "the concat")]
    public void Depthwise_conv_writing_a_residual_sum_equals_the_unfused_launches(int n, int init, int ghosts, int h, int w, int k, int multiplier,
        Activation inputAct, Activation act, string addendAt)
    {
        bool inPlace = addendAt == "the sum", apart = addendAt == "apart";
        using var t = GpuHarness.Create();
        int cheap = init * multiplier, channels = init + ghosts;
        var g = new ConvGeometry(k, 1, k / 2);
        var x = t.Random(n, init, h, w, 2f, 0.5f);
        var input = BatchNormTwins.Saved(t, init);
        var io = new BatchNormOptions(Activation: inputAct);
        var filters = t.Random(cheap, 1, k, k);
        var bn = BatchNormTwins.Create(t, cheap);
        float[] runningMean = GpuHarness.Get(t.Cpu, bn.RunningMean.C), runningVar = GpuHarness.Get(t.Cpu, bn.RunningVar.C);
        var o = new BatchNormOptions(Activation: act);
        // The sum a window of a wider buffer; its addend another's (or the sum itself, in place).
        float[] sumBefore = t.Values(n * (channels + 2) * h * w), addendValues = t.Values(n * (channels + 3) * h * w);
        var addendBuffer = t.New(n, channels + 3, h, w);
        var (fused, unfused) = (Path(), Path());
        (GpuHarness.Twin Concat, GpuHarness.Twin Z, GpuHarness.Twin SumBuffer) Path() =>
            (t.New(n, init + cheap, h, w), t.New(n, cheap, h, w), t.New(n, channels + 2, h, w));
        t.Gpu.Recorder = new LaunchRecorder();
        foreach (var (path, inKernel) in new[] { (fused, true), (unfused, false) })
        {
            t.Gpu.ResidualInBatchNorm = inKernel;
            t.Set(path.SumBuffer, sumBefore);
            t.Set(addendBuffer, addendValues);
            t.Set(bn.RunningMean, runningMean);
            t.Set(bn.RunningVar, runningVar);
            t.Poison(path.Concat);
            t.Poison(path.Z);
            var sum = path.SumBuffer.Channels(1, channels);
            var addend = apart ? addendBuffer.Channels(2, channels) : inPlace ? sum : path.Concat.Channels(0, channels);
            if (!inPlace) t.Poison(sum);
            var (y0, y) = (path.Concat.Channels(0, init), path.Concat.Channels(init, cheap));
            t.Gpu.DepthwiseConvBatchNormForward(new NormalizedInput(x.G, y0.G, input.Gpu, io), filters.G, path.Z.G, g, y.G, bn.Gpu, o, new ResidualSum(addend.G, sum.G));
        }
        t.Gpu.ResidualInBatchNorm = true;
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).Where(k => k != "fill_view").ToArray(); // less the poisoning
        t.Gpu.Recorder = null;
        string apply = CudaBackend.DepthwiseKernels[6][CudaBackend.DepthwiseVariant(g)];
        string[] unfusedKernels = [apply, "batch_norm_apply", "add_views"];
        Assert.That(kernels, Is.EqualTo((apart ? [apply, "batch_norm_apply"] : unfusedKernels).Concat(unfusedKernels)));

        float[] Read(in GpuHarness.Twin v) => GpuHarness.Get(t.Gpu, v.G);
        Assert.That(Read(fused.SumBuffer), Is.EqualTo(Read(unfused.SumBuffer)), "the sum, and its buffer's other channels");
        Assert.That(Read(fused.Z), Is.EqualTo(Read(unfused.Z)), "z");
        // The concat's channels [c0, c0 + count), image by image.
        float[] Window(float[] concat, int c0, int count) =>
            Enumerable.Range(0, n).SelectMany(i => concat.Skip((i * (init + cheap) + c0) * h * w).Take(count * h * w)).ToArray();
        Assert.That(Window(Read(fused.Concat), 0, init), Is.EqualTo(Window(Read(unfused.Concat), 0, init)), "the intrinsic maps");
        if (apart) Assert.That(Window(Read(fused.Concat), init, cheap).All(float.IsNaN), "the ghost maps' half of the concat is not written");
        // The channels on either side of the sum are untouched.
        bool Outside(int i)
        {
            int c = i % ((channels + 2) * h * w) / (h * w);
            return c == 0 || c == channels + 1;
        }
        Assert.That(Read(fused.SumBuffer).Where((_, i) => Outside(i)), Is.EqualTo(sumBefore.Where((_, i) => Outside(i))), "the sum's neighbours");

        // The fused run again with the CPU's, from the same start.
        t.Set(bn.RunningMean, runningMean);
        t.Set(bn.RunningVar, runningVar);
        t.Set(fused.SumBuffer, sumBefore);
        t.Set(addendBuffer, addendValues);
        var cpuSum = fused.SumBuffer.Channels(1, channels);
        var cpuAddend = apart ? addendBuffer.Channels(2, channels) : inPlace ? cpuSum : fused.Concat.Channels(0, channels);
        t.Gpu.DepthwiseConvBatchNormForward(new NormalizedInput(x.G, fused.Concat.Channels(0, init).G, input.Gpu, io), filters.G, fused.Z.G, g,
            fused.Concat.Channels(init, cheap).G, bn.Gpu, o, new ResidualSum(cpuAddend.G, cpuSum.G));
        t.Cpu.DepthwiseConvBatchNormForward(new NormalizedInput(x.C, fused.Concat.Channels(0, init).C, input.Cpu, io), filters.C, fused.Z.C, g,
            fused.Concat.Channels(init, cheap).C, bn.Cpu, o, new ResidualSum(cpuAddend.C, cpuSum.C));
        t.Compare("the sum (and its buffer)", fused.SumBuffer);
        t.Compare("z", fused.Z);
        double intrinsic = GpuHarness.RelativeError(Window(Read(fused.Concat), 0, init), Window(GpuHarness.Get(t.Cpu, fused.Concat.C), 0, init));
        Assert.That(intrinsic, Is.LessThanOrEqualTo(1e-5), "the intrinsic maps against the CPU");
        t.Compare("saved mean", bn.Mean);
        t.Compare("saved invstd", bn.InvStd);
        t.Compare("running mean", bn.RunningMean);
        t.Compare("running var", bn.RunningVar);
    }

    // v2.16, a projecting shortcut: its last batch norm's apply (after the pointwise GEMM) adds the
    // main branch and writes the sum in place of its output. The sum must equal the unfused
    // launches' (batch_norm_apply, then add_views) bit for bit, on both statistics paths (in the
    // GEMM, and batch_norm_stats after it), and match the CPU. An addend that is y itself (which
    // the fused apply leaves unwritten) falls back to add_views.
    [TestCase(8, 13, 7, 9, 11, Activation.Relu, true, false)]
    [TestCase(2, 24, 14, 13, 70, Activation.None, true, false)]
    [TestCase(4, 40, 7, 7, 20, Activation.None, false, false)]
    [TestCase(3, 9, 5, 6, 12, Activation.Relu, true, true)]
    public void Pointwise_conv_batch_norm_writing_a_residual_sum_equals_the_unfused_launches(int n, int cin, int h, int w, int cout, Activation act, bool statsInGemm, bool addendIsY)
    {
        using var t = GpuHarness.Create();
        var x = t.Random(n, cin, h, w);
        var filters = t.Random(cout, cin, 1, 1, 0.3f, 0.05f);
        var o = new BatchNormOptions(Activation: act);
        var bn = BatchNormTwins.Create(t, cout);
        float[] runningMean = GpuHarness.Get(t.Cpu, bn.RunningMean.C), runningVar = GpuHarness.Get(t.Cpu, bn.RunningVar.C);
        var addend = t.Random(n, cout + 1, h, w).Channels(1, cout);
        var (z, y) = (t.New(n, cout, h, w), t.New(n, cout, h, w));
        var sums = new[] { t.New(n, cout, h, w), t.New(n, cout, h, w) };
        t.Gpu.GemmBatchNormStatistics = statsInGemm;
        t.Gpu.Recorder = new LaunchRecorder();
        for (int run = 0; run < 2; run++)
        {
            t.Gpu.ResidualInBatchNorm = run == 0;
            t.Set(bn.RunningMean, runningMean);
            t.Set(bn.RunningVar, runningVar);
            t.Poison(y);
            t.Gpu.PointwiseConvBatchNormForward(x.G, filters.G, z.G, y.G, bn.Gpu, o, sum: new ResidualSum(addendIsY ? y.G : addend.G, sums[run].G));
            if (run == 0 && !addendIsY) Assert.That(GpuHarness.Get(t.Gpu, y.G).All(float.IsNaN), "y is not written");
        }
        t.Gpu.ResidualInBatchNorm = t.Gpu.GemmBatchNormStatistics = true;
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).Where(k => k != "fill_view" && !k.StartsWith("gemm_")).ToArray();
        t.Gpu.Recorder = null;
        string[] statistics = statsInGemm ? [] : ["batch_norm_stats"];
        string[] unfusedKernels = [.. statistics, "batch_norm_apply", "add_views"];
        Assert.That(kernels, Is.EqualTo((addendIsY ? unfusedKernels : [.. statistics, "batch_norm_apply"]).Concat(unfusedKernels)));
        Assert.That(GpuHarness.Get(t.Gpu, sums[0].G), Is.EqualTo(GpuHarness.Get(t.Gpu, sums[1].G)), "the sum");

        t.Cpu.PointwiseConvBatchNormForward(x.C, filters.C, z.C, y.C, bn.Cpu, o, sum: new ResidualSum(addendIsY ? y.C : addend.C, sums[0].C));
        t.Compare("z", z);
        t.Compare("the sum", sums[0]);
        t.Compare("saved mean", bn.Mean);
        t.Compare("saved invstd", bn.InvStd);
    }
}

using GhostNet.Backends;
using GhostNet.Cuda;
using GhostNet.Tests.Ops;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// Each CUDA kernel against its CPU twin on random shapes (odd sizes, channel windows, stride 2,
/// k 5, batch 1 and more). Tolerance 1e-5 relative; weight gradients, whose sums run over
/// N * H * W products in a different order on each side (chunked double on the CPU, fp32 tiles
/// on the GPU), get 1e-4.
/// </summary>
[Category("Gpu")]
public partial class CudaOpTests
{
    private const double WeightGradTolerance = 1e-4;

    /// <summary>A batch norm's parameters and statistics on both devices (fp32 whatever the activations are): gamma in [0.5, 1.5), running variance in [0.5, 2).</summary>
    internal sealed record BatchNormTwins(GpuHarness.Twin Gamma, GpuHarness.Twin Beta, GpuHarness.Twin RunningMean, GpuHarness.Twin RunningVar,
        GpuHarness.Twin Mean, GpuHarness.Twin InvStd)
    {
        public static BatchNormTwins Create(GpuHarness t, int c) =>
            new(t.RandomFp32(c, 1, 1, 1, 0.5f, 1f), t.RandomFp32(c, 1, 1, 1), t.RandomFp32(c, 1, 1, 1), t.RandomFp32(c, 1, 1, 1, 0.5f, 1.5f), t.NewFp32(c, 1, 1, 1), t.NewFp32(c, 1, 1, 1));

        /// <summary>With saved statistics as a training forward leaves them (mean in [0, 1), invstd in [0.5, 1.5)): a conv's input batch norm (v2.11, v2.12).</summary>
        public static BatchNormTwins Saved(GpuHarness t, int c)
        {
            var bn = Create(t, c);
            t.Set(bn.Mean, t.Values(c, 0.5f, 0.5f));
            t.Set(bn.InvStd, t.Values(c, 0.5f, 1f));
            return bn;
        }
        public BatchNormTensors Gpu => new(Gamma.G, Beta.G, RunningMean.G, RunningVar.G, Mean.G, InvStd.G);
        public BatchNormTensors Cpu => new(Gamma.C, Beta.C, RunningMean.C, RunningVar.C, Mean.C, InvStd.C);
        public BatchNormTensors On(bool gpu) => gpu ? Gpu : Cpu;
    }

    // The weight gradient splits K by groups of images to fill the device (the emulator's 4 SMs
    // want 8 blocks): 8 groups of 1 image at (8, 13 -> 11); none at (4, 240 -> 80), 8 tiles
    // already; 3 tiles at (5, 150 -> 20), so groups of 2, 2 and 1.
    [TestCase(1, 16, 112, 112, 24)]
    [TestCase(8, 13, 7, 9, 11)]
    [TestCase(4, 240, 14, 14, 80)]
    [TestCase(5, 150, 6, 5, 20)]
    public void Pointwise_conv_matches_cpu(int n, int cin, int h, int w, int cout)
    {
        using var t = GpuHarness.Create();
        var x = t.Random(n, cin, h, w);
        var wt = t.Random(cout, cin, 1, 1, 0.3f);
        var y = t.New(n, cout, h, w);
        t.Cpu.PointwiseConvForward(x.C, wt.C, y.C);
        t.Gpu.PointwiseConvForward(x.G, wt.G, y.G);
        t.Compare("y", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Set(x.Grad, t.Values(x.C.Count)); // accumulated into
        t.Cpu.PointwiseConvBackward(x.C, wt.C, y.Grad.C, x.Grad.C, true, wt.Grad.C);
        t.Gpu.PointwiseConvBackward(x.G, wt.G, y.Grad.G, x.Grad.G, true, wt.Grad.G);
        t.Compare("dx (accumulated)", x.Grad);
        t.Compare("dw", wt.Grad, WeightGradTolerance);
    }

    [Test]
    public void Kernels_read_and_write_channel_windows()
    {
        using var t = GpuHarness.Create();
        var wide = t.Random(3, 11, 6, 7);
        var wt = t.Random(5, 4, 1, 1);
        var outWide = t.Random(3, 9, 6, 7);
        t.Cpu.PointwiseConvForward(wide.C.Channels(2, 4), wt.C, outWide.C.Channels(3, 5));
        t.Gpu.PointwiseConvForward(wide.G.Channels(2, 4), wt.G, outWide.G.Channels(3, 5));
        t.Compare("whole output buffer (window written, rest untouched)", outWide);
        // The weight gradient's K runs over every image's window: image stride 11 * 42, not 4 * 42.
        t.Set(outWide.Grad, t.Values(outWide.C.Count));
        t.Cpu.PointwiseConvBackward(wide.C.Channels(2, 4), wt.C, outWide.Grad.C.Channels(3, 5), wide.Grad.C.Channels(2, 4), false, wt.Grad.C);
        t.Gpu.PointwiseConvBackward(wide.G.Channels(2, 4), wt.G, outWide.Grad.G.Channels(3, 5), wide.Grad.G.Channels(2, 4), false, wt.Grad.G);
        t.Compare("dw over windows", wt.Grad);
        var bn = t.Random(3, 9, 6, 7);
        t.Cpu.Relu(outWide.C.Channels(1, 6), bn.C.Channels(0, 6));
        t.Gpu.Relu(outWide.G.Channels(1, 6), bn.G.Channels(0, 6));
        t.Compare("relu between windows", bn);
    }

    // n, cin, h, w, cout, k, stride, im2col workspace bound (64 MiB: every image in one chunk;
    // 40,000 bytes: chunks of 4 images forward and 2 backward; 1: one image a chunk)
    [TestCase(8, 3, 224, 224, 16, 3, 2, 64 << 20)]
    [TestCase(2, 5, 9, 7, 6, 5, 1, 64 << 20)]
    [TestCase(1, 4, 13, 13, 8, 3, 2, 64 << 20)]
    [TestCase(5, 3, 20, 18, 6, 3, 2, 40_000)]
    [TestCase(3, 4, 11, 9, 5, 3, 1, 1)]
    public void Dense_conv_matches_cpu(int n, int cin, int h, int w, int cout, int k, int stride, int workspaceBytes)
    {
        using var t = GpuHarness.Create();
        t.Gpu.ConvWorkspaceBytes = workspaceBytes;
        var g = new ConvGeometry(k, stride, k / 2);
        var x = t.Random(n, cin, h, w);
        var wt = t.Random(cout, cin, k, k, 0.3f);
        var y = t.New(n, cout, g.OutputSize(h), g.OutputSize(w));
        t.Cpu.ConvForward(x.C, wt.C, y.C, g);
        t.Gpu.ConvForward(x.G, wt.G, y.G, g);
        t.Compare("y", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.ConvBackward(x.C, wt.C, y.Grad.C, x.Grad.C, false, wt.Grad.C, g);
        t.Gpu.ConvBackward(x.G, wt.G, y.Grad.G, x.Grad.G, false, wt.Grad.G, g);
        t.Compare("dx", x.Grad);
        t.Compare("dw", wt.Grad, WeightGradTolerance);
    }

    // n, c, h, w, k, stride, multiplier. The last two have few channels, so the weight gradient
    // splits each channel's positions into 2 chunks (the emulator's 4 SMs want 8 blocks).
    [TestCase(8, 72, 56, 56, 5, 2, 1)]
    [TestCase(1, 7, 11, 10, 3, 1, 1)]
    [TestCase(4, 12, 9, 9, 3, 2, 1)]
    [TestCase(2, 10, 14, 13, 5, 1, 1)]
    [TestCase(3, 6, 7, 7, 3, 1, 2)]
    [TestCase(4, 3, 48, 48, 3, 1, 1)]
    [TestCase(8, 2, 80, 70, 5, 2, 2)]
    // The generic kernels (depthwise_conv.cu's <0, 0>): k and stride at run time.
    [TestCase(2, 5, 9, 8, 1, 1, 1)]
    [TestCase(3, 4, 10, 11, 3, 3, 2)]
    [TestCase(2, 3, 12, 9, 5, 3, 1)]
    public void Depthwise_conv_matches_cpu(int n, int c, int h, int w, int k, int stride, int m)
    {
        using var t = GpuHarness.Create();
        var g = new ConvGeometry(k, stride, (k - 1) / 2);
        var x = t.Random(n, c, h, w);
        var wt = t.Random(c * m, 1, k, k);
        var y = t.New(n, c * m, g.OutputSize(h), g.OutputSize(w));
        t.Cpu.DepthwiseConvForward(x.C, wt.C, y.C, g);
        t.Gpu.DepthwiseConvForward(x.G, wt.G, y.G, g);
        t.Compare("y", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Set(x.Grad, t.Values(x.C.Count));
        t.Cpu.DepthwiseConvBackward(x.C, wt.C, y.Grad.C, x.Grad.C, true, wt.Grad.C, g);
        t.Gpu.DepthwiseConvBackward(x.G, wt.G, y.Grad.G, x.Grad.G, true, wt.Grad.G, g);
        t.Compare("dx (accumulated)", x.Grad);
        t.Compare("dw", wt.Grad, WeightGradTolerance);
    }

    // Few channels split each channel's values over blocks (the emulator's 4 SMs want 8 blocks):
    // 3 chunks of 5,462 values at (4, 3, 64, 64), 3 of 4,867 at (5, 2, 40, 73); none elsewhere.
    [TestCase(8, 16, 112, 112, Activation.Relu)]
    [TestCase(1, 5, 7, 3, Activation.None)]
    [TestCase(8, 13, 1, 1, Activation.Relu)]
    [TestCase(4, 3, 64, 64, Activation.Relu)]
    [TestCase(5, 2, 40, 73, Activation.None)]
    [TestCase(8, 13, 1, 1, Activation.HardSwish)]
    [TestCase(4, 3, 64, 64, Activation.HardSwish)] // split chunks, as the ReLU case above
    public void Batch_norm_matches_cpu(int n, int c, int h, int w, Activation act)
    {
        using var t = GpuHarness.Create();
        var x = t.Random(n, c, h, w, 2f, 0.5f);
        var y = t.New(n, c, h, w);
        var bn = BatchNormTwins.Create(t, c);
        var (gamma, beta, rm, rv) = (bn.Gamma, bn.Beta, bn.RunningMean, bn.RunningVar);
        BatchNormTensors P(bool gpu) => bn.On(gpu);
        var o = new BatchNormOptions(Activation: act);
        t.Cpu.BatchNormTrainForward(x.C, y.C, P(false), o);
        t.Gpu.BatchNormTrainForward(x.G, y.G, P(true), o);
        t.Compare("y", y);
        t.Compare("running mean", rm);
        t.Compare("running var", rv);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.BatchNormBackward(x.C, y.Grad.C, x.Grad.C, false, P(false), o);
        t.Gpu.BatchNormBackward(x.G, y.Grad.G, x.Grad.G, false, P(true), o);
        t.Compare("dx", x.Grad);
        t.Compare("dgamma", gamma.Grad, WeightGradTolerance);
        t.Compare("dbeta", beta.Grad, WeightGradTolerance);
        t.Poison(y);
        t.Cpu.BatchNormEvalForward(x.C, y.C, P(false), o);
        t.Gpu.BatchNormEvalForward(x.G, y.G, P(true), o);
        t.Compare("eval y", y);
    }

    // The fused ReLU's mask is recomputed from x in both backward kernels (BnAffine, v2.4): on
    // the device it must equal the unfused path (relu_bwd on the forward's y, then batch norm
    // without ReLU) exactly, split (3 chunks, as in Batch_norm_matches_cpu) and unsplit, also
    // where y is within rounding of zero.
    [TestCase(4, 3, 64, 64)]
    [TestCase(2, 24, 7, 7)]
    public void Batch_norm_relu_mask_from_x_equals_the_unfused_path(int n, int c, int h, int w)
    {
        using var t = GpuHarness.Create();
        var x = t.Random(n, c, h, w, 2f, 0.5f);
        var y = t.New(n, c, h, w);
        var masked = t.New(n, c, h, w);
        var bn = BatchNormTwins.Create(t, c);
        var (gamma, beta, mean, invstd, p) = (bn.Gamma, bn.Beta, bn.Mean, bn.InvStd, bn.Gpu);
        t.Gpu.BatchNormTrainForward(x.G, y.G, p, new BatchNormOptions(Activation: Activation.Relu));
        // Biases that put one element per channel within rounding of y = 0, where a multiply-add
        // would decide the sign differently from the forward's fma (ReluBoundary).
        float[] Read(in Tensor g) => GpuHarness.Get(t.Gpu, g);
        var xs = Read(x.G);
        int plane = h * w;
        var candidates = Enumerable.Range(0, c).Select(ch => xs.AsSpan(plane * (c * (n - 1) + ch), Math.Min(plane, 64)).ToArray()).ToArray(); // the last image's
        var (biases, splits) = ReluBoundary.Biases(candidates, Read(gamma.G), Read(mean.G), Read(invstd.G));
        Assert.That(splits, Is.All.True, "a bias that splits fma from multiply-add in every channel");
        t.Set(beta, biases);
        t.Gpu.BatchNormTrainForward(x.G, y.G, p, new BatchNormOptions(Activation: Activation.Relu));
        Assert.That(Read(y.G).Count(v => v == 0), Is.InRange(1, y.G.Count - 1), "the mask should cut some values");
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Poison(x.Grad);
        t.Gpu.BatchNormBackward(x.G, y.Grad.G, x.Grad.G, false, p, new BatchNormOptions(Activation: Activation.Relu));
        var (dx, dgamma, dbeta) = (Read(x.Grad.G), Read(gamma.Grad.G), Read(beta.Grad.G));
        t.Gpu.ReluBackward(y.G, y.Grad.G, masked.G, false);
        t.Poison(x.Grad);
        t.Gpu.BatchNormBackward(x.G, masked.G, x.Grad.G, false, p, new BatchNormOptions(Activation: Activation.None));
        Assert.That(dx, Is.EqualTo(Read(x.Grad.G)), "dx");
        Assert.That(dgamma, Is.EqualTo(Read(gamma.Grad.G)), "dgamma");
        Assert.That(dbeta, Is.EqualTo(Read(beta.Grad.G)), "dbeta");
    }

    // depthwise_conv_fwd_stats (v2.5) sums the batch norm's statistics inside the conv. It must
    // equal the unfused launches (depthwise_conv_fwd, batch_norm_stats, batch_norm_apply)
    // exactly: z, y, the saved and the running statistics. Both paths must also match the CPU.
    // Cases: each <k, stride> variant, the generic kernel (k 1; k 3 at stride 3), channel
    // multiplier 2, ReLU on and off, an input that is a channel window; split (fewer than 8
    // channels of at least 8,192 values: 2-3 chunks on the emulator's 4 SMs; k3s1, k5s1, k5s2
    // and the generic kernel) and unsplit.
    [TestCase(4, 3, 64, 64, 3, 1, 1, Activation.Relu)]
    [TestCase(2, 24, 14, 13, 3, 2, 1, Activation.None)]
    [TestCase(3, 8, 15, 15, 5, 1, 1, Activation.Relu)]
    [TestCase(8, 3, 40, 40, 5, 1, 1, Activation.None)]
    [TestCase(2, 6, 16, 11, 5, 2, 2, Activation.None)]
    [TestCase(8, 2, 64, 64, 5, 2, 2, Activation.Relu)]
    [TestCase(2, 5, 9, 9, 1, 1, 1, Activation.None)]
    [TestCase(12, 4, 96, 96, 3, 3, 1, Activation.Relu)]
    public void Depthwise_conv_with_batch_norm_statistics_equals_the_unfused_launches(int n, int cin, int h, int w, int k, int stride, int multiplier, Activation act)
    {
        using var t = GpuHarness.Create();
        int cout = cin * multiplier;
        var g = new ConvGeometry(k, stride, (k - 1) / 2);
        int ho = g.OutputSize(h), wo = g.OutputSize(w);
        var x = t.Random(n, cin + 3, h, w, 2f, 0.5f).Channels(2, cin); // a window, as the Ghost module's cheap operation reads
        var filters = t.Random(cout, 1, k, k);
        var gamma = t.Random(cout, 1, 1, 1, 0.5f, 1f);
        var beta = t.Random(cout, 1, 1, 1);
        float[] runningMean = t.Values(cout), runningVar = t.Values(cout, 0.5f, 1f);
        var o = new BatchNormOptions(Activation: act);
        var (fused, unfused) = (Path(), Path());
        (GpuHarness.Twin Z, GpuHarness.Twin Y, GpuHarness.Twin[] Stats, BatchNormTensors Gpu, BatchNormTensors Cpu) Path()
        {
            var stats = new[] { t.New(cout, 1, 1, 1), t.New(cout, 1, 1, 1), t.New(cout, 1, 1, 1), t.New(cout, 1, 1, 1) };
            t.Set(stats[2], runningMean);
            t.Set(stats[3], runningVar);
            return (t.New(n, cout, ho, wo), t.New(n, cout, ho, wo), stats,
                new(gamma.G, beta.G, stats[2].G, stats[3].G, stats[0].G, stats[1].G),
                new(gamma.C, beta.C, stats[2].C, stats[3].C, stats[0].C, stats[1].C));
        }
        t.Gpu.Recorder = new LaunchRecorder();
        foreach (var (path, fuse) in new[] { (fused, true), (unfused, false) })
        {
            t.Gpu.FuseDepthwiseBatchNorm = fuse;
            t.Poison(path.Z);
            t.Poison(path.Y);
            t.Gpu.DepthwiseConvBatchNormForward(x.G, filters.G, path.Z.G, g, path.Y.G, path.Gpu, o);
            t.Cpu.DepthwiseConvBatchNormForward(x.C, filters.C, path.Z.C, g, path.Y.C, path.Cpu, o);
        }
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).Where(k => k != "fill_view").ToArray(); // less the poisoning
        t.Gpu.Recorder = null;
        string stats = CudaBackend.DepthwiseKernels[3][CudaBackend.DepthwiseVariant(g)];
        Assert.That(kernels, Is.EqualTo(new[] { stats, "batch_norm_apply", CudaBackend.DepthwiseKernels[0][CudaBackend.DepthwiseVariant(g)], "batch_norm_stats", "batch_norm_apply" }));

        float[] Read(in GpuHarness.Twin v) => GpuHarness.Get(t.Gpu, v.G);
        Assert.That(Read(fused.Z), Is.EqualTo(Read(unfused.Z)), "z");
        Assert.That(Read(fused.Y), Is.EqualTo(Read(unfused.Y)), "y");
        string[] names = ["saved mean", "saved invstd", "running mean", "running var"];
        for (int i = 0; i < 4; i++) Assert.That(Read(fused.Stats[i]), Is.EqualTo(Read(unfused.Stats[i])), names[i]);
        t.Compare("z", fused.Z);
        t.Compare("y", fused.Y);
        for (int i = 0; i < 4; i++) t.Compare(names[i], fused.Stats[i]);
    }

    // The _bn depthwise backward kernels (v2.7) compute the conv's output gradient from the batch
    // norm's where they read it. dx, dW, dgamma and dbeta must equal the unfused launches
    // (batch_norm_bwd_reduce, batch_norm_bwd_data, depthwise_conv_bwd_data/_weight) exactly, and
    // match the CPU; so must the one-pass backward (v2.13, depthwise_conv_bwd_both_bn: stride 1,
    // same padding, multiplier 1), both gradients in one kernel. Cases as the forward's, with dx (a window) accumulated or written, and none;
    // the generic kernel at k 4 and, for the one-pass generic kernel, at k 1 (a 1x1 depthwise conv
    // before batch norm has dW = 0 exactly: the normalisation cancels any per-channel scale, so
    // there dW is compared between the GPU paths only, not with the CPU's rounding noise).
    [TestCase(4, 3, 64, 64, 3, 1, 1, Activation.Relu, true)]
    [TestCase(2, 24, 14, 13, 3, 2, 1, Activation.None, false)]
    [TestCase(3, 8, 15, 15, 5, 1, 1, Activation.Relu, false)]
    [TestCase(8, 3, 40, 40, 5, 1, 1, Activation.None, true)]
    [TestCase(2, 6, 16, 11, 5, 2, 2, Activation.None, true)]
    [TestCase(8, 2, 64, 64, 5, 2, 2, Activation.Relu, false)]
    [TestCase(2, 5, 9, 9, 4, 1, 1, Activation.Relu, false)]
    [TestCase(12, 4, 96, 96, 3, 3, 1, Activation.Relu, true)]
    [TestCase(3, 4, 40, 40, 1, 1, 1, Activation.Relu, true)]
    public void Depthwise_conv_backward_through_batch_norm_equals_the_unfused_launches(int n, int cin, int h, int w, int k, int stride, int multiplier, Activation act, bool accumulate)
    {
        using var t = GpuHarness.Create();
        int cout = cin * multiplier;
        var g = new ConvGeometry(k, stride, (k - 1) / 2);
        int ho = g.OutputSize(h), wo = g.OutputSize(w);
        var buffer = t.Random(n, cin + 3, h, w, 2f, 0.5f);
        var x = buffer.Channels(2, cin); // a window, as the Ghost module's cheap operation reads
        var filters = t.Random(cout, 1, k, k);
        var z = t.New(n, cout, ho, wo);
        // y a window too (the Ghost module's concat): dy's image stride is not z's.
        var yBuffer = t.New(n, cout + 2, ho, wo);
        var y = yBuffer.Channels(1, cout);
        var bn = BatchNormTwins.Create(t, cout);
        var (gamma, beta, mean, invstd, pg, pc) = (bn.Gamma, bn.Beta, bn.Mean, bn.InvStd, bn.Gpu, bn.Cpu);
        var o = new BatchNormOptions(Activation: act);
        t.Gpu.DepthwiseConvBatchNormForward(x.G, filters.G, z.G, g, y.G, pg, o);
        t.Cpu.DepthwiseConvBatchNormForward(x.C, filters.C, z.C, g, y.C, pc, o);
        t.Set(yBuffer.Grad, t.Values(yBuffer.C.Count));
        float[] earlier = t.Values(n * (cin + 3) * h * w); // the whole buffer of the window
        float[] Read(in GpuHarness.Twin v) => GpuHarness.Get(t.Gpu, v.G);
        var results = new List<float[][]>();
        t.Gpu.Recorder = new LaunchRecorder();
        // Fused in one pass (v2.13, where the geometry allows), fused in two kernels, unfused.
        foreach (var (fuse, onePass) in new[] { (true, true), (true, false), (false, false) })
        {
            t.Gpu.FuseDepthwiseBatchNorm = fuse;
            t.Gpu.DepthwiseBackwardInOnePass = onePass;
            t.Set(buffer.Grad, earlier);
            foreach (var v in new[] { filters.Grad, gamma.Grad, beta.Grad }) t.Poison(v);
            t.Gpu.DepthwiseConvBatchNormBackward(x.G, filters.G, z.G, g, y.Grad.G, x.Grad.G, accumulate, filters.Grad.G, pg, o);
            results.Add([Read(buffer.Grad), Read(filters.Grad), Read(gamma.Grad), Read(beta.Grad)]);
        }
        t.Gpu.DepthwiseBackwardInOnePass = true;
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).Where(k => k != "fill_view").ToArray(); // less the poisoning
        t.Gpu.Recorder = null;
        string Variant(int op) => CudaBackend.DepthwiseKernels[op][CudaBackend.DepthwiseVariant(g)];
        bool onePassFits = stride == 1 && k % 2 == 1 && multiplier == 1;
        string[] twoKernels = ["batch_norm_bwd_reduce", Variant(4), Variant(5)];
        Assert.That(kernels, Is.EqualTo((onePassFits ? ["batch_norm_bwd_reduce", Variant(8)] : twoKernels)
            .Concat(twoKernels).Concat(["batch_norm_bwd_reduce", "batch_norm_bwd_data", Variant(1), Variant(2)])));
        string[] names = ["dx", "dW", "dgamma", "dbeta"];
        for (int run = 1; run < 3; run++)
            for (int i = 0; i < 4; i++) Assert.That(results[0][i], Is.EqualTo(results[run][i]), $"{names[i]}, run {run}");

        // Against the CPU from the same forward state (the devices' statistics differ in the last
        // bits, which moves a ReLU decision near zero now and then).
        foreach (var v in new[] { z, mean, invstd }) t.Mirror(v);
        t.Set(buffer.Grad, earlier);
        t.Gpu.FuseDepthwiseBatchNorm = true;
        t.Gpu.DepthwiseConvBatchNormBackward(x.G, filters.G, z.G, g, y.Grad.G, x.Grad.G, accumulate, filters.Grad.G, pg, o);
        t.Cpu.DepthwiseConvBatchNormBackward(x.C, filters.C, z.C, g, y.Grad.C, x.Grad.C, accumulate, filters.Grad.C, pc, o);
        t.Compare("dx", buffer.Grad);
        if (k > 1) t.Compare("dW", filters.Grad, WeightGradTolerance);
        t.Compare("dgamma", gamma.Grad, WeightGradTolerance);
        t.Compare("dbeta", beta.Grad, WeightGradTolerance);
        // An input without a gradient (none): only the parameters' gradients.
        t.Poison(filters.Grad);
        t.Gpu.DepthwiseConvBatchNormBackward(x.G, filters.G, z.G, g, y.Grad.G, default, false, filters.Grad.G, pg, o);
        t.Cpu.DepthwiseConvBatchNormBackward(x.C, filters.C, z.C, g, y.Grad.C, default, false, filters.Grad.C, pc, o);
        if (k > 1) t.Compare("dW without dx", filters.Grad, WeightGradTolerance);
        else Assert.That(GpuHarness.Get(t.Gpu, filters.Grad.G).All(float.IsFinite), "dW without dx written");
    }

    /// <summary>
    /// max_pool and max_pool_bwd against the CPU twin bit for bit (the same choices, the same
    /// order of sums): VGG's 2x2 stride 2 on a channel window, overlapping 3x3 windows with
    /// padding, accumulated, and inputs with ties (small integers), NaN and -inf.
    /// </summary>
    [TestCase(4, 16, 32, 32, 2, 2, 0, false, false)]
    [TestCase(2, 5, 9, 7, 3, 2, 1, true, false)]
    [TestCase(3, 4, 8, 8, 2, 2, 0, false, true)]
    [TestCase(2, 3, 7, 6, 3, 1, 1, true, true)]
    public void Max_pool_matches_cpu(int n, int c, int h, int w, int k, int stride, int pad, bool accumulate, bool ties)
    {
        using var t = GpuHarness.Create();
        var g = new ConvGeometry(k, stride, pad);
        var buffer = t.Random(n, c + 3, h, w);
        var x = buffer.Channels(2, c);
        if (ties)
        {
            var values = t.Values(buffer.C.Count).Select(v => MathF.Round(v * 2)).ToArray();
            for (int i = 0; i < values.Length; i += 17) values[i] = i % 34 == 0 ? float.NaN : float.NegativeInfinity;
            t.Set(buffer, values);
        }
        var y = t.New(n, c, g.OutputSize(h), g.OutputSize(w));
        t.Cpu.MaxPool(x.C, y.C, g); t.Gpu.MaxPool(x.G, y.G, g);
        Assert.That(GpuHarness.Get(t.Gpu, y.G), Is.EqualTo(GpuHarness.Get(t.Cpu, y.C)), "y (NaN where NaN)");
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Set(buffer.Grad, t.Values(buffer.C.Count));
        t.Cpu.MaxPoolBackward(x.C, y.Grad.C, x.Grad.C, accumulate, g); t.Gpu.MaxPoolBackward(x.G, y.Grad.G, x.Grad.G, accumulate, g);
        Assert.That(GpuHarness.Get(t.Gpu, buffer.Grad.G), Is.EqualTo(GpuHarness.Get(t.Cpu, buffer.Grad.C)), "dx and the channels beside the window");
    }

    [TestCase(1, 72, 28, 28, 20)]
    [TestCase(8, 960, 7, 7, 240)]
    public void Squeeze_excite_ops_match_cpu(int n, int c, int h, int w, int reduced)
    {
        using var t = GpuHarness.Create();
        var x = t.Random(n, c, h, w);
        var pooled = t.New(n, c, 1, 1);
        var w1 = t.Random(reduced, c, 1, 1, 0.3f);
        var b1 = t.Random(reduced, 1, 1, 1, 0.3f);
        var r = t.New(n, reduced, 1, 1);
        var gate = t.New(n, c, 1, 1);
        var y = t.New(n, c, h, w);
        t.Cpu.GlobalAvgPool(x.C, pooled.C); t.Gpu.GlobalAvgPool(x.G, pooled.G);
        t.Compare("pool", pooled);
        t.Cpu.LinearForward(pooled.C, w1.C, b1.C, r.C); t.Gpu.LinearForward(pooled.G, w1.G, b1.G, r.G);
        t.Compare("conv_reduce", r);
        var e = t.Random(n, c, 1, 1, 5f);
        t.Cpu.HardSigmoid(e.C, gate.C); t.Gpu.HardSigmoid(e.G, gate.G);
        t.Compare("hard sigmoid", gate);
        t.Cpu.ChannelScale(x.C, gate.C, y.C); t.Gpu.ChannelScale(x.G, gate.G, y.G);
        t.Compare("scale", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.ChannelScaleBackward(x.C, gate.C, y.Grad.C, x.Grad.C, false, gate.Grad.C);
        t.Gpu.ChannelScaleBackward(x.G, gate.G, y.Grad.G, x.Grad.G, false, gate.Grad.G);
        t.Compare("scale dx", x.Grad);
        t.Compare("scale dgate", gate.Grad, WeightGradTolerance);
        t.Cpu.HardSigmoidBackward(e.C, gate.Grad.C, e.Grad.C, false); t.Gpu.HardSigmoidBackward(e.G, gate.Grad.G, e.Grad.G, false);
        t.Compare("hard sigmoid dx", e.Grad);
        t.Set(pooled.Grad, t.Values(pooled.C.Count));
        t.Cpu.GlobalAvgPoolBackward(pooled.Grad.C, x.Grad.C, true); t.Gpu.GlobalAvgPoolBackward(pooled.Grad.G, x.Grad.G, true);
        t.Compare("pool dx (accumulated)", x.Grad);
        var rr = t.New(n, reduced, 1, 1);
        t.Cpu.Relu(r.C, rr.C); t.Gpu.Relu(r.G, rr.G);
        t.Compare("relu", rr);
        t.Set(rr.Grad, t.Values(rr.C.Count));
        t.Cpu.ReluBackward(rr.C, rr.Grad.C, r.Grad.C, false); t.Gpu.ReluBackward(rr.G, rr.Grad.G, r.Grad.G, false);
        t.Compare("relu dx", r.Grad);
    }

    [TestCase(8, 1280, 1000)]
    [TestCase(3, 37, 10)]
    public void Linear_matches_cpu(int n, int k, int m)
    {
        using var t = GpuHarness.Create();
        var x = t.Random(n, k, 1, 1);
        var w = t.Random(m, k, 1, 1, 0.1f);
        var b = t.Random(m, 1, 1, 1);
        var y = t.New(n, m, 1, 1);
        t.Cpu.LinearForward(x.C, w.C, b.C, y.C); t.Gpu.LinearForward(x.G, w.G, b.G, y.G);
        t.Compare("y", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.LinearBackward(x.C, w.C, y.Grad.C, x.Grad.C, false, w.Grad.C, b.Grad.C);
        t.Gpu.LinearBackward(x.G, w.G, y.Grad.G, x.Grad.G, false, w.Grad.G, b.Grad.G);
        t.Compare("dx", x.Grad);
        t.Compare("dw", w.Grad, WeightGradTolerance);
        t.Compare("db", b.Grad, WeightGradTolerance);
    }

    // Each of gemm.cu's tile shapes, picked by the forward's M = n (samples) and N = m (outputs);
    // the backward runs the transposed layouts (A^T, B^T) and dW (K = n samples) in split-K
    // pieces: 8 pieces of 640 samples for 5,000 (a single 16x16 tile wants 8 blocks on the
    // emulator's 4 SMs; more than CudaBackend.MaxKPiece would need at least 2), 5 of 256 for 1,264.
    [TestCase(64, 40, 64, 64, 64)]
    [TestCase(30, 17, 128, 32, 128)]
    [TestCase(128, 33, 30, 128, 32)]
    [TestCase(16, 9, 256, 16, 256)]
    [TestCase(256, 21, 16, 256, 16)]
    [TestCase(30, 50, 30, 32, 32)]
    [TestCase(10, 7, 12, 16, 16)]
    [TestCase(5000, 3, 4, 256, 16)]
    [TestCase(1264, 5, 6, 256, 16)]
    public void Every_gemm_tile_matches_cpu(int n, int k, int m, int tileM, int tileN)
    {
        Assert.That(GhostNet.Cuda.CudaBackend.PickTile(n, m), Is.EqualTo((tileM, tileN)), "the shape exercises the tile it is meant to");
        Linear_matches_cpu(n, k, m);
    }

    [Test]
    public void Elementwise_ops_match_cpu()
    {
        using var t = GpuHarness.Create();
        var a = t.Random(3, 5, 7, 9);
        var b = t.Random(3, 5, 7, 9);
        var y = t.New(3, 5, 7, 9);
        t.Cpu.Add(a.C, b.C, y.C); t.Gpu.Add(a.G, b.G, y.G);
        t.Compare("add", y);
        // Channel windows of wider buffers, each with its own image stride (8, 6 and 9 channels).
        var wa = t.Random(3, 8, 7, 9);
        var wb = t.Random(3, 6, 7, 9);
        var wy = t.Random(3, 9, 7, 9);
        t.Cpu.Add(wa.C.Channels(2, 5), wb.C.Channels(1, 5), wy.C.Channels(4, 5)); t.Gpu.Add(wa.G.Channels(2, 5), wb.G.Channels(1, 5), wy.G.Channels(4, 5));
        t.Compare("add of windows (whole output buffer)", wy);
        t.Cpu.CopyOrAccumulate(a.C, y.C, true); t.Gpu.CopyOrAccumulate(a.G, y.G, true);
        t.Compare("accumulate", y);
        t.Cpu.Fill(y.C, 0.25f); t.Gpu.Fill(y.G, 0.25f);
        t.Compare("fill", y);
    }

    [Test]
    public void Dropout_draws_the_same_mask_as_the_cpu()
    {
        using var t = GpuHarness.Create();
        var x = t.Random(16, 1280, 1, 1);
        var y = t.New(16, 1280, 1, 1);
        t.Cpu.DropoutForward(x.C, y.C, 0.2f, 987654321UL); t.Gpu.DropoutForward(x.G, y.G, 0.2f, 987654321UL);
        t.Compare("y", y, 0);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.DropoutBackward(y.Grad.C, x.Grad.C, false, 0.2f, 987654321UL); t.Gpu.DropoutBackward(y.Grad.G, x.Grad.G, false, 0.2f, 987654321UL);
        t.Compare("dx", x.Grad, 0);
    }

    [TestCase(16, 1000, 0.1f)]
    [TestCase(5, 10, 0f)]
    public void Cross_entropy_and_top_k_match_cpu(int n, int k, float smoothing)
    {
        using var t = GpuHarness.Create();
        var z = t.Random(n, k, 1, 1, 4f);
        var labels = t.New(n, 1, 1, 1);
        t.SetInts(labels, Enumerable.Range(0, n).Select(_ => t.Rng.Next(k)).ToArray());
        var losses = t.New(n, 1, 1, 1);
        t.Cpu.SoftmaxCrossEntropy(z.C, labels.C, losses.C, z.Grad.C, smoothing);
        t.Gpu.SoftmaxCrossEntropy(z.G, labels.G, losses.G, z.Grad.G, smoothing);
        t.Compare("losses", losses);
        t.Compare("dz", z.Grad);
        var ranks = t.New(n, 1, 1, 1);
        t.Cpu.TopKRank(z.C, labels.C, ranks.C); t.Gpu.TopKRank(z.G, labels.G, ranks.G);
        var rc = new int[n]; var rg = new int[n];
        t.Cpu.DownloadInts(ranks.C, rc); t.Gpu.DownloadInts(ranks.G, rg);
        Assert.That(rg, Is.EqualTo(rc));
    }

    [TestCase(3, 5, 7)]   // 315 bytes: the last element is partly padding
    [TestCase(2, 32, 32)]
    public void Normalize_images_matches_its_cpu_twin_bit_for_bit(int n, int h, int w)
    {
        using var t = GpuHarness.Create();
        var bytes = new byte[(n * 3 * h * w + 3) / 4 * 4];
        t.Rng.NextBytes(bytes);
        bytes[0] = 0;
        bytes[1] = 255; // both ends of the range
        var pixels = t.New(1, 1, 1, bytes.Length / 4);
        t.SetInts(pixels, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(bytes).ToArray());
        var images = t.New(n, 3, h, w);
        t.Cpu.NormalizeImages(pixels.C, images.C, Normalization.Cifar10);
        t.Gpu.NormalizeImages(pixels.G, images.G, Normalization.Cifar10);
        t.Compare("images", images, 0);
        // The twin is the data layer's arithmetic: image 0 as Normalization.Normalize makes it.
        var expected = new float[3 * h * w];
        Normalization.Cifar10.Normalize(bytes.AsSpan(0, 3 * h * w), expected, h, w);
        Assert.That(GpuHarness.Get(t.Gpu, images.G).Take(3 * h * w), Is.EqualTo(expected));
    }

    [TestCase(1)]
    [TestCase(300)] // more samples than threads: each thread sums several
    public void Batch_totals_match_cpu_and_read_back_without_a_synchronisation(int n)
    {
        using var t = GpuHarness.Create();
        var losses = t.Random(n, 1, 1, 1, 3f, 3f);
        var ranks = t.New(n, 1, 1, 1);
        t.SetInts(ranks, Enumerable.Range(0, n).Select(i => i % 7 == 6 ? int.MaxValue : t.Rng.Next(8)).ToArray());
        var totals = t.New(1, BatchTotals.Words, 1, 1);
        t.Cpu.SumBatch(losses.C, ranks.C, totals.C); t.Gpu.SumBatch(losses.G, ranks.G, totals.G);
        using var cpuRead = t.Cpu.CreateReadback(totals.C);
        using var gpuRead = t.Gpu.CreateReadback(totals.G);
        cpuRead.Start(); gpuRead.Start();
        var (c, g) = (BatchTotals.Read(cpuRead.Wait()), BatchTotals.Read(gpuRead.Wait()));
        Assert.That((g.Top1, g.Top5), Is.EqualTo((c.Top1, c.Top5)));
        if (n > 1) Assert.That(c.Top5, Is.GreaterThan(c.Top1));
        Assert.That(g.LossSum, Is.EqualTo(c.LossSum).Within(1e-12).Percent, "double sums in another order");
        // A NaN loss makes the sum NaN: the trainer's stop needs nothing else.
        t.Set(losses, Enumerable.Range(0, n).Select(i => i == n / 2 ? float.NaN : 1f).ToArray());
        t.Gpu.SumBatch(losses.G, ranks.G, totals.G);
        gpuRead.Start();
        Assert.That(BatchTotals.Read(gpuRead.Wait()).LossSum, Is.NaN);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Sgd_matches_cpu(bool nesterov)
    {
        using var t = GpuHarness.Create();
        var p = t.Random(1, 1, 1, 100_003);
        var m = t.Random(1, 1, 1, 100_003, 0.1f);
        t.Set(p.Grad, t.Values(p.C.Count));
        var h = new SgdHyper(0.05f, 0.9f, 4e-5f, nesterov);
        for (int i = 0; i < 3; i++)
        {
            t.Cpu.SgdStep(p.C, p.Grad.C, m.C, h);
            t.Gpu.SgdStep(p.G, p.Grad.G, m.G, h);
        }
        t.Compare("parameters", p);
        t.Compare("momentum", m);
    }
}

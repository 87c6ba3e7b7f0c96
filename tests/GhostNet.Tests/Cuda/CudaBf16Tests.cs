using GhostNet.Backends;
using GhostNet.Cuda;
using GhostNet.Cuda.Interop;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// bf16 activations (issue 13, --precision bf16): common.cuh's bf16 conversion against its host
/// twin at every kind of value, and each kernel's bf16 variant against the fp32 CPU twin from the
/// same inputs: every output the CPU's value rounded once to bf16 (GpuHarness.CompareBf16).
/// </summary>
[Category("Gpu")]
public unsafe class CudaBf16Tests
{
    private const string ConversionSource = """
        #include "common.cuh"
        // bits[i]: bf16(x[i]).bits; back[i]: that bf16 read as a float.
        KERNEL void to_bf16(const float* x, unsigned* bits, float* back, int n)
        {
            for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
            {
                bf16 b = x[i];
                bits[i] = b.bits;
                back[i] = b;
            }
        }
        """;

    /// <summary>Every bf16 pattern with the low halves that decide a rounding: exact, just under and over a tie, the tie, the largest.</summary>
    private static float[] Patterns()
    {
        uint[] lows = [0x0000, 0x7FFF, 0x8000, 0x8001, 0xFFFF];
        var values = new List<float>();
        for (uint high = 0; high < 0x10000; high++)
            foreach (uint low in lows) values.Add(BitConverter.UInt32BitsToSingle(high << 16 | low));
        return values.ToArray();
    }

    [Test]
    public void The_device_conversion_equals_the_host_twin_for_every_bf16_and_every_tie()
    {
        GpuHarness.RequireGpu();
        using var backend = new CudaBackend(0);
        var image = RuntimeCompiler.Compile("bf16.cu", ConversionSource, KernelSources.Headers, CudaProbe.Status.Devices[0].Architecture, ["-DEMU_RACECHECK=0"]);
        using var module = new CudaModule("bf16.cu", image);
        var x = Patterns();
        int n = x.Length;
        ulong px = GpuHarness.Allocate(n), pbits = GpuHarness.Allocate(n), pback = GpuHarness.Allocate(n);
        try
        {
            GpuHarness.Write(px, x);
            ulong count = (ulong)n;
            var args = new[] { px, pbits, pback, count };
            void** pointers = stackalloc void*[args.Length];
            fixed (ulong* values = args)
            {
                for (int i = 0; i < args.Length; i++) pointers[i] = values + i;
                CudaException.Check(Driver.cuLaunchKernel(module.Function("to_bf16"), 64, 1, 1, 256, 1, 1, 0, IntPtr.Zero, pointers, null), "cuLaunchKernel", "to_bf16");
            }
            CudaException.Check(Driver.cuCtxSynchronize(), "cuCtxSynchronize");
            var bits = GpuHarness.Read(pbits, n).Select(BitConverter.SingleToUInt32Bits).ToArray();
            var back = GpuHarness.Read(pback, n);
            var failures = new List<string>();
            for (int i = 0; i < n && failures.Count < 20; i++)
            {
                ushort expected = BFloat16.FromFloat(x[i]);
                if (bits[i] != expected || BitConverter.SingleToUInt32Bits(back[i]) != (uint)expected << 16)
                    failures.Add($"0x{BitConverter.SingleToUInt32Bits(x[i]):X8}: device 0x{bits[i]:X4} (read back 0x{BitConverter.SingleToUInt32Bits(back[i]):X8}), host 0x{expected:X4}");
            }
            Assert.That(failures, Is.Empty, string.Join("\n", failures));
        }
        finally
        {
            Driver.cuMemFree(px);
            Driver.cuMemFree(pbits);
            Driver.cuMemFree(pback);
        }
    }

    [Test]
    public void Elementwise_ops_in_bf16_are_the_fp32_results_rounded_once()
    {
        using var t = GpuHarness.Create(ElementType.BFloat16);
        var a = t.Random(3, 5, 7, 9);
        var b = t.Random(3, 5, 7, 9);
        var y = t.New(3, 5, 7, 9);
        t.Cpu.Add(a.C, b.C, y.C); t.Gpu.Add(a.G, b.G, y.G);
        t.CompareBf16("add (the CPU's bits, rounded)", y, ulps: 0);
        var wa = t.Random(3, 8, 7, 9);
        var wb = t.Random(3, 6, 7, 9);
        var wy = t.Random(3, 9, 7, 9);
        t.Cpu.Add(wa.C.Channels(2, 5), wb.C.Channels(1, 5), wy.C.Channels(4, 5)); t.Gpu.Add(wa.G.Channels(2, 5), wb.G.Channels(1, 5), wy.G.Channels(4, 5));
        t.CompareBf16("add of windows (whole output buffer)", wy);
        t.Cpu.CopyOrAccumulate(a.C, y.C, true); t.Gpu.CopyOrAccumulate(a.G, y.G, true);
        t.CompareBf16("accumulate", y);
        t.Cpu.Fill(y.C, 0.3f); t.Gpu.Fill(y.G, 0.3f);
        t.CompareBf16("fill", y);
        var r = t.RandomNonFinite(2, 6, 5, 5, 6);
        var rr = t.New(2, 6, 5, 5);
        t.Cpu.Relu(r.C, rr.C); t.Gpu.Relu(r.G, rr.G);
        t.CompareBf16("relu (NaN and infinities among the inputs)", rr, ulps: 0);
        t.Set(rr.Grad, t.Values(rr.C.Count));
        t.Cpu.ReluBackward(rr.C, rr.Grad.C, r.Grad.C, false); t.Gpu.ReluBackward(rr.G, rr.Grad.G, r.Grad.G, false);
        t.CompareBf16("relu dx", r.Grad);
    }

    [Test]
    public void Squeeze_excite_and_pooling_in_bf16_are_the_fp32_results_rounded_once()
    {
        const int n = 3, c = 12, h = 7, w = 6;
        using var t = GpuHarness.Create(ElementType.BFloat16);
        var x = t.Random(n, c, h, w);
        var pooled = t.New(n, c, 1, 1);
        t.Cpu.GlobalAvgPool(x.C, pooled.C); t.Gpu.GlobalAvgPool(x.G, pooled.G);
        t.CompareBf16("pool", pooled);
        var e = t.Random(n, c, 1, 1, 5f);
        var gate = t.New(n, c, 1, 1);
        t.Cpu.HardSigmoid(e.C, gate.C); t.Gpu.HardSigmoid(e.G, gate.G);
        t.CompareBf16("hard sigmoid", gate);
        var y = t.New(n, c, h, w);
        t.Cpu.ChannelScale(x.C, gate.C, y.C); t.Gpu.ChannelScale(x.G, gate.G, y.G);
        t.CompareBf16("scale", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.ChannelScaleBackward(x.C, gate.C, y.Grad.C, x.Grad.C, false, gate.Grad.C);
        t.Gpu.ChannelScaleBackward(x.G, gate.G, y.Grad.G, x.Grad.G, false, gate.Grad.G);
        t.CompareBf16("scale dx", x.Grad);
        t.CompareBf16("scale dgate (a sum in double, rounded once)", gate.Grad);
        t.Cpu.HardSigmoidBackward(e.C, gate.Grad.C, e.Grad.C, false); t.Gpu.HardSigmoidBackward(e.G, gate.Grad.G, e.Grad.G, false);
        t.CompareBf16("hard sigmoid dx", e.Grad);
        t.Set(pooled.Grad, t.Values(pooled.C.Count));
        t.Cpu.GlobalAvgPoolBackward(pooled.Grad.C, x.Grad.C, true); t.Gpu.GlobalAvgPoolBackward(pooled.Grad.G, x.Grad.G, true);
        t.CompareBf16("pool dx (accumulated)", x.Grad);
        var dx = t.Random(n, c, h, w);
        t.Cpu.ChannelScaleAndPoolBackward(gate.C, y.Grad.C, pooled.Grad.C, dx.C, true);
        t.Gpu.ChannelScaleAndPoolBackward(gate.G, y.Grad.G, pooled.Grad.G, dx.G, true);
        t.CompareBf16("channel_scale_pool_bwd (accumulated)", dx);
        var g = new ConvGeometry(3, 2, 1);
        var m = t.New(n, c, g.OutputSize(h), g.OutputSize(w));
        t.Cpu.MaxPool(x.C, m.C, g); t.Gpu.MaxPool(x.G, m.G, g);
        t.CompareBf16("max pool (one of its inputs, exactly)", m, ulps: 0);
        t.Set(m.Grad, t.Values(m.C.Count));
        t.Cpu.MaxPoolBackward(x.C, m.Grad.C, dx.C, true, g); t.Gpu.MaxPoolBackward(x.G, m.Grad.G, dx.G, true, g);
        t.CompareBf16("max pool dx (overlapping windows' sum, accumulated)", dx);
    }

    [Test]
    public void Normalized_images_in_bf16_are_the_twin_rounded_once()
    {
        const int n = 2, h = 9, w = 7;
        using var t = GpuHarness.Create(ElementType.BFloat16);
        var bytes = new byte[(n * 3 * h * w + 3) / 4 * 4];
        t.Rng.NextBytes(bytes);
        var pixels = t.NewFp32(1, 1, 1, bytes.Length / 4); // bytes, four to an fp32 word whatever the activations are
        t.SetInts(pixels, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(bytes).ToArray());
        var images = t.New(n, 3, h, w);
        t.Cpu.NormalizeImages(pixels.C, images.C, Normalization.ImageNet);
        t.Gpu.NormalizeImages(pixels.G, images.G, Normalization.ImageNet);
        t.CompareBf16("images (the twin's bits, rounded)", images, ulps: 0);
    }

    [Test]
    public void A_bf16_backend_refuses_a_view_of_the_other_type_at_its_launch()
    {
        using var t = GpuHarness.Create(ElementType.BFloat16);
        var fp32 = t.RandomFp32(2, 3, 4, 4);
        var x = t.Random(2, 3, 4, 4);
        var y = t.New(2, 3, 4, 4);
        var asActivation = Assert.Throws<InvalidOperationException>(() => t.Gpu.Relu(fp32.G, y.G));
        Assert.That(asActivation!.Message, Does.Contain("holds fp32").And.Contain("bf16 activations"));
        var bn = CudaOpTests.BatchNormTwins.Create(t, 3).Gpu;
        var asParameter = Assert.Throws<InvalidOperationException>(() => t.Gpu.BatchNormEvalForward(x.G, y.G, bn with { Weight = x.G.Channels(0, 1) }, new BatchNormOptions()));
        Assert.That(asParameter!.Message, Does.Contain("holds bf16, where the kernel reads fp32"));
        // Fill picks its kernel by the view's type: a parameter and an activation alike.
        t.Gpu.Fill(fp32.G, 0.3f);
        t.Gpu.Fill(y.G, 0.3f);
        Assert.That(GpuHarness.Get(t.Gpu, fp32.G), Is.All.EqualTo(0.3f));
        Assert.That(GpuHarness.Get(t.Gpu, y.G), Is.All.EqualTo(BFloat16.Round(0.3f)));
    }

    [TestCase(8, 16, 28, 28, Activation.Relu)]
    [TestCase(4, 3, 64, 64, Activation.None)] // three chunks a channel
    [TestCase(8, 16, 28, 28, Activation.HardSwish)]
    public void Batch_norm_in_bf16_is_the_fp32_result_rounded(int n, int c, int h, int w, Activation act)
    {
        using var t = GpuHarness.Create(ElementType.BFloat16);
        var x = t.Random(n, c, h, w, 2f, 0.5f);
        var y = t.New(n, c, h, w);
        var bn = CudaOpTests.BatchNormTwins.Create(t, c);
        var o = new BatchNormOptions(Activation: act);
        t.Cpu.BatchNormTrainForward(x.C, y.C, bn.Cpu, o);
        t.Gpu.BatchNormTrainForward(x.G, y.G, bn.Gpu, o);
        t.Compare("saved mean (fp32, from the same bf16 inputs)", bn.Mean);
        t.Compare("running var", bn.RunningVar);
        t.CompareBf16("y", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.BatchNormBackward(x.C, y.Grad.C, x.Grad.C, false, bn.Cpu, o);
        t.Gpu.BatchNormBackward(x.G, y.Grad.G, x.Grad.G, false, bn.Gpu, o);
        t.Compare("dgamma (fp32)", bn.Gamma.Grad, 1e-4);
        t.Compare("dbeta (fp32)", bn.Beta.Grad, 1e-4);
        t.CompareBf16("dx", x.Grad);
        t.Cpu.BatchNormEvalForward(x.C, y.C, bn.Cpu, o);
        t.Gpu.BatchNormEvalForward(x.G, y.G, bn.Gpu, o);
        t.CompareBf16("eval y", y);
    }

    // The generic kernel and the (3, 1), (5, 2) variants, with a channel multiplier.
    [TestCase(2, 5, 9, 8, 1, 1, 1)]
    [TestCase(3, 4, 10, 11, 3, 1, 2)]
    [TestCase(2, 3, 12, 9, 5, 2, 1)]
    public void Depthwise_conv_in_bf16_is_the_fp32_result_rounded(int n, int c, int h, int w, int k, int stride, int m)
    {
        using var t = GpuHarness.Create(ElementType.BFloat16);
        var g = new ConvGeometry(k, stride, (k - 1) / 2);
        var x = t.Random(n, c, h, w);
        var wt = t.RandomFp32(c * m, 1, k, k);
        var y = t.New(n, c * m, g.OutputSize(h), g.OutputSize(w));
        t.Cpu.DepthwiseConvForward(x.C, wt.C, y.C, g);
        t.Gpu.DepthwiseConvForward(x.G, wt.G, y.G, g);
        t.CompareBf16("y", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Set(x.Grad, t.Values(x.C.Count));
        t.Cpu.DepthwiseConvBackward(x.C, wt.C, y.Grad.C, x.Grad.C, true, wt.Grad.C, g);
        t.Gpu.DepthwiseConvBackward(x.G, wt.G, y.Grad.G, x.Grad.G, true, wt.Grad.G, g);
        t.CompareBf16("dx (accumulated)", x.Grad);
        t.Compare("dw (fp32, from the same bf16 inputs)", wt.Grad, 1e-4);
    }

    /// <summary>
    /// The fused depthwise + batch norm forward: z is the fp32 sum rounded once, its statistics
    /// come from the fp32 sums (as the CPU's from its fp32 z), y is normalised from the bf16 z, so
    /// y is held to bf16's precision in norm (2^-8), not per element. The backward then starts
    /// from the GPU's z on both sides (CompareBf16 hands it to the CPU), so dx is one rounding again.
    /// </summary>
    [TestCase(4, 8, 15, 15, 3, Activation.Relu)]
    [TestCase(3, 6, 16, 11, 5, Activation.None)]
    public void Depthwise_conv_with_batch_norm_in_bf16_tracks_fp32(int n, int c, int h, int w, int k, Activation act)
    {
        const double Bf16 = 1.0 / 256;
        using var t = GpuHarness.Create(ElementType.BFloat16);
        var g = new ConvGeometry(k, 1, k / 2);
        var x = t.Random(n, c + 3, h, w, 2f, 0.5f).Channels(2, c);
        var filters = t.RandomFp32(c, 1, k, k);
        var z = t.New(n, c, h, w);
        var y = t.New(n, c, h, w);
        var bn = CudaOpTests.BatchNormTwins.Create(t, c);
        var o = new BatchNormOptions(Activation: act);
        t.Cpu.DepthwiseConvBatchNormForward(x.C, filters.C, z.C, g, y.C, bn.Cpu, o);
        t.Gpu.DepthwiseConvBatchNormForward(x.G, filters.G, z.G, g, y.G, bn.Gpu, o);
        t.Compare("saved mean", bn.Mean, 1e-5);
        t.Compare("saved invstd", bn.InvStd, 1e-5);
        t.Compare("y", y, Bf16);
        t.CompareBf16("z", z);
        t.Set(y.Grad, t.Values(y.C.Count));
        var dx = t.New(n, c, h, w);
        t.Cpu.DepthwiseConvBatchNormBackward(x.C, filters.C, z.C, g, y.Grad.C, dx.C, false, filters.Grad.C, bn.Cpu, o);
        t.Gpu.DepthwiseConvBatchNormBackward(x.G, filters.G, z.G, g, y.Grad.G, dx.G, false, filters.Grad.G, bn.Gpu, o);
        t.Compare("dgamma (fp32)", bn.Gamma.Grad, 1e-4);
        t.Compare("dw (fp32)", filters.Grad, 1e-4);
        t.CompareBf16("dx", dx);
    }

    [TestCase(16, 1000, 0.1f)]
    [TestCase(5, 10, 0f)]
    public void Cross_entropy_and_dropout_in_bf16_read_and_write_halves(int n, int k, float smoothing)
    {
        using var t = GpuHarness.Create(ElementType.BFloat16);
        var z = t.Random(n, k, 1, 1, 4f);
        var labels = t.NewFp32(n, 1, 1, 1);
        t.SetInts(labels, Enumerable.Range(0, n).Select(_ => t.Rng.Next(k)).ToArray());
        var losses = t.NewFp32(n, 1, 1, 1);
        t.Cpu.SoftmaxCrossEntropy(z.C, labels.C, losses.C, z.Grad.C, smoothing);
        t.Gpu.SoftmaxCrossEntropy(z.G, labels.G, losses.G, z.Grad.G, smoothing);
        t.Compare("losses (fp32, from the same bf16 logits)", losses);
        t.CompareBf16("dz", z.Grad);
        var ranks = t.NewFp32(n, 1, 1, 1);
        t.Cpu.TopKRank(z.C, labels.C, ranks.C); t.Gpu.TopKRank(z.G, labels.G, ranks.G);
        var rc = new int[n]; var rg = new int[n];
        t.Cpu.DownloadInts(ranks.C, rc); t.Gpu.DownloadInts(ranks.G, rg);
        Assert.That(rg, Is.EqualTo(rc), "ranks");
        var y = t.New(n, k, 1, 1);
        t.Cpu.DropoutForward(z.C, y.C, 0.2f, 987654321UL); t.Gpu.DropoutForward(z.G, y.G, 0.2f, 987654321UL);
        t.CompareBf16("dropout y (the CPU's bits, rounded)", y, ulps: 0);
        t.Cpu.DropoutBackward(z.Grad.C, y.Grad.C, false, 0.2f, 987654321UL); t.Gpu.DropoutBackward(z.Grad.G, y.Grad.G, false, 0.2f, 987654321UL);
        t.CompareBf16("dropout dx", y.Grad, ulps: 0);
    }

    // GEMMs with a weight in A (pointwise: the _wa kernels) and both operands activations (its
    // weight gradient, fp32, split-K at (8, 13 -> 11) and (5, 150 -> 20) on the emulator's 4 SMs).
    [TestCase(1, 16, 112, 112, 24)]
    [TestCase(8, 13, 7, 9, 11)]
    [TestCase(5, 150, 6, 5, 20)]
    public void Pointwise_conv_in_bf16_is_the_fp32_result_rounded(int n, int cin, int h, int w, int cout)
    {
        using var t = GpuHarness.Create(ElementType.BFloat16);
        var x = t.Random(n, cin, h, w);
        var wt = t.RandomFp32(cout, cin, 1, 1, 0.3f);
        var y = t.New(n, cout, h, w);
        t.Cpu.PointwiseConvForward(x.C, wt.C, y.C);
        t.Gpu.PointwiseConvForward(x.G, wt.G, y.G);
        t.CompareBf16("y", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Set(x.Grad, t.Values(x.C.Count));
        t.Cpu.PointwiseConvBackward(x.C, wt.C, y.Grad.C, x.Grad.C, true, wt.Grad.C);
        t.Gpu.PointwiseConvBackward(x.G, wt.G, y.Grad.G, x.Grad.G, true, wt.Grad.G);
        t.CompareBf16("dx (accumulated)", x.Grad);
        t.Compare("dw (fp32)", wt.Grad, 1e-4);
    }

    // The stem at 224 (chunks of the im2col workspace) and a small conv in one-image chunks.
    [TestCase(2, 3, 224, 224, 16, 3, 2, 64 << 20)]
    [TestCase(3, 4, 11, 9, 5, 3, 1, 1)]
    public void Dense_conv_in_bf16_is_the_fp32_result_rounded(int n, int cin, int h, int w, int cout, int k, int stride, int workspaceBytes)
    {
        using var t = GpuHarness.Create(ElementType.BFloat16);
        t.Gpu.ConvWorkspaceBytes = workspaceBytes;
        var g = new ConvGeometry(k, stride, k / 2);
        var x = t.Random(n, cin, h, w);
        var wt = t.RandomFp32(cout, cin, k, k, 0.3f);
        var y = t.New(n, cout, g.OutputSize(h), g.OutputSize(w));
        t.Cpu.ConvForward(x.C, wt.C, y.C, g);
        t.Gpu.ConvForward(x.G, wt.G, y.G, g);
        t.CompareBf16("y", y);
        t.Set(y.Grad, t.Values(y.C.Count));
        t.Cpu.ConvBackward(x.C, wt.C, y.Grad.C, x.Grad.C, false, wt.Grad.C, g);
        t.Gpu.ConvBackward(x.G, wt.G, y.Grad.G, x.Grad.G, false, wt.Grad.G, g);
        // dx sums each pixel's taps of the bf16 column gradients (W^T dY, each rounded once), so its
        // error is a bf16 rounding of the taps, which may cancel to a far smaller dx: held in norm.
        // (GhostNet's stem, the one dense conv, needs no dx: the images have no gradient.)
        t.Compare("dx", x.Grad, 1.0 / 128);
        t.Compare("dw (fp32)", wt.Grad, 1e-4);
    }

    // A weight in B (the _wb kernels), the activation in the epilogue and its gradient in the bias sums.
    [TestCase(8, 1280, 1000, "None")]
    [TestCase(16, 96, 24, "Relu")]
    [TestCase(5, 37, 10, "HardSigmoid")]
    [TestCase(6, 40, 10, "Clamp01")]
    public void Linear_in_bf16_is_the_fp32_result_rounded(int n, int k, int m, string activationName)
    {
        var activation = Enum.Parse<Activation>(activationName);
        using var t = GpuHarness.Create(ElementType.BFloat16);
        var x = t.Random(n, k, 1, 1);
        var w = t.RandomFp32(m, k, 1, 1, 4f / MathF.Sqrt(k));
        var b = t.RandomFp32(m, 1, 1, 1);
        var y = t.New(n, m, 1, 1);
        var a = t.New(n, m, 1, 1);
        t.Cpu.LinearForward(x.C, w.C, b.C, y.C, activation, a.C);
        t.Gpu.LinearForward(x.G, w.G, b.G, y.G, activation, a.G);
        t.CompareBf16("y", y);
        // The epilogue applies the activation to y as stored (bf16), as the unfused launch would
        // read it: the CPU's activation of the GPU's y (which CompareBf16 handed it), rounded.
        if (activation != Activation.None)
        {
            t.Cpu.Activate(y.C, activation, a.C);
            t.CompareBf16("activation(y)", a, ulps: 0);
        }
        t.Set(a.Grad, t.Values(a.C.Count));
        var output = (Cpu: new ActivatedOutput(y.C, activation, a.C), Gpu: new ActivatedOutput(y.G, activation, a.G));
        if (activation == Activation.None)
        {
            t.Cpu.LinearBackward(x.C, w.C, a.Grad.C, x.Grad.C, false, w.Grad.C, b.Grad.C);
            t.Gpu.LinearBackward(x.G, w.G, a.Grad.G, x.Grad.G, false, w.Grad.G, b.Grad.G);
        }
        else
        {
            t.Cpu.LinearBackward(x.C, w.C, output.Cpu, x.Grad.C, false, w.Grad.C, b.Grad.C);
            t.Gpu.LinearBackward(x.G, w.G, output.Gpu, x.Grad.G, false, w.Grad.G, b.Grad.G);
            t.CompareBf16("activation dx", y.Grad, ulps: 0); // a mask or a sixth of dy: the CPU's bits, rounded
        }
        t.Compare("db (fp32, from the unrounded gradient)", b.Grad, 1e-4);
        if (activation == Activation.HardSigmoid)
        {
            // The GEMMs read y's gradient as stored, dy / 6 rounded to bf16 (ReLU's is dy or 0:
            // exact), where the CPU's is fp32: one rounding of an operand, held in norm.
            t.Compare("dw (fp32)", w.Grad, 1.0 / 256);
            t.Compare("dx", x.Grad, 1.0 / 256);
            return;
        }
        t.Compare("dw (fp32)", w.Grad, 1e-4);
        t.CompareBf16("dx", x.Grad);
    }

    /// <summary>
    /// The pointwise conv with its batch norm's statistics in the epilogue (_stats_wa), the input
    /// gated or not (_stats_gate_wa), and the backward computing the batch norm's input gradient
    /// in the loads (_bn_wa for dx, _bn and _bn_gate for dW). As the fused depthwise pair: y in
    /// norm, then the backward from the GPU's z on both sides, one rounding per output.
    /// </summary>
    [TestCase(8, 12, 14, 14, 20, Activation.Relu, false)]
    [TestCase(3, 17, 5, 9, 6, Activation.None, true)]
    [TestCase(2, 40, 16, 16, 80, Activation.Relu, true)]
    public void Pointwise_conv_with_batch_norm_in_bf16_tracks_fp32(int n, int c, int h, int w, int cout, Activation act, bool gated)
    {
        const double Bf16 = 1.0 / 256;
        using var t = GpuHarness.Create(ElementType.BFloat16);
        var x = t.Random(n, c + 3, h, w).Channels(2, c);
        var gate = t.Random(n, c, 1, 1, 0.5f, 0.5f);
        var filters = t.RandomFp32(cout, c, 1, 1, 0.3f);
        var o = new BatchNormOptions(Activation: act);
        var bn = CudaOpTests.BatchNormTwins.Create(t, cout);
        var (scaled, z, y) = (t.New(n, c, h, w), t.New(n, cout, h, w), t.New(n, cout, h, w));
        var input = (Gpu: new GatedInput(x.G, gate.G, scaled.G), Cpu: new GatedInput(x.C, gate.C, scaled.C));
        t.Gpu.Recorder = new LaunchRecorder();
        if (gated)
        {
            t.Cpu.PointwiseConvBatchNormForward(input.Cpu, filters.C, z.C, y.C, bn.Cpu, o);
            t.Gpu.PointwiseConvBatchNormForward(input.Gpu, filters.G, z.G, y.G, bn.Gpu, o);
        }
        else
        {
            t.Cpu.PointwiseConvBatchNormForward(x.C, filters.C, z.C, y.C, bn.Cpu, o);
            t.Gpu.PointwiseConvBatchNormForward(x.G, filters.G, z.G, y.G, bn.Gpu, o);
        }
        t.Compare("saved mean", bn.Mean, 1e-5);
        t.Compare("saved invstd", bn.InvStd, 1e-5);
        t.Compare("y", y, Bf16);
        t.CompareBf16("z", z);
        t.Set(y.Grad, t.Values(y.C.Count));
        var dx = t.Random(n, c, h, w);
        if (gated)
        {
            t.Cpu.PointwiseConvBatchNormBackward(input.Cpu, filters.C, z.C, y.Grad.C, dx.C, true, filters.Grad.C, bn.Cpu, o);
            t.Gpu.PointwiseConvBatchNormBackward(input.Gpu, filters.G, z.G, y.Grad.G, dx.G, true, filters.Grad.G, bn.Gpu, o);
        }
        else
        {
            t.Cpu.PointwiseConvBatchNormBackward(x.C, filters.C, z.C, y.Grad.C, dx.C, true, filters.Grad.C, bn.Cpu, o);
            t.Gpu.PointwiseConvBatchNormBackward(x.G, filters.G, z.G, y.Grad.G, dx.G, true, filters.Grad.G, bn.Gpu, o);
        }
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).ToArray();
        t.Gpu.Recorder = null;
        Assert.That(kernels.Where(k => k.StartsWith("gemm_")), Has.Some.Contains(gated ? "_stats_gate_" : "_stats_").And.Some.Contains("_bn_")
            .And.All.Matches<string>(k => k.Contains("_bn_") || k.EndsWith("_wa")), "the fused GEMMs, a weight in A for all but dW");
        t.Compare("dgamma (fp32)", bn.Gamma.Grad, 1e-4);
        t.Compare("dw (fp32)", filters.Grad, 1e-4);
        t.CompareBf16("dx (accumulated)", dx);
    }
}

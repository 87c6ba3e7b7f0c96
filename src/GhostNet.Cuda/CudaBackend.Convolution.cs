using GhostNet.Backends;

namespace GhostNet.Cuda;

// Dense, pointwise and depthwise convolution (kernels: gemm.cu, dense_conv.cu, depthwise_conv.cu).
// Each launch carries its modelled cost (LaunchCost: DRAM bytes, FLOPs) next to it.
public sealed partial class CudaBackend
{
    public void PointwiseConvForward(in Tensor x, in Tensor w, in Tensor y)
    {
        Op(OpFamily.PointwiseConvForward);
        ShapeChecks.Pointwise("pointwise_conv_fwd", x, w, y);
        int p = x.Plane;
        // Y[n] (Cout x P) = W (Cout x Cin) X[n] (Cin x P), all images in one launch.
        Gemm(y.C, p, x.C, new(Ptr(w), Row: x.C, K: 1), new(Act(x), Batch: Stride(x), K: p, Row: 1), new(Act(y), Stride(y), p), x.N, "pointwise_conv_fwd", GemmWeight.InA);
    }

    public void PointwiseConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw)
    {
        Op(OpFamily.PointwiseConvBackward);
        ShapeChecks.Pointwise("pointwise_conv_bwd", x, w, dy);
        int p = x.Plane;
        if (!dx.IsNone)
        {
            ShapeChecks.Same("pointwise_conv_bwd dx", x, dx);
            // dX[n] = W^T dY[n]: A(i = ci, k = co) = W[co * Cin + ci].
            Gemm(x.C, p, dy.C, new(Ptr(w), Row: 1, K: x.C), new(Act(dy), Batch: Stride(dy), K: p, Row: 1), new(Act(dx), Stride(dx), p, accumulate ? 1f : 0f),
                x.N, "pointwise_conv_bwd_data", GemmWeight.InA);
        }
        // dW = sum_n dY[n] X[n]^T: A(i = co, k) = dY[n][co * P + pixel], B(k, j = ci) = X[n][ci * P + pixel].
        WeightGradient(dy.C, x.C, x.N, p, new(Act(dy), Row: p, K: 1, Segment: Stride(dy)), new(Act(x), K: 1, Row: p, Segment: Stride(x)), Ptr(dw), 0f,
            "pointwise_conv_bwd_weight");
    }

    /// <summary>
    /// Whether <see cref="PointwiseConvBatchNormBackward"/> runs the GEMMs that compute the batch
    /// norm's input gradient where they load it (v2.9, the default; fp32 GEMMs only) or the
    /// unfused launches (batch_norm_bwd_data, then the plain GEMMs), the reference the tests
    /// compare them with.
    /// </summary>
    public bool FuseGemmBatchNorm { get; set; } = true;

    /// <summary>
    /// Whether <see cref="PointwiseConvBatchNormForward"/> computes the batch norm's statistics in
    /// the GEMM's epilogue (v2.10, the default; fp32 GEMMs only) or with batch_norm_stats after it.
    /// Apart from <see cref="FuseGemmBatchNorm"/>: the two paths' statistics agree to rounding, not
    /// bit for bit (different partial sums), so the tests compare them within a tolerance.
    /// </summary>
    public bool GemmBatchNormStatistics { get; set; } = true;

    /// <summary>With <paramref name="deferApply"/>, y is not written here (the call that reads it writes it: v2.11).</summary>
    public void PointwiseConvBatchNormForward(in Tensor x, in Tensor w, in Tensor z, in Tensor y, in BatchNormTensors p, BatchNormOptions o, bool deferApply = false,
        ResidualSum? sum = null)
    {
        ShapeChecks.FusedActivation("pointwise_conv_bn_fwd", o);
        if (sum is { } checkedSum) ShapeChecks.Sum("pointwise_conv_bn_fwd", checkedSum, y, deferApply);
        if (!GemmBatchNormStatistics || GemmPrecisionNow != GemmPrecision.Fp32)
        {
            using var call = Composite(OpFamily.PointwiseConvForward);
            PointwiseConvForward(x, w, z);
            ShapeChecks.Same("batch_norm_fwd", z, y);
            Statistics(z, p, o);
            if (!deferApply) ApplyOrSum(z, y, p, o, sum);
            return;
        }
        // Both launches are recorded under the pointwise family, where ProfilingBackend times the call.
        Op(OpFamily.PointwiseConvForward);
        PointwiseForwardWithStatistics(x, w, z, y, p, o, deferApply, sum, default);
    }

    /// <summary>
    /// Whether the <see cref="GatedInput"/> overloads of <see cref="PointwiseConvBatchNormForward(in GatedInput, in Tensor, in Tensor, in Tensor, in BatchNormTensors, BatchNormOptions, bool)"/>
    /// and <see cref="PointwiseConvBatchNormBackward(in GatedInput, in Tensor, in Tensor, in Tensor, in Tensor, bool, in Tensor, in BatchNormTensors, BatchNormOptions, bool)"/>
    /// scale squeeze-excite's input by the gate in the GEMMs' loads (v2.18, the default; where
    /// those GEMMs fuse their batch norm) or write its output with channel_scale first, the
    /// reference the tests compare them with.
    /// </summary>
    public bool GateInGemm { get; set; } = true;

    public bool FusesGatedInput => GateInGemm && GemmBatchNormStatistics && FuseGemmBatchNorm && GemmPrecisionNow == GemmPrecision.Fp32;

    public void PointwiseConvBatchNormForward(in GatedInput x, in Tensor w, in Tensor z, in Tensor y, in BatchNormTensors p, BatchNormOptions o, bool deferApply = false)
    {
        ShapeChecks.FusedActivation("pointwise_conv_bn_fwd", o);
        CheckGated("pointwise_conv_bn_fwd", x);
        if (!GateInGemm || !GemmBatchNormStatistics || GemmPrecisionNow != GemmPrecision.Fp32)
        {
            using var call = Composite(OpFamily.PointwiseConvForward);
            ChannelScale(x.X, x.Gate, x.Y);
            PointwiseConvBatchNormForward(x.Y, w, z, y, p, o, deferApply);
            return;
        }
        Op(OpFamily.PointwiseConvForward);
        // B(k = channel, j = pixel) of image n times gate[n * C + k].
        PointwiseForwardWithStatistics(x.X, w, z, y, p, o, deferApply, null, new GemmGate(Act(x.Gate), Batch: x.Gate.C, K: 1));
    }

    private static void CheckGated(string op, in GatedInput x)
    {
        ShapeChecks.Same(op, x.X, x.Y);
        x.Gate.RequireShape(op, "gate", x.X.N, x.X.C, 1, 1);
        x.Gate.RequireContiguous(op);
    }

    // The pointwise GEMM with the batch norm's statistics in its epilogue (v2.10), then its apply
    // (or the sum in its place: v2.16) unless deferred; its B operand gated (v2.18) when gate is set.
    private void PointwiseForwardWithStatistics(in Tensor x, in Tensor w, in Tensor z, in Tensor y, in BatchNormTensors p, BatchNormOptions o, bool deferApply,
        ResidualSum? sum, GemmGate gate)
    {
        ShapeChecks.Pointwise("pointwise_conv_fwd", x, w, z);
        ShapeChecks.Same("batch_norm_fwd", z, y);
        ShapeChecks.BatchNormTraining("batch_norm_fwd", z);
        int plane = x.Plane;
        var stats = new GemmStats(Ptr(p.SaveMean), Ptr(p.SaveInvStd), Ptr(p.RunningMean), Ptr(p.RunningVar), o.Momentum, o.Eps);
        Gemm(z.C, plane, x.C, new(Ptr(w), Row: x.C, K: 1), new(Act(x), Batch: Stride(x), K: plane, Row: 1), new(Act(z), Stride(z), plane), x.N,
            "pointwise_conv_fwd", GemmWeight.InA, stats: stats, gate: gate);
        if (!deferApply) ApplyOrSum(z, y, p, o, sum);
    }

    /// <summary>With <paramref name="bnGradientsReady"/>, dgamma and dbeta are not reduced again (v2.12; the unfused path recomputes the same values).</summary>
    public void PointwiseConvBatchNormBackward(in Tensor x, in Tensor w, in Tensor z, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o,
        bool bnGradientsReady = false)
    {
        ShapeChecks.FusedActivation("pointwise_conv_bn_bwd", o);
        // The tensor-core kernels load through cp.async, past the registers where the gradient
        // would be computed; one-pixel planes take the GEMMs' plain-stride form. Both run unfused.
        if (!FuseGemmBatchNorm || GemmPrecisionNow != GemmPrecision.Fp32 || z.Plane == 1)
        {
            using var call = Composite(OpFamily.PointwiseConvBackward);
            if (bnGradientsReady) BatchNormInputGradient(z, dy, z.Grad, false, p, o);
            else BatchNormBackward(z, dy, z.Grad, false, p, o);
            PointwiseConvBackward(x, w, z.Grad, dx, accumulate, dw);
            return;
        }
        // All launches are recorded under the pointwise family, where ProfilingBackend times the call.
        Op(OpFamily.PointwiseConvBackward);
        PointwiseBackwardThroughBatchNorm(x, w, z, dy, dx, accumulate, dw, p, o, bnGradientsReady, default);
    }

    public void PointwiseConvBatchNormBackward(in GatedInput x, in Tensor w, in Tensor z, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o,
        bool bnGradientsReady = false)
    {
        ShapeChecks.FusedActivation("pointwise_conv_bn_bwd", o);
        CheckGated("pointwise_conv_bn_bwd", x);
        if (!GateInGemm || !FuseGemmBatchNorm || GemmPrecisionNow != GemmPrecision.Fp32 || z.Plane == 1)
        {
            using var call = Composite(OpFamily.PointwiseConvBackward);
            ChannelScale(x.X, x.Gate, x.Y); // x.Y is unspecified here (the fused forward never writes it)
            PointwiseConvBatchNormBackward(x.Y, w, z, dy, dx, accumulate, dw, p, o, bnGradientsReady);
            return;
        }
        Op(OpFamily.PointwiseConvBackward);
        // The weight gradient's B(k = pixel of image seg, j = channel) times gate[seg * C + j].
        PointwiseBackwardThroughBatchNorm(x.X, w, z, dy, dx, accumulate, dw, p, o, bnGradientsReady, new GemmGate(Act(x.Gate), Segment: x.Gate.C, Row: 1));
    }

    // The pointwise backward GEMMs computing the batch norm's input gradient as they load it
    // (v2.9), after its reduction unless ready (v2.12); the weight gradient's B gated (v2.18) when gate is set.
    private void PointwiseBackwardThroughBatchNorm(in Tensor x, in Tensor w, in Tensor z, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o,
        bool bnGradientsReady, GemmGate gate)
    {
        ShapeChecks.Pointwise("pointwise_conv_bwd", x, w, z);
        ShapeChecks.Same("batch_norm_bwd", z, dy);
        if (!bnGradientsReady) BatchNormReduce(z, dy, p, o);
        int plane = x.Plane;
        var bn = new GemmBatchNorm(0, Act(z), 0, 0, Ptr(p.Weight), Ptr(p.Bias), Ptr(p.SaveMean), Ptr(p.SaveInvStd), Ptr(p.Weight.Grad), Ptr(p.Bias.Grad),
            (int)o.Activation, 1f / ((long)z.N * plane));
        if (!dx.IsNone)
        {
            ShapeChecks.Same("pointwise_conv_bwd dx", x, dx);
            // dX[n] = W^T dZ[n], B(k = co, j = pixel) = dZ[n] from dy[n] and z[n].
            Gemm(x.C, plane, dy.C, new(Ptr(w), Row: 1, K: x.C), new(Act(dy), Batch: Stride(dy), K: plane, Row: 1), new(Act(dx), Stride(dx), plane, accumulate ? 1f : 0f),
                x.N, "pointwise_conv_bwd_data", GemmWeight.InA, bn: bn with { Operand = 2, ZBatch = Stride(z) });
        }
        // dW = sum_n dZ[n] X[n]^T, A(i = co, k) = dZ[n][co * P + pixel] from dy and z, image n a segment on.
        WeightGradient(dy.C, x.C, x.N, plane, new(Act(dy), Row: plane, K: 1, Segment: Stride(dy)), new(Act(x), K: 1, Row: plane, Segment: Stride(x)), Ptr(dw), 0f,
            "pointwise_conv_bwd_weight", bn with { Operand = 1, ZSegment = Stride(z) }, gate);
    }

    /// <summary>Bound on the im2col workspace: images are processed in chunks that fit it. The columns are activations (bf16 with bf16 activations).</summary>
    internal long ConvWorkspaceBytes { get; set; } = 64L << 20;

    private int ImagesPerChunk(long elementsPerImage, int images) =>
        (int)Math.Clamp(ConvWorkspaceBytes / (elementsPerImage * ActivationType.Bytes()), 1, images);

    public void ConvForward(in Tensor x, in Tensor w, in Tensor y, ConvGeometry g)
    {
        Op(OpFamily.DenseConvForward);
        ShapeChecks.Conv("conv_fwd", x, w, y, g);
        int rows = x.C * g.Kernel * g.Kernel, p = y.Plane;
        int chunk = ImagesPerChunk((long)rows * p, x.N);
        ulong col = Workspace((long)chunk * rows * p);
        for (int n0 = 0; n0 < x.N; n0 += chunk)
        {
            int count = Math.Min(chunk, x.N - n0);
            Im2Col(x, n0, count, g, y, col);
            // Y[n] = W col[n] for the chunk's images in one batched launch.
            Gemm(y.C, p, rows, new(Ptr(w), Row: rows, K: 1), new(col, Batch: (long)rows * p, K: p, Row: 1), new(Act(y) + (ulong)(n0 * Stride(y)) * ElementBytes(y), Stride(y), p),
                count, "conv_fwd", GemmWeight.InA);
        }
    }

    public void ConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, ConvGeometry g)
    {
        Op(OpFamily.DenseConvBackward);
        ShapeChecks.Conv("conv_bwd", x, w, dy, g);
        if (!dx.IsNone) ShapeChecks.Same("conv_bwd dx", x, dx);
        int rows = x.C * g.Kernel * g.Kernel, p = dy.Plane;
        long perImage = (long)rows * p;
        int chunk = ImagesPerChunk(2 * perImage, x.N);
        ulong col = Workspace(2 * chunk * perImage), dcol = col + (ulong)(chunk * perImage * ActivationType.Bytes());
        for (int n0 = 0; n0 < x.N; n0 += chunk)
        {
            int count = Math.Min(chunk, x.N - n0);
            Im2Col(x, n0, count, g, dy, col);
            ulong dyn = Act(dy) + (ulong)(n0 * Stride(dy)) * ElementBytes(dy);
            // dW (+)= sum over the chunk of dY[n] col[n]^T, B(k = pixel, j = row) = col[n][row * P + pixel];
            // chunks add in order.
            WeightGradient(dy.C, rows, count, p, new(dyn, Row: p, K: 1, Segment: Stride(dy)), new(col, K: 1, Row: p, Segment: perImage), Ptr(dw),
                n0 == 0 ? 0f : 1f, "conv_bwd_weight");
            if (dx.IsNone) continue;
            // dcol[n] = W^T dY[n], then gathered back into the images.
            Gemm(rows, p, dy.C, new(Ptr(w), Row: 1, K: rows), new(dyn, Batch: Stride(dy), K: p, Row: 1), new(dcol, perImage, p), count, "conv_bwd_data", GemmWeight.InA);
            // Cost: the chunk's columns read once (each summed into one pixel), dX written (and read when accumulating).
            long pixels = (long)count * x.C * x.Plane;
            Launch1D("col2im", pixels, ActCost(read: count * perImage + (accumulate ? pixels : 0), written: pixels, flops: count * perImage),
                $"conv_bwd {x}", dcol, count, x.C, x.H, x.W, g.Kernel, g.Stride, g.Padding, dy.H, dy.W,
                Act(dx) + (ulong)(n0 * Stride(dx)) * ElementBytes(dx), Stride(dx), accumulate ? 1 : 0);
        }
    }

    // Cost: the chunk's input read once (the k*k overlapping reads of a pixel hit L1/L2), its
    // columns (k*k/stride^2 times the input) written, to be read again by the GEMM.
    private void Im2Col(in Tensor x, int n0, int count, ConvGeometry g, in Tensor y, ulong col) =>
        Launch1D("im2col", (long)count * x.C * g.Kernel * g.Kernel * y.Plane,
            ActCost(read: (long)count * x.C * x.Plane, written: (long)count * x.C * g.Kernel * g.Kernel * y.Plane, flops: 0), $"conv {x}", Act(x) + (ulong)(n0 * Stride(x)) * ElementBytes(x), Stride(x),
            count, x.C, x.H, x.W, g.Kernel, g.Stride, g.Padding, y.H, y.W, col);

    /// <summary>
    /// depthwise_conv.cu's entry points, by op: 0 forward, 1 data gradient, 2 weight gradient, 3 the
    /// forward with batch-norm statistics (v2.5), 4 and 5 the data and weight gradients through
    /// the batch norm that follows (v2.7), 6 the forward with statistics that applies its input's
    /// batch norm (v2.11), 7 the data gradient through the batch norm that also reduces its
    /// input's (v2.12), 8 both gradients through the batch norm in one pass (v2.13). Each the
    /// generic kernel, then the variants specialised on (k, stride) = (3, 1), (3, 2), (5, 1), (5, 2).
    /// </summary>
    internal static readonly string[][] DepthwiseKernels =
    [
        .. new[] { "depthwise_conv_fwd", "depthwise_conv_bwd_data", "depthwise_conv_bwd_weight", "depthwise_conv_fwd_stats",
            "depthwise_conv_bwd_data_bn", "depthwise_conv_bwd_weight_bn" }.Select(op => new[] { op, $"{op}_k3s1", $"{op}_k3s2", $"{op}_k5s1", $"{op}_k5s2" }),
        // Stride-1 ops: their stride-2 slots name the generic kernel. _apply and _both are never
        // launched at stride 2; _reduce's generic kernel is correct there (GhostNet never asks).
        .. new[] { "depthwise_conv_fwd_stats_apply", "depthwise_conv_bwd_data_reduce", "depthwise_conv_bwd_both_bn" }
            .Select(op => new[] { op, $"{op}_k3s1", op, $"{op}_k5s1", op }),
    ];

    /// <summary>The index in <see cref="DepthwiseKernels"/> of the kernel for <paramref name="g"/>: 0 (generic) unless specialised.</summary>
    internal static int DepthwiseVariant(ConvGeometry g) => (g.Kernel, g.Stride) switch
    {
        (3, 1) => 1, (3, 2) => 2, (5, 1) => 3, (5, 2) => 4, _ => 0,
    };

    public void DepthwiseConvForward(in Tensor x, in Tensor w, in Tensor y, ConvGeometry g)
    {
        Op(OpFamily.DepthwiseConvForward);
        ShapeChecks.Depthwise("depthwise_conv_fwd", x, w, y, g);
        long taps = (long)g.Kernel * g.Kernel;
        // Cost: x read once (neighbouring taps from L1/L2), the filters, y written; k*k FMAs per output (padding taps included).
        Launch1D(DepthwiseKernels[0][DepthwiseVariant(g)], y.Count, ActCost(read: x.Count, written: y.Count, words: y.C * taps, flops: 2 * y.Count * taps), $"{x} -> {y} {g}", Act(x), Stride(x), Ptr(w), Act(y), Stride(y),
            x.N, x.C, x.H, x.W, y.C, y.H, y.W, g.Kernel, g.Stride, g.Padding);
    }

    /// <summary>
    /// Whether <see cref="DepthwiseConvBatchNormForward"/> and <see cref="DepthwiseConvBatchNormBackward"/>
    /// run the fused kernels (the default: depthwise_conv_fwd_stats, the _bn backward kernels) or
    /// the unfused launches, kept as the reference the tests compare them with.
    /// </summary>
    public bool FuseDepthwiseBatchNorm { get; set; } = true;

    public void DepthwiseConvBatchNormForward(in Tensor x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor y, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.FusedActivation("depthwise_conv_bn_fwd", o);
        if (!FuseDepthwiseBatchNorm)
        {
            using var call = Composite(OpFamily.DepthwiseConvForward);
            DepthwiseConvForward(x, w, z, g);
            BatchNormTrainForward(z, y, p, o);
            return;
        }
        // Both launches are recorded under the depthwise family, where ProfilingBackend times the call.
        Op(OpFamily.DepthwiseConvForward);
        DepthwiseForwardWithStatistics(x, null, w, z, g, y, p, o);
    }

    /// <summary>
    /// Whether <see cref="DepthwiseConvBatchNormForward(in NormalizedInput, in Tensor, in Tensor, ConvGeometry, in Tensor, in BatchNormTensors, BatchNormOptions)"/>
    /// applies its input's batch norm in the conv's kernel (v2.11, the default, at stride 1 with
    /// same padding) or with batch_norm_apply before it, the reference the tests compare it with.
    /// </summary>
    public bool ApplyBatchNormInDepthwise { get; set; } = true;

    public void DepthwiseConvBatchNormForward(in NormalizedInput x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor y, in BatchNormTensors p, BatchNormOptions o,
        ResidualSum? sum = null)
    {
        ShapeChecks.FusedActivation("depthwise_conv_bn_fwd", o);
        ShapeChecks.FusedActivation("depthwise_conv_bn_fwd", x.Options);
        Tensor concat = default;
        if (sum is { } checkedSum) ShapeChecks.Sum("depthwise_conv_bn_fwd", checkedSum, concat = checkedSum.Concat(x.Y, y));
        // The centre taps write every input once only at stride 1 with same padding (z's plane is x's).
        bool fuse = ApplyBatchNormInDepthwise && FuseDepthwiseBatchNorm && g.Stride == 1 && g.Kernel % 2 == 1 && g.Padding == g.Kernel / 2
            && !Overlap(x.X, x.Y) && !Overlap(x.X, z) && !Overlap(x.Y, z); // the unfused launches finish y before the conv reads it
        if (!fuse)
        {
            using var call = Composite(OpFamily.DepthwiseConvForward);
            ShapeChecks.Same("batch_norm_fwd", x.X, x.Y);
            Apply(x.X, x.Y, x.Tensors, x.Options, training: true);
            DepthwiseConvBatchNormForward(x.Y, w, z, g, y, p, o);
            if (sum is { } s) AddViews(concat, s.Addend, s.Sum);
            return;
        }
        Op(OpFamily.DepthwiseConvForward);
        ShapeChecks.Same("batch_norm_fwd", x.X, x.Y);
        // The kernels read x.X and the addend, write x.Y, z and the sum, and leave y unwritten.
        if (sum is { } inKernel && SumsInKernel(inKernel) && !Overlap(inKernel.Sum, x.X) && !Overlap(inKernel.Sum, x.Y) && !Overlap(inKernel.Sum, z)
            && !Overlap(inKernel.Addend, x.Y) && !Overlap(inKernel.Addend, z) && !Overlap(inKernel.Addend, y))
            DepthwiseForwardWithStatistics(x.X, x, w, z, g, y, p, o, inKernel);
        else
        {
            DepthwiseForwardWithStatistics(x.X, x, w, z, g, y, p, o);
            if (sum is { } s) AddViews(concat, s.Addend, s.Sum);
        }
    }

    // depthwise_conv_fwd_stats, then batch_norm_apply for y. With an input batch norm (v2.11) x
    // is its input and the _apply kernel writes its output too. With a sum as well (v2.16), the
    // _apply kernel also writes the sum's first x.C channels from the input's output (which the
    // backward reads), and batch_norm_apply the rest in place of y's first channels.
    private void DepthwiseForwardWithStatistics(in Tensor x, NormalizedInput? input, in Tensor w, in Tensor z, ConvGeometry g, in Tensor y, in BatchNormTensors p, BatchNormOptions o,
        ResidualSum? sum = null)
    {
        ShapeChecks.Depthwise("depthwise_conv_fwd", x, w, z, g);
        ShapeChecks.Same("batch_norm_fwd", z, y);
        ShapeChecks.BatchNormTraining("batch_norm_fwd", z);
        long taps = (long)g.Kernel * g.Kernel, c = z.C;
        var (chunks, chunk) = ChannelChunks(z.C, (long)z.N * z.Plane);
        ulong parts = chunks > 1 ? Partials(c * chunks * 3 * 2) : 0, done = chunks > 1 ? Counters(z.C) : 0;
        bool apply = input is not null;
        if (sum is not null && !apply) throw new ArgumentException("only the _apply kernels write a sum (v2.16): a sum needs an input batch norm", nameof(sum));
        var a = input ?? default;
        // Applying: four values per input channel read, the input's output written once, and
        // its affine map (and ReLU) on every tap read.
        long applyWords = apply ? 4L * x.C : 0, applyRead = 0, applyWritten = apply ? x.Count : 0, applyFlops = apply ? (2 + ActivationFlops(a.Options.Activation)) * taps * z.Count : 0;
        // Summing, the input's output plus the addend's first channels is written to the sum's too.
        var (sumStart, addend) = sum is { } s ? (s.Sum.Channels(0, x.C), s.Addend.Channels(0, x.C)) : default;
        if (sum is not null) (applyRead, applyWritten, applyFlops) = (applyRead + x.Count, applyWritten + x.Count, applyFlops + x.Count);
        // Cost: the forward's (x read once, the filters, z written, k*k FMAs per output) and the
        // statistics' sums (4 FLOPs per output, the four statistics, the split's parts), without
        // batch_norm_stats's read of z. Each chunk's first output is computed once more per thread.
        Launch(DepthwiseKernels[apply ? 6 : 3][DepthwiseVariant(g)], (uint)z.C, (uint)chunks, 1, Threads,
            ActCost(read: x.Count + applyRead, written: z.Count + applyWritten, words: c * taps + 6 * c + applyWords, flops: (2 * taps + 4) * z.Count + applyFlops,
                otherBytes: chunks > 1 ? 2 * 8 * 3 * c * chunks : 0),
            $"{x} -> {z} {g}", Act(x), Stride(x), Ptr(w), Act(z), Stride(z), x.N, x.C, x.H, x.W, z.C, z.H, z.W, g.Kernel, g.Stride, g.Padding,
            chunk, Ptr(p.SaveMean), Ptr(p.SaveInvStd), Ptr(p.RunningMean), Ptr(p.RunningVar), o.Momentum, o.Eps, parts, done,
            apply ? Ptr(a.Tensors.Weight) : 0, apply ? Ptr(a.Tensors.Bias) : 0, apply ? Ptr(a.Tensors.SaveMean) : 0, apply ? Ptr(a.Tensors.SaveInvStd) : 0,
            (int)a.Options.Activation, apply ? Act(a.Y) : 0, apply ? Stride(a.Y) : 0,
            sum is null ? 0UL : Act(sumStart), sum is null ? 0L : Stride(sumStart), sum is null ? 0UL : Act(addend), sum is null ? 0L : Stride(addend));
        if (sum is not { } rest) Apply(z, y, p, o, training: true);
        else if (rest.Sum.C > x.C)
        {
            int count = rest.Sum.C - x.C; // y's channels past the sum's are not needed
            Apply(z.Channels(0, count), rest.Sum.Channels(x.C, count), p, o, training: true, rest.Addend.Channels(x.C, count));
        }
    }

    public void DepthwiseConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, ConvGeometry g)
    {
        Op(OpFamily.DepthwiseConvBackward);
        DepthwiseBackward(x, w, dy, dx, accumulate, dw, g, default, default, null, null);
    }

    public void DepthwiseConvBatchNormBackward(in Tensor x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.FusedActivation("depthwise_conv_bn_bwd", o);
        if (!FuseDepthwiseBatchNorm)
        {
            using var call = Composite(OpFamily.DepthwiseConvBackward);
            BatchNormBackward(z, dy, z.Grad, false, p, o);
            DepthwiseConvBackward(x, w, z.Grad, dx, accumulate, dw, g);
            return;
        }
        // All three launches are recorded under the depthwise family, where ProfilingBackend times the call.
        Op(OpFamily.DepthwiseConvBackward);
        ShapeChecks.Same("batch_norm_bwd", z, dy);
        BatchNormReduce(z, dy, p, o);
        DepthwiseBackward(x, w, dy, dx, accumulate, dw, g, z, p, o, null);
    }

    /// <summary>
    /// Whether <see cref="DepthwiseConvBatchNormBackward(in NormalizedInput, in Tensor, in Tensor, ConvGeometry, in Tensor, in Tensor, bool, in Tensor, in BatchNormTensors, BatchNormOptions)"/>
    /// reduces its input's batch norm in the data-gradient kernel (v2.12, the default) or with
    /// batch_norm_bwd_reduce after it, the reference the tests compare it with.
    /// </summary>
    public bool ReduceBatchNormInDepthwise { get; set; } = true;

    /// <summary>
    /// Whether the backward of a depthwise pair at stride 1 with same padding and one output
    /// channel per input (the Ghost module's cheap operation) computes its data and weight
    /// gradients in one kernel (v2.13, the default: depthwise_conv_bwd_both_bn) or in the data and
    /// weight kernels, the reference the tests compare it with.
    /// </summary>
    public bool DepthwiseBackwardInOnePass { get; set; } = true;

    public void DepthwiseConvBatchNormBackward(in NormalizedInput x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.FusedActivation("depthwise_conv_bn_bwd", o);
        ShapeChecks.FusedActivation("depthwise_conv_bn_bwd", x.Options);
        if (dx.IsNone) throw new ArgumentException("the input's batch norm is reduced from the input gradient: dx is needed", nameof(dx));
        ShapeChecks.Same("batch_norm_bwd", x.X, dx);
        if (!ReduceBatchNormInDepthwise || !FuseDepthwiseBatchNorm)
        {
            using var call = Composite(OpFamily.DepthwiseConvBackward);
            DepthwiseConvBatchNormBackward(x.Y, w, z, g, dy, dx, accumulate, dw, p, o);
            BatchNormReduce(x.X, dx, x.Tensors, x.Options);
            return;
        }
        Op(OpFamily.DepthwiseConvBackward);
        ShapeChecks.Same("batch_norm_bwd", z, dy);
        BatchNormReduce(z, dy, p, o);
        DepthwiseBackward(x.Y, w, dy, dx, accumulate, dw, g, z, p, o, x);
    }

    // dy is the conv's output gradient, or with a batch norm (o not null) the gradient of the batch
    // norm that follows the conv, whose dgamma and dbeta are already reduced: the _bn kernels then
    // compute the conv's output gradient z' where they read it, from dy and z, and z' is never
    // written. Plain and _bn kernels take the same arguments (zeros for no batch norm), so nothing
    // is allocated per launch. With `input` (v2.12), the data gradient also reduces the parameter
    // gradients of the batch norm whose output x is, from dx as it writes it.
    private void DepthwiseBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, ConvGeometry g,
        in Tensor z, in BatchNormTensors p, BatchNormOptions? o, NormalizedInput? input)
    {
        ShapeChecks.Depthwise("depthwise_conv_bwd", x, w, dy, g);
        if (g.Kernel > 5) throw new NotSupportedException($"depthwise_conv_bwd_weight keeps at most 5x5 taps in registers, got {g}");
        bool bn = o is not null;
        int taps = g.Kernel * g.Kernel, variant = DepthwiseVariant(g);
        ulong zp = bn ? Act(z) : 0, gamma = bn ? Ptr(p.Weight) : 0, beta = bn ? Ptr(p.Bias) : 0, mean = bn ? Ptr(p.SaveMean) : 0,
            invstd = bn ? Ptr(p.SaveInvStd) : 0, dgamma = bn ? Ptr(p.Weight.Grad) : 0, dbeta = bn ? Ptr(p.Bias.Grad) : 0;
        long zs = bn ? Stride(z) : 0;
        var activation = o?.Activation ?? Activation.None;
        int actKind = (int)activation;
        // With a batch norm: z and six per-channel values read besides dy (2 FLOPs more per read of
        // dy, 5 with the ReLU mask, more with hard-swish's: BnInputGrad).
        long zRead = bn ? dy.Count : 0, zWords = bn ? 6L * dy.C : 0, gradFlops = bn ? (2L + ActivationFlops(activation) + ActivationGradFlops(activation)) * dy.Count : 0;
        if (bn && DepthwiseBackwardInOnePass && !dx.IsNone && g.Stride == 1 && g.Kernel % 2 == 1 && g.Padding == g.Kernel / 2 && dy.C == x.C)
        {
            BothGradients(x, w, dy, dx, accumulate, dw, g, z, p, o!.Value, input, zRead, zWords, gradFlops);
            return;
        }
        if (input is { } r)
        {
            ShapeChecks.Same("depthwise_conv_bwd dx", x, dx);
            var (inChunks, inChunk) = ChannelChunks(x.C, (long)x.N * x.Plane);
            ulong inParts = inChunks > 1 ? Partials((long)x.C * inChunks * 2 * 2) : 0, inDone = inChunks > 1 ? Counters(x.C) : 0;
            long inRelu = ActivationGradFlops(r.Options.Activation), inPartBytes = inChunks > 1 ? 2 * 8 * 2L * x.C * inChunks : 0;
            // Cost: the plain data gradient's, and batch_norm_bwd_reduce's without its read of dx
            // (the input batch norm's z and four values per channel read, dgamma and dbeta
            // written, the split's parts).
            Launch(DepthwiseKernels[7][variant], (uint)x.C, (uint)inChunks, 1, Threads,
                ActCost(read: dy.Count + zRead + (accumulate ? x.Count : 0) + x.Count, written: x.Count, words: zWords + (long)dy.C * taps + 6L * x.C,
                    flops: 2L * dy.Count * taps + taps * gradFlops + (4 + inRelu) * x.Count, otherBytes: inPartBytes), $"{dy} -> {dx} {g}",
                Act(dy), Stride(dy), Ptr(w), Act(dx), Stride(dx), x.N, x.C, x.H, x.W, dy.C, dy.H, dy.W, g.Kernel, g.Stride, g.Padding, accumulate ? 1 : 0,
                zp, zs, gamma, beta, mean, invstd, dgamma, dbeta, actKind,
                inChunk, Act(r.X), Stride(r.X), Ptr(r.Tensors.Weight), Ptr(r.Tensors.Bias), Ptr(r.Tensors.SaveMean), Ptr(r.Tensors.SaveInvStd), (int)r.Options.Activation,
                Ptr(r.Tensors.Weight.Grad), Ptr(r.Tensors.Bias.Grad), inParts, inDone);
        }
        else if (!dx.IsNone)
        {
            ShapeChecks.Same("depthwise_conv_bwd dx", x, dx);
            // Cost: dy read once, the filters, dx written (and read when accumulating); the forward's FMAs.
            Launch1D(DepthwiseKernels[bn ? 4 : 1][variant], x.Count,
                ActCost(read: dy.Count + zRead + (accumulate ? x.Count : 0), written: x.Count, words: zWords + (long)dy.C * taps, flops: 2L * dy.Count * taps + taps * gradFlops), $"{dy} -> {dx} {g}",
                Act(dy), Stride(dy), Ptr(w), Act(dx), Stride(dx), x.N, x.C, x.H, x.W, dy.C, dy.H, dy.W, g.Kernel, g.Stride, g.Padding, accumulate ? 1 : 0,
                zp, zs, gamma, beta, mean, invstd, dgamma, dbeta, actKind);
        }
        var (chunks, chunk) = ChannelChunks(dy.C, (long)dy.N * dy.Plane);
        ulong parts = chunks > 1 ? Partials((long)dy.C * chunks * taps * 2) : 0, done = chunks > 1 ? Counters(dy.C) : 0;
        long dwTaps = (long)dy.C * taps, partBytes = chunks > 1 ? 2 * 8 * dwTaps * chunks : 0;
        // Cost: x and dy read once each (the channel multiplier's re-reads of x hit L2), dW written;
        // split, the chunks' double parts written, and read back by each channel's last block.
        Launch(DepthwiseKernels[bn ? 5 : 2][variant], (uint)dy.C, (uint)chunks, 1, Threads,
            ActCost(read: x.Count + dy.Count + zRead, written: 0, words: zWords + dwTaps, flops: 2L * dy.Count * taps + gradFlops + (chunks > 1 ? dwTaps * chunks : 0), otherBytes: partBytes),
            $"{x}, {dy} {g}", Act(x), Stride(x), Act(dy), Stride(dy), Ptr(dw), x.N, x.C, x.H, x.W, dy.C, dy.H, dy.W, g.Kernel, g.Stride, g.Padding, chunk, parts, done,
            zp, zs, gamma, beta, mean, invstd, dgamma, dbeta, actKind);
    }

    // v2.13: depthwise_conv_bwd_both_bn on the weight gradient's grid (Cin = Cout, S), where a
    // chunk's positions are its inputs and its outputs alike; with `input`, also the input batch
    // norm's sums (parts and counters apart from the weights', since both finish in one launch).
    private void BothGradients(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, ConvGeometry g,
        in Tensor z, in BatchNormTensors p, BatchNormOptions o, NormalizedInput? input, long zRead, long zWords, long gradFlops)
    {
        ShapeChecks.Same("depthwise_conv_bwd dx", x, dx);
        int taps = g.Kernel * g.Kernel, c = dy.C;
        var (chunks, chunk) = ChannelChunks(c, (long)dy.N * dy.Plane);
        long weightParts = chunks > 1 ? (long)c * chunks * taps * 2 : 0, inputParts = chunks > 1 && input is not null ? (long)c * chunks * 2 * 2 : 0;
        ulong parts = chunks > 1 ? Partials(weightParts + inputParts) : 0, done = chunks > 1 ? Counters(2 * c) : 0;
        ulong inParts = inputParts > 0 ? parts + (ulong)weightParts * 4 : 0, inDone = inputParts > 0 ? done + (ulong)c * 4 : 0;
        var r = input ?? default;
        bool reduce = input is not null;
        long dwTaps = (long)c * taps, inRelu = ActivationGradFlops(r.Options.Activation);
        // Cost: x, dy and z read once (the taps' re-reads hit L1/L2), the filters, dx written (and
        // read when accumulating), dW written; with the input batch norm its z and four values per
        // channel read, dgamma and dbeta written; the splits' double parts. FLOPs: both gradients'.
        Launch(DepthwiseKernels[8][DepthwiseVariant(g)], (uint)c, (uint)chunks, 1, Threads,
            ActCost(read: x.Count + dy.Count + zRead + (accumulate ? x.Count : 0) + (reduce ? x.Count : 0), written: x.Count,
                words: zWords + 2 * dwTaps + (reduce ? 6L * c : 0),
                flops: 4L * dy.Count * taps + (taps + 1) * gradFlops + (chunks > 1 ? dwTaps * chunks : 0) + (reduce ? (4 + inRelu) * x.Count : 0),
                otherBytes: 2 * 8 * (weightParts + inputParts) / 2),
            $"{x}, {dy} -> {dx} {g}", Act(x), Stride(x), Act(dy), Stride(dy), Ptr(dw), x.N, x.C, x.H, x.W, dy.C, dy.H, dy.W, g.Kernel, g.Stride, g.Padding,
            chunk, parts, done, Ptr(w), Act(dx), Stride(dx), accumulate ? 1 : 0,
            Act(z), Stride(z), Ptr(p.Weight), Ptr(p.Bias), Ptr(p.SaveMean), Ptr(p.SaveInvStd), Ptr(p.Weight.Grad), Ptr(p.Bias.Grad), (int)o.Activation,
            reduce ? Act(r.X) : 0, reduce ? Stride(r.X) : 0, reduce ? Ptr(r.Tensors.Weight) : 0, reduce ? Ptr(r.Tensors.Bias) : 0,
            reduce ? Ptr(r.Tensors.SaveMean) : 0, reduce ? Ptr(r.Tensors.SaveInvStd) : 0, (int)r.Options.Activation,
            reduce ? Ptr(r.Tensors.Weight.Grad) : 0, reduce ? Ptr(r.Tensors.Bias.Grad) : 0, inParts, inDone);
    }
}

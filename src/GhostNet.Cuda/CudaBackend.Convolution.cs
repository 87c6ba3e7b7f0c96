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
        Gemm(y.C, p, x.C, Ptr(w), 0, x.C, 1, Ptr(x), Stride(x), p, 1, Ptr(y), Stride(y), p, 0f, 0, x.N, "pointwise_conv_fwd");
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
            Gemm(x.C, p, dy.C, Ptr(w), 0, 1, x.C, Ptr(dy), Stride(dy), p, 1, Ptr(dx), Stride(dx), p, accumulate ? 1f : 0f, 0, x.N, "pointwise_conv_bwd_data");
        }
        // dW = sum_n dY[n] X[n]^T: A(i = co, k) = dY[n][co * P + pixel], B(k, j = ci) = X[n][ci * P + pixel].
        WeightGradient(dy.C, x.C, x.N, p, Ptr(dy), p, 1, Stride(dy), Ptr(x), 1, p, Stride(x), Ptr(dw), 0f, "pointwise_conv_bwd_weight");
    }

    private const int GemmTile = 64; // TILE in gemm.cu: one block per 64 x 64 tile of the output

    /// <summary>Bound on the im2col workspace: images are processed in chunks that fit it.</summary>
    internal long ConvWorkspaceBytes { get; set; } = 64L << 20;

    private int ImagesPerChunk(long floatsPerImage, int images) =>
        (int)Math.Clamp(ConvWorkspaceBytes / (floatsPerImage * 4), 1, images);

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
            Gemm(y.C, p, rows, Ptr(w), 0, rows, 1, col, (long)rows * p, p, 1, Ptr(y) + (ulong)(n0 * Stride(y)) * 4, Stride(y), p, 0f, 0, count, "conv_fwd");
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
        ulong col = Workspace(2 * chunk * perImage), dcol = col + (ulong)(chunk * perImage) * 4;
        for (int n0 = 0; n0 < x.N; n0 += chunk)
        {
            int count = Math.Min(chunk, x.N - n0);
            Im2Col(x, n0, count, g, dy, col);
            ulong dyn = Ptr(dy) + (ulong)(n0 * Stride(dy)) * 4;
            // dW (+)= sum over the chunk of dY[n] col[n]^T, B(k = pixel, j = row) = col[n][row * P + pixel];
            // chunks add in order.
            WeightGradient(dy.C, rows, count, p, dyn, p, 1, Stride(dy), col, 1, p, perImage, Ptr(dw), n0 == 0 ? 0f : 1f, "conv_bwd_weight");
            if (dx.IsNone) continue;
            // dcol[n] = W^T dY[n], then gathered back into the images.
            Gemm(rows, p, dy.C, Ptr(w), 0, 1, rows, dyn, Stride(dy), p, 1, dcol, perImage, p, 0f, 0, count, "conv_bwd_data");
            // Cost: the chunk's columns read once (each summed into one pixel), dX written (and read when accumulating).
            long pixels = (long)count * x.C * x.Plane;
            Launch1D("col2im", pixels, LaunchCost.Fp32(read: count * perImage + (accumulate ? pixels : 0), written: pixels, flops: count * perImage),
                $"conv_bwd {x}", dcol, count, x.C, x.H, x.W, g.Kernel, g.Stride, g.Padding, dy.H, dy.W,
                Ptr(dx) + (ulong)(n0 * Stride(dx)) * 4, Stride(dx), accumulate ? 1 : 0);
        }
    }

    // Cost: the chunk's input read once (the k*k overlapping reads of a pixel hit L1/L2), its
    // columns (k*k/stride^2 times the input) written, to be read again by the GEMM.
    private void Im2Col(in Tensor x, int n0, int count, ConvGeometry g, in Tensor y, ulong col) =>
        Launch1D("im2col", (long)count * x.C * g.Kernel * g.Kernel * y.Plane,
            LaunchCost.Fp32(read: (long)count * x.C * x.Plane, written: (long)count * x.C * g.Kernel * g.Kernel * y.Plane, flops: 0), $"conv {x}", Ptr(x) + (ulong)(n0 * Stride(x)) * 4, Stride(x),
            count, x.C, x.H, x.W, g.Kernel, g.Stride, g.Padding, y.H, y.W, col);

    public void DepthwiseConvForward(in Tensor x, in Tensor w, in Tensor y, ConvGeometry g)
    {
        Op(OpFamily.DepthwiseConvForward);
        ShapeChecks.Depthwise("depthwise_conv_fwd", x, w, y, g);
        long taps = (long)g.Kernel * g.Kernel;
        // Cost: x read once (neighbouring taps from L1/L2), the filters, y written; k*k FMAs per output (padding taps included).
        Launch1D("depthwise_conv_fwd", y.Count, LaunchCost.Fp32(read: x.Count + y.C * taps, written: y.Count, flops: 2 * y.Count * taps), $"{x} -> {y} {g}", Ptr(x), Stride(x), Ptr(w), Ptr(y), Stride(y),
            x.N, x.C, x.H, x.W, y.C, y.H, y.W, g.Kernel, g.Stride, g.Padding);
    }

    public void DepthwiseConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, ConvGeometry g)
    {
        Op(OpFamily.DepthwiseConvBackward);
        ShapeChecks.Depthwise("depthwise_conv_bwd", x, w, dy, g);
        if (g.Kernel > 5) throw new NotSupportedException($"depthwise_conv_bwd_weight keeps at most 5x5 taps in registers, got {g}");
        int taps = g.Kernel * g.Kernel;
        if (!dx.IsNone)
        {
            ShapeChecks.Same("depthwise_conv_bwd dx", x, dx);
            // Cost: dy read once, the filters, dx written (and read when accumulating); the forward's FMAs.
            Launch1D("depthwise_conv_bwd_data", x.Count,
                LaunchCost.Fp32(read: dy.Count + (long)dy.C * taps + (accumulate ? x.Count : 0), written: x.Count, flops: 2L * dy.Count * taps), $"{dy} -> {dx} {g}", Ptr(dy), Stride(dy), Ptr(w), Ptr(dx), Stride(dx),
                x.N, x.C, x.H, x.W, dy.C, dy.H, dy.W, g.Kernel, g.Stride, g.Padding, accumulate ? 1 : 0);
        }
        var (chunks, chunk) = ChannelChunks(dy.C, (long)dy.N * dy.Plane);
        ulong parts = chunks > 1 ? Partials((long)dy.C * chunks * taps * 2) : 0;
        long dwTaps = (long)dy.C * taps, partBytes = chunks > 1 ? 8 * dwTaps * chunks : 0;
        // Cost: x and dy read once each (the channel multiplier's re-reads of x hit L2), dW written, or the chunks' double parts.
        Launch("depthwise_conv_bwd_weight", (uint)dy.C, (uint)chunks, 1, Threads,
            LaunchCost.Fp32(read: x.Count + dy.Count, written: chunks > 1 ? 0 : dwTaps, flops: 2L * dy.Count * taps, otherBytes: partBytes), $"{x}, {dy} {g}", Ptr(x), Stride(x), Ptr(dy), Stride(dy), Ptr(dw),
            x.N, x.C, x.H, x.W, dy.C, dy.H, dy.W, g.Kernel, g.Stride, g.Padding, chunk, parts);
        if (chunks > 1)
            Launch1D("depthwise_conv_finish_weight", dwTaps, LaunchCost.Fp32(read: 0, written: dwTaps, flops: dwTaps * chunks, otherBytes: partBytes), $"{dy} {g}", parts, chunks, dy.C, taps, Ptr(dw));
    }

    /// <summary>
    /// dW (M x N, row-major) = sum over <paramref name="images"/> of A[n] B[n] (+ beta dW), K = P
    /// pixels per image, image n's operands sAs / sBs after image 0's. Split-K over groups of
    /// whole images so that the grid holds about two blocks per SM even when dW is a single tile
    /// (16 x 8 early in the network); the groups' partial products are added in group order by
    /// split_sum (deterministic: the grouping depends only on the shapes and the SM count).
    /// </summary>
    private void WeightGradient(int m, int n, int images, int p, ulong a, long sAi, long sAk, long sAs,
        ulong b, long sBk, long sBj, long sBs, ulong dw, float beta, string context)
    {
        int tiles = (m + GemmTile - 1) / GemmTile * ((n + GemmTile - 1) / GemmTile);
        int groups = Math.Clamp((2 * Device.Multiprocessors + tiles - 1) / tiles, 1, images);
        int perGroup = (images + groups - 1) / groups, full = images / perGroup, rest = images - full * perGroup;
        groups = full + (rest > 0 ? 1 : 0);
        if (groups == 1)
        {
            Gemm(m, n, images * p, a, 0, sAi, sAk, b, 0, sBk, sBj, dw, 0, n, beta, 0, 1, context, p, sAs, sBs);
            return;
        }
        long mn = (long)m * n;
        ulong partial = Partials(groups * mn);
        Gemm(m, n, perGroup * p, a, perGroup * sAs, sAi, sAk, b, perGroup * sBs, sBk, sBj, partial, mn, n, 0f, 0, full, context, p, sAs, sBs);
        if (rest > 0)
        {
            long skipped = (long)full * perGroup;
            Gemm(m, n, rest * p, a + (ulong)(skipped * sAs) * 4, 0, sAi, sAk, b + (ulong)(skipped * sBs) * 4, 0, sBk, sBj,
                partial + (ulong)(full * mn) * 4, 0, n, 0f, 0, 1, context, p, sAs, sBs);
        }
        // Cost: every group's partial product read once, dW written (and read when beta is not 0).
        Launch1D("split_sum", mn, LaunchCost.Fp32(read: groups * mn + (beta != 0 ? mn : 0), written: mn, flops: groups * mn), context, partial, groups, mn, dw, beta);
    }

    /// <summary>
    /// gemm_f32 over <paramref name="batch"/> matrices; strides in elements (see gemm.cu). K runs in
    /// segments of <paramref name="kSegment"/> (0: one segment) that start sAs / sBs apart.
    /// </summary>
    private void Gemm(int m, int n, int k, ulong a, long sAb, long sAi, long sAk, ulong b, long sBb, long sBk, long sBj,
        ulong c, long sCb, long sCi, float beta, ulong bias, int batch, string context, int kSegment = 0, long sAs = 0, long sBs = 0)
    {
        // Cost: 2 M N K FLOPs per matrix (the padding of partial 64x64 tiles not counted); A and B
        // read once each (once for all the batch when its batch stride is 0, as for the weights):
        // the tiles' re-reads are assumed to hit L2; C written once (read first when beta is not 0).
        long aRead = (long)m * k * (sAb == 0 ? 1 : batch), bRead = (long)k * n * (sBb == 0 ? 1 : batch), cWritten = (long)m * n * batch;
        var cost = LaunchCost.Fp32(read: aRead + bRead + (beta != 0 ? cWritten : 0) + (bias != 0 ? n : 0), written: cWritten, flops: 2L * m * n * k * batch);
        Launch("gemm_f32", (uint)((n + GemmTile - 1) / GemmTile), (uint)((m + GemmTile - 1) / GemmTile), (uint)batch, Threads, cost,
            $"{context} (M={m} N={n} K={k} batch={batch})",
            m, n, k, kSegment == 0 ? Math.Max(k, 1) : kSegment, a, sAb, sAi, sAk, sAs, b, sBb, sBk, sBj, sBs, c, sCb, sCi, beta, bias);
    }
}

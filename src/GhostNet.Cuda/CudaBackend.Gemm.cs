using GhostNet.Backends;

namespace GhostNet.Cuda;

/// <summary>
/// One input of gemm_f32 (gemm.cu), strides in elements: element (index, k) of matrix z is at
/// Pointer + z * Batch + index * Row + k * K, where index is i for A and j for B. With K in
/// segments of kSeg, k = s * kSeg + r is at s * Segment + r * K.
/// </summary>
internal readonly record struct GemmOperand(ulong Pointer, long Batch = 0, long Row = 0, long K = 0, long Segment = 0);

/// <summary>
/// The output of gemm_f32: C(i, j) of matrix z at Pointer + z * Batch + i * Row + j, times Beta of
/// its old value added, plus Bias[j]; with Activated set (v2.14), activation(C) written there too,
/// laid out as C (Activation: 1 ReLU, 2 hard-sigmoid, as <see cref="GhostNet.Backends.Activation"/>).
/// </summary>
internal readonly record struct GemmOutput(ulong Pointer, long Batch, long Row, float Beta = 0f, ulong Bias = 0, int Activation = 0, ulong Activated = 0);

/// <summary>
/// Where a split-K GEMM's pieces are added by the tile's last block to finish (gemm.cu's
/// finish_split, v2.8): Out (row-major, the partial products' row stride), times Beta of its old
/// value added; Done, one arrival counter per output tile.
/// </summary>
internal readonly record struct SplitKSum(ulong Out, float Beta, ulong Done);

/// <summary>
/// A GEMM operand that is the input gradient of the batch norm that read the conv's output z
/// (gemm.cu's GEMM_BN_PARAMS, v2.9): the operand's own pointer holds the batch norm's output
/// gradient, z lies at Z + matrix * ZBatch + the operand's offsets (ZSegment per K segment), and
/// each element is computed as batch_norm_bwd_data would write it. Operand: 1 for A, 2 for B.
/// </summary>
internal readonly record struct GemmBatchNorm(int Operand, ulong Z, long ZBatch, long ZSegment, ulong Gamma, ulong Beta, ulong Mean, ulong InvStd,
    ulong DGamma, ulong DBeta, int ActKind, float InvM);

/// <summary>
/// The training batch norm whose statistics a GEMM's epilogue computes from its output (gemm.cu's
/// tile_stats, v2.10): the four statistics as batch_norm_stats writes them. Gemm sizes the merge's
/// parts and counters from the grid it launches.
/// </summary>
internal readonly record struct GemmStats(ulong Mean, ulong InvStd, ulong RunningMean, ulong RunningVar, float Momentum, float Eps);

/// <summary>
/// Operand B scaled as it is loaded (gemm.cu's GATE kernels, v2.18): B(k, j) of matrix z times
/// Gate[z * Batch + seg * Segment + r * K + j * Row], k = seg * kSeg + r: squeeze-excite's output
/// x * gate read from x. Only with a batch-norm operand on A or the statistics epilogue.
/// </summary>
internal readonly record struct GemmGate(ulong Gate, long Batch = 0, long Segment = 0, long Row = 0, long K = 0);

/// <summary>
/// Which GEMM operand is a weight (fp32 always) and which are activations (the backend's
/// activation type): convolutions have it in A (W X, W^T dY), linear layers in B (X W^T, dY W);
/// a weight gradient (dY X^T) has none, and is the one output in fp32 (gemm.cu's GemmOut).
/// With bf16 activations each case is its own kernel (gemm.cu's _wa and _wb entry points).
/// </summary>
internal enum GemmWeight { None, InA, InB }

/// <summary>What a GEMM fuses of the batch norm around it: gemm_f32_*, gemm_f32_bn_* (an operand is its input gradient), gemm_f32_stats_* (its output's statistics).</summary>
internal enum GemmFusion { None, BatchNormOperand, Statistics }

/// <summary>The arithmetic of CudaBackend's GEMMs (see <see cref="CudaBackend.Precision"/>).</summary>
public enum GemmPrecision
{
    /// <summary>fp32 FMAs on the SIMT cores (gemm_f32_*): the reference.</summary>
    Fp32,
    /// <summary>TF32 tensor-core MMAs (gemm_tf32_*): operands rounded to a 10-bit mantissa, fp32 accumulation.</summary>
    Tf32,
    /// <summary>3xTF32 (gemm_tf32x3_*): each operand split as tf32 big + tf32 small, three MMAs per product, about fp32 accuracy.</summary>
    Tf32x3,
}

// The GEMMs (kernel: gemm.cu): tile choice, split-K, and the weight gradients that sum over a batch.
public sealed partial class CudaBackend
{
    /// <summary>gemm.cu's entry points, (rows, columns) of the output tile one block computes.</summary>
    private static readonly (int M, int N)[] GemmTiles = [(64, 64), (32, 128), (128, 32), (16, 256), (256, 16), (32, 32), (16, 16)];

    /// <summary>gemm.cu's tensor-core (gemm_tc_tile) shapes, each as gemm_tf32_MxN and gemm_tf32x3_MxN.</summary>
    private static readonly (int M, int N)[] TensorTiles = [(128, 64), (64, 128), (64, 64), (16, 256), (256, 16), (32, 32)];

    /// <summary>
    /// Every GEMM entry point (made once: a launch allocates nothing): the fp32 tiles in
    /// GemmTiles' order, the tf32 and the 3xTF32 tiles in TensorTiles' order, then the fp32 tiles
    /// with a batch-norm operand (gemm_f32_bn_MxN, v2.9) and with the statistics epilogue
    /// (gemm_f32_stats_MxN, v2.10), and both again with operand B gated (gemm_f32_bn_gate_MxN,
    /// gemm_f32_stats_gate_MxN, v2.18), each in GemmTiles' order.
    /// </summary>
    internal static readonly string[] GemmKernels =
    [
        .. GemmTiles.Select(t => $"gemm_f32_{t.M}x{t.N}"),
        .. TensorTiles.Select(t => $"gemm_tf32_{t.M}x{t.N}"),
        .. TensorTiles.Select(t => $"gemm_tf32x3_{t.M}x{t.N}"),
        .. GemmTiles.Select(t => $"gemm_f32_bn_{t.M}x{t.N}"),
        .. GemmTiles.Select(t => $"gemm_f32_stats_{t.M}x{t.N}"),
        .. GemmTiles.Select(t => $"gemm_f32_bn_gate_{t.M}x{t.N}"),
        .. GemmTiles.Select(t => $"gemm_f32_stats_gate_{t.M}x{t.N}"),
    ];

    /// <summary>GemmKernels' names with a weight in A (_wa) and in B (_wb): bf16 activations' variants (made once, as GemmKernels).</summary>
    internal static readonly string[] GemmKernelsWeightA = GemmKernels.Select(k => k + "_wa").ToArray(), GemmKernelsWeightB = GemmKernels.Select(k => k + "_wb").ToArray();

    /// <summary>The kernel of GemmKernels index <paramref name="kernel"/> for this backend's activations and where the weight is.</summary>
    private string GemmKernel(int kernel, GemmWeight weight) =>
        ActivationType == Backends.ElementType.Float32 || weight == GemmWeight.None ? GemmKernels[kernel]
        : weight == GemmWeight.InA ? GemmKernelsWeightA[kernel] : GemmKernelsWeightB[kernel];

    /// <summary>
    /// The arithmetic this backend's GEMMs run in: <see cref="Precision"/>, but fp32 (the SIMT
    /// kernels) with bf16 activations, whose operands the tensor-core kernels' fp32 copies cannot
    /// load. A bf16 product is exact in fp32, so these GEMMs round only their sums.
    /// </summary>
    private GemmPrecision GemmPrecisionNow => ActivationType == Backends.ElementType.Float32 ? Precision : GemmPrecision.Fp32;

    /// <summary>
    /// The arithmetic of every GEMM (pointwise and dense convolutions, linear layers) this
    /// backend launches. Fp32 (the default) is the SIMT kernel, the exact reference the tests
    /// compare with the CPU at 1e-5; Tf32 and Tf32x3 are the tensor-core kernel (sm_80+).
    /// </summary>
    public GemmPrecision Precision
    {
        get => _precision;
        set
        {
            if (value != GemmPrecision.Fp32 && Device.Major < 8)
                throw new ArgumentException($"{value} needs tensor cores with mma.sync (compute capability 8.0 or newer); {Device.Name} is {Device.Major}.{Device.Minor}");
            _precision = value;
        }
    }

    private GemmPrecision _precision = GemmPrecision.Fp32;

    /// <summary>
    /// The longest run of K one block sums in fp32 in a weight gradient (rounding grows with the
    /// length: ~1e-6 relative at 4,096 terms); longer sums are split into pieces that split_sum
    /// adds in double. Forward GEMMs run K (at most 960 channels in GhostNet) in one fp32 sum, as cuBLAS does.
    /// </summary>
    internal const int MaxKPiece = 4096;

    /// <summary>The shortest piece split-K makes for parallelism alone (each piece costs M x N partial floats).</summary>
    private const int MinKPiece = 256;

    private const int GemmK = 16; // BK in gemm.cu: pieces start at multiples of it

    /// <summary>
    /// Whether a split-K weight gradient's pieces are added inside the GEMM, by each tile's last
    /// block to finish (v2.8, the default), or by a split_sum launch after it (the unfused path,
    /// which the tests compare with bit for bit).
    /// </summary>
    public bool SumSplitKInGemm { get; set; } = true;

    /// <summary>The fp32 tile gemm.cu's SIMT kernel uses for an M x N output (see <see cref="PickTileIndex"/>).</summary>
    internal static (int M, int N) PickTile(int m, int n) => GemmTiles[PickTileIndex(GemmTiles, m, n)];

    /// <summary>
    /// The tile and GemmKernels index of an M x N output at <paramref name="precision"/>, plain or
    /// with a batch norm fused (<paramref name="fusion"/>: fp32 only).
    /// </summary>
    internal static (int M, int N, int Kernel) PickKernel(int m, int n, GemmPrecision precision, GemmFusion fusion = GemmFusion.None, bool gated = false)
    {
        if (fusion != GemmFusion.None && precision != GemmPrecision.Fp32)
            throw new ArgumentException($"a GEMM with a batch norm fused ({fusion}) runs in fp32 only, not {precision}");
        if (gated && fusion == GemmFusion.None) throw new ArgumentException("only the batch-norm GEMMs have gated kernels (v2.18)");
        if (precision == GemmPrecision.Fp32)
        {
            // The fused tile is the plain one (so are the split and the order of every sum).
            int i = PickTileIndex(GemmTiles, m, n), family = fusion switch { GemmFusion.BatchNormOperand => 1, GemmFusion.Statistics => 2, _ => 0 } + (gated ? 2 : 0);
            return (GemmTiles[i].M, GemmTiles[i].N, i + (family == 0 ? 0 : 2 * TensorTiles.Length + family * GemmTiles.Length));
        }
        int t = PickTileIndex(TensorTiles, m, n);
        int kernel = GemmTiles.Length + (precision == GemmPrecision.Tf32x3 ? TensorTiles.Length : 0) + t;
        return (TensorTiles[t].M, TensorTiles[t].N, kernel);
    }

    private static GemmFusion Fusion(in GemmBatchNorm bn, bool stats) =>
        bn.Operand != 0 && stats ? throw new ArgumentException("a GEMM fuses a batch-norm operand or its output's statistics, not both (no kernel does both)")
        : bn.Operand != 0 ? GemmFusion.BatchNormOperand : stats ? GemmFusion.Statistics : GemmFusion.None;

    /// <summary>
    /// The tile of <paramref name="tiles"/> with the least padding of an M x N output, the one
    /// listed first on a tie: among the tiles of 4,096 outputs or more (16 or more per thread),
    /// unless a smaller tile pads less than half as much, since a small tile reuses each loaded
    /// value fewer times.
    /// </summary>
    private static int PickTileIndex(ReadOnlySpan<(int M, int N)> tiles, int m, int n)
    {
        int large = -1, small = -1;
        long largePadding = long.MaxValue, smallPadding = long.MaxValue;
        for (int i = 0; i < tiles.Length; i++)
        {
            long padded = (long)((m + tiles[i].M - 1) / tiles[i].M * tiles[i].M) * ((n + tiles[i].N - 1) / tiles[i].N * tiles[i].N);
            if (tiles[i].M * tiles[i].N >= 4096)
            {
                if (padded < largePadding) (large, largePadding) = (i, padded);
            }
            else if (padded < smallPadding) (small, smallPadding) = (i, padded);
        }
        return small >= 0 && 2 * smallPadding < largePadding ? small : large;
    }

    /// <summary>
    /// gemm_f32 over <paramref name="batch"/> matrices (see gemm.cu); K runs in segments of
    /// <paramref name="kSegment"/> (0: one segment), and with <paramref name="kPiece"/> &gt; 0
    /// matrix z sums only k in [z kPiece, (z + 1) kPiece).
    /// </summary>
    private void Gemm(int m, int n, int k, GemmOperand a, GemmOperand b, GemmOutput c, int batch, string context, GemmWeight weight, int kSegment = 0, int kPiece = 0,
        SplitKSum sum = default, GemmBatchNorm bn = default, GemmStats? stats = null, GemmGate gate = default)
    {
        bool gated = gate.Gate != 0;
        if (gated && bn.Operand == 2) throw new ArgumentException($"{context}: operand B is gated or a batch norm's gradient, not both");
        if (kSegment <= 0 || kSegment >= k) kSegment = Math.Max(k, 1);
        else if (a.K != 1 || b.Row == 1)
            throw new ArgumentException($"{context}: K in segments needs both operands contiguous along K (A k-stride {a.K}, B j-stride {b.Row})");
        var precision = GemmPrecisionNow;
        var tile = PickKernel(m, n, precision, Fusion(bn, stats is not null), gated);
        // Cost: 2 M N K FLOPs per matrix, or in all for split-K pieces (the padding of partial
        // tiles not counted); A and B read once each (once for all the batch when its batch stride
        // is 0, as for the weights and split-K): the tiles' re-reads are assumed to hit L2; C
        // written once (read first when beta is not 0).
        long aRead = (long)m * k * (a.Batch == 0 ? 1 : batch), bRead = (long)k * n * (b.Batch == 0 ? 1 : batch), cWritten = (long)m * n * batch;
        // With the pieces summed in the GEMM (v2.8), the last blocks read every partial product
        // once more and write the sum (reading it first when beta is not 0), as split_sum would.
        long mn = (long)m * n, sumRead = sum.Out != 0 ? cWritten + (sum.Beta != 0 ? mn : 0) : 0, sumWritten = sum.Out != 0 ? mn : 0;
        // Tensor-core FLOPs are counted at the Tf32 peak, 3xTF32's three MMAs per product as 3x.
        long flops = 2L * m * n * k * (kPiece > 0 ? 1 : batch);
        // A batch-norm operand reads z besides dy, and six values per channel (each of its K-tile
        // loads recomputes BnInputGrad: ~15 FLOPs an element, all channels counted at least once).
        long bnRead = bn.Operand == 1 ? aRead + 6L * m : bn.Operand == 2 ? bRead + 6L * k : 0;
        // Statistics: 4 FLOPs per output in the epilogue; each block's part per row (3 doubles)
        // written and read back by the merge; the four statistics (running ones read too).
        uint gridX = (uint)((n + tile.N - 1) / tile.N), gridY = (uint)((m + tile.M - 1) / tile.M);
        long parts = stats is null ? 0 : 3L * m * gridX * batch; // doubles: one (count, mean, M2) per row of each block
        ulong partsPointer = stats is null ? 0 : Partials(2 * parts), done = stats is null ? 0 : Counters((int)gridY);
        var st = stats.GetValueOrDefault();
        // A gate: one value read per (matrix, k) or per (segment, j), and a multiply per B element loaded.
        long gateRead = !gated ? 0 : gate.Batch != 0 ? (long)k * batch : (long)n * ((k + kSegment - 1) / kSegment);
        if (c.Activated != 0 && (kPiece > 0 || sum.Out != 0)) throw new ArgumentException($"{context}: an activation needs the whole sum, not split-K pieces");
        // Bytes by type: a weight, the bias, the batch norm's values and statistics, split-K's
        // partials and a weight gradient (weight None: C) in fp32; the rest activations.
        long act = ActivationType.Bytes(), aBytes = weight == GemmWeight.InA ? 4 : act, bBytes = weight == GemmWeight.InB ? 4 : act,
            cBytes = weight == GemmWeight.None ? 4 : act;
        long zRead = bn.Operand == 0 ? 0 : bnRead - 6L * (bn.Operand == 1 ? m : k);
        long bytes = aRead * aBytes + bRead * bBytes + (c.Beta != 0 ? cWritten * cBytes : 0) + 4L * (c.Bias != 0 ? n : 0) + 4 * sumRead
            + zRead * act + 4 * (bnRead - zRead) + 4 * (stats is null ? 0 : 2L * m) + gateRead * act
            + cWritten * cBytes + 4 * sumWritten + 4 * (stats is null ? 0 : 4L * m) + (c.Activated != 0 ? cWritten * act : 0) + 2 * 8 * parts;
        var cost = new LaunchCost(bytes, flops + 15 * (bn.Operand == 0 ? 0 : bn.Operand == 1 ? aRead : bRead) + (stats is null ? 0 : 4 * cWritten) + (gated ? bRead : 0));
        if (precision != GemmPrecision.Fp32) cost = cost with { Flops = precision == GemmPrecision.Tf32x3 ? 3 * flops : flops, Precision = GhostNet.Cuda.Precision.Tf32 };
        Launch(GemmKernel(tile.Kernel, weight), gridX, gridY, (uint)batch, Threads, cost,
            $"{context} (M={m} N={n} K={k} batch={batch})",
            m, n, k, kSegment, kPiece, a.Pointer, a.Batch, a.Row, a.K, a.Segment, b.Pointer, b.Batch, b.K, b.Row, b.Segment,
            c.Pointer, c.Batch, c.Row, c.Beta, c.Bias, sum.Out, sum.Beta, sum.Done, c.Activation, c.Activated,
            bn.Operand, bn.Z, bn.ZBatch, bn.ZSegment, bn.Gamma, bn.Beta, bn.Mean, bn.InvStd, bn.DGamma, bn.DBeta, bn.ActKind, bn.InvM,
            st.Mean, st.InvStd, st.RunningMean, st.RunningVar, st.Momentum, st.Eps, partsPointer, done, gate.Gate, gate.Batch, gate.Segment, gate.Row, gate.K);
    }

    /// <summary>
    /// dW (M x N, row-major) = sum over K = images x p of A B (+ beta dW), image n's operands a
    /// Segment after image 0's. K is cut into pieces no longer than MaxKPiece, and into enough
    /// of them for about two blocks per SM when dW has few tiles (16 x 8 early in the network);
    /// pieces may split an image (the stem: 12,544 pixels per image). The pieces' partial
    /// products are added in order by split_sum, in double: deterministic, since the cut
    /// depends only on the shapes and the SM count.
    /// </summary>
    private void WeightGradient(int m, int n, int images, int p, GemmOperand a, GemmOperand b, ulong dw, float beta, string context, GemmBatchNorm bn = default,
        GemmGate gate = default)
    {
        long k = (long)images * p;
        // The kernels add a piece and a K step to k in int: keep that sum below 2^31 too.
        if (k > int.MaxValue - 2 * MaxKPiece) throw new ArgumentException($"{context}: K = {k} exceeds the kernel's int range");
        if (p == 1) // one pixel per image: plain strides
        {
            if (bn.Operand != 0 || gate.Gate != 0) throw new ArgumentException($"{context}: a batch-norm operand or a gate needs planes of more than one pixel");
            (a, b, p) = (a with { K = a.Segment, Segment = 0 }, b with { K = b.Segment, Segment = 0 }, (int)k);
        }
        var tile = PickKernel(m, n, GemmPrecisionNow, Fusion(bn, false), gate.Gate != 0);
        long tiles = (long)((m + tile.M - 1) / tile.M) * ((n + tile.N - 1) / tile.N);
        long pieces = Math.Max((k + MaxKPiece - 1) / MaxKPiece, Math.Min((2 * Device.Multiprocessors + tiles - 1) / tiles, (k + MinKPiece - 1) / MinKPiece));
        pieces = Math.Min(pieces, 65535); // the grid's z limit; only past ~268M terms are pieces longer than MaxKPiece
        int kPiece = (int)((k + pieces - 1) / pieces + GemmK - 1) / GemmK * GemmK;
        pieces = (k + kPiece - 1) / kPiece;
        if (pieces == 1)
        {
            Gemm(m, n, (int)k, a, b, new(dw, 0, n, beta), 1, context, GemmWeight.None, p, kPiece: 0, bn: bn, gate: gate);
            return;
        }
        long mn = (long)m * n;
        ulong partial = Partials(pieces * mn);
        if (SumSplitKInGemm)
        {
            Gemm(m, n, (int)k, a, b, new(partial, mn, n), (int)pieces, context, GemmWeight.None, p, kPiece, new SplitKSum(dw, beta, Counters((int)tiles)), bn, gate: gate);
            return;
        }
        Gemm(m, n, (int)k, a, b, new(partial, mn, n), (int)pieces, context, GemmWeight.None, p, kPiece, bn: bn, gate: gate);
        // Cost: every piece's partial product read once, dW written (and read when beta is not 0).
        Launch1D("split_sum", mn, LaunchCost.Fp32(read: pieces * mn + (beta != 0 ? mn : 0), written: mn, flops: pieces * mn), context, partial, (int)pieces, mn, dw, beta);
    }
}

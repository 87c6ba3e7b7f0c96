using GhostNet.Backends;

namespace GhostNet.Cpu;

// Pointwise (1x1) convolution, NCHW: per image Y[Cout, HW] = W[Cout, Cin] X[Cin, HW], a GEMM
// whose B and C are the image's channel planes (a channel window is still one matrix with row
// stride HW). Forward and dx split the output into (image, column block) tiles; dw splits the
// rows of dW and sums over images inside each tile, so no two tiles write the same memory.
public sealed unsafe partial class CpuBackend
{
    private const int ColumnBlock = 512;
    private const int WeightRowBlock = 4;

    public void PointwiseConvForward(in Tensor x, in Tensor w, in Tensor y)
    {
        ShapeChecks.Pointwise("pointwise_conv_fwd", x, w, y);
        var job = new PointwiseJob
        {
            A = Ptr(w), ARow = w.C, ACol = 1, K = x.C, M = y.C,
            B = x, C = y, Accumulate = false, Blocks = Blocks(x.Plane),
        };
        For(x.N * job.Blocks, y.Count * x.C, job);
    }

    /// <summary>Unfused on the CPU: z is written, then read by the batch norm; a sum is added after.</summary>
    public void PointwiseConvBatchNormForward(in Tensor x, in Tensor w, in Tensor z, in Tensor y, in BatchNormTensors p, BatchNormOptions o, bool deferApply = false,
        ResidualSum? sum = null)
    {
        ShapeChecks.FusedActivation("pointwise_conv_bn_fwd", o);
        if (sum is { } checkedSum) ShapeChecks.Sum("pointwise_conv_bn_fwd", checkedSum, y, deferApply);
        PointwiseConvForward(x, w, z);
        if (deferApply) BatchNormStatistics(z, p, o); // y is written by the conv that reads it, as on the GPU
        else BatchNormTrainForward(z, y, p, o);
        if (sum is { } s) Add(y, s.Addend, s.Sum);
    }

    /// <summary>False: the CPU writes squeeze-excite's output and reads it back while in cache.</summary>
    public bool FusesGatedInput => false;

    /// <summary>Unfused on the CPU: x.Y is written (ChannelScale), then read by the pair.</summary>
    public void PointwiseConvBatchNormForward(in GatedInput x, in Tensor w, in Tensor z, in Tensor y, in BatchNormTensors p, BatchNormOptions o, bool deferApply = false)
    {
        ShapeChecks.FusedActivation("pointwise_conv_bn_fwd", o);
        ChannelScale(x.X, x.Gate, x.Y);
        PointwiseConvBatchNormForward(x.Y, w, z, y, p, o, deferApply);
    }

    /// <summary>Unfused on the CPU: the pair's backward reads x.Y, which this backend's forward wrote.</summary>
    public void PointwiseConvBatchNormBackward(in GatedInput x, in Tensor w, in Tensor z, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o,
        bool bnGradientsReady = false) =>
        PointwiseConvBatchNormBackward(x.Y, w, z, dy, dx, accumulate, dw, p, o, bnGradientsReady);

    /// <summary>
    /// Unfused on the CPU: z's gradient is written, then read by the conv's backward. The batch
    /// norm's parameter gradients are reduced whether or not they are ready: the CPU's z gradient
    /// uses the double sums, which are not kept, and recomputing them gives the same values.
    /// </summary>
    public void PointwiseConvBatchNormBackward(in Tensor x, in Tensor w, in Tensor z, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o,
        bool bnGradientsReady = false)
    {
        ShapeChecks.FusedActivation("pointwise_conv_bn_bwd", o);
        BatchNormBackward(z, dy, z.Grad, false, p, o);
        PointwiseConvBackward(x, w, z.Grad, dx, accumulate, dw);
    }

    public void PointwiseConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw)
    {
        ShapeChecks.Pointwise("pointwise_conv_bwd", x, w, dy);
        if (!dx.IsNone)
        {
            ShapeChecks.Same("pointwise_conv_bwd dx", x, dx);
            var job = new PointwiseJob
            {
                A = Ptr(w), ARow = 1, ACol = w.C, K = w.N, M = w.C,
                B = dy, C = dx, Accumulate = accumulate, Blocks = Blocks(x.Plane),
            };
            For(x.N * job.Blocks, dy.Count * x.C, job);
        }
        var wj = new PointwiseWeightGradJob { X = x, Dy = dy, Dw = Ptr(dw), Cin = x.C, Cout = dy.C };
        For((dy.C + WeightRowBlock - 1) / WeightRowBlock, dy.Count * x.C, wj);
    }

    private static int Blocks(int plane) => (plane + ColumnBlock - 1) / ColumnBlock;

    /// <summary>C[n] (+)= A B[n] for one (image, column block) tile.</summary>
    private struct PointwiseJob : IParallelBody
    {
        public float* A;
        public long ARow, ACol;
        public int K, M, Blocks;
        public Tensor B, C;
        public bool Accumulate;

        public readonly void Execute(int index, int worker)
        {
            int n = index / Blocks, j0 = index % Blocks * ColumnBlock;
            int plane = B.Plane, cols = Math.Min(ColumnBlock, plane - j0);
            Gemm.AB(M, cols, K, A, ARow, ACol, PlanePtr(B, n, 0) + j0, plane, PlanePtr(C, n, 0) + j0, plane, Accumulate);
        }
    }

    /// <summary>Rows [r0, r0 + 4) of dW = sum over images of dY[n] X[n]^T.</summary>
    private struct PointwiseWeightGradJob : IParallelBody
    {
        public Tensor X, Dy;
        public float* Dw;
        public int Cin, Cout;

        public readonly void Execute(int index, int worker)
        {
            int r0 = index * WeightRowBlock, rows = Math.Min(WeightRowBlock, Cout - r0);
            int plane = X.Plane;
            for (int n = 0; n < X.N; n++)
                Gemm.ABt(rows, Cin, plane, PlanePtr(Dy, n, r0), plane, PlanePtr(X, n, 0), plane, Dw + (long)r0 * Cin, Cin, n > 0);
        }
    }
}

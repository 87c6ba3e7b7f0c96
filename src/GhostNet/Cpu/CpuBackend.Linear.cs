using GhostNet.Backends;

namespace GhostNet.Cpu;

// Fully connected layer y = x W^T + b on N x K x 1 x 1 tensors (conv_head, classifier and the
// two 1x1 convolutions of squeeze-excite, whose input is 1 x 1 spatially). Tasks split the
// output columns (forward, dx) or the rows of dW; none write the same memory.
public sealed unsafe partial class CpuBackend
{
    private const int LinearBlock = 64;

    public void LinearForward(in Tensor x, in Tensor w, in Tensor b, in Tensor y)
    {
        ShapeChecks.Linear("linear_fwd", x, w, y);
        var job = new LinearJob { Kind = 0, X = Ptr(x), W = Ptr(w), B = b.IsNone ? null : Ptr(b), Y = Ptr(y), N = x.N, K = x.C, M = w.N };
        For((job.M + LinearBlock - 1) / LinearBlock, (long)x.N * x.C * w.N, job);
    }

    /// <summary>Unfused on the CPU: the activation reads y while it is in cache.</summary>
    public void LinearForward(in Tensor x, in Tensor w, in Tensor b, in Tensor y, Activation activation, in Tensor activated)
    {
        LinearForward(x, w, b, y);
        if (activation != Activation.None) this.Activate(y, activation, activated);
    }

    /// <summary>Unfused on the CPU: the activation's backward writes y's gradient, then the linear backward reads it.</summary>
    public void LinearBackward(in Tensor x, in Tensor w, in ActivatedOutput y, in Tensor dx, bool accumulate, in Tensor dw, in Tensor db)
    {
        if (y.Activation != Activation.None) this.ActivationBackward(y.Y, y.Activated, y.Activation, y.Activated.Grad, y.Y.Grad, accumulate: false);
        LinearBackward(x, w, y.Y.Grad, dx, accumulate, dw, db);
    }

    public void LinearBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in Tensor db)
    {
        ShapeChecks.Linear("linear_bwd", x, w, dy);
        int n = x.N, k = x.C, m = w.N;
        long work = (long)n * k * m;
        if (!dx.IsNone)
        {
            ShapeChecks.Same("linear_bwd dx", x, dx);
            var dj = new LinearJob { Kind = 1, X = Ptr(dx), W = Ptr(w), Y = Ptr(dy), N = n, K = k, M = m, Accumulate = accumulate };
            For((k + LinearBlock - 1) / LinearBlock, work, dj);
        }
        var wj = new LinearJob { Kind = 2, X = Ptr(x), W = Ptr(dw), Y = Ptr(dy), N = n, K = k, M = m };
        For((m + LinearBlock - 1) / LinearBlock, work, wj);
        if (db.IsNone) return;
        float* dbp = Ptr(db), dyp = Ptr(dy);
        Simd.Copy(dyp, dbp, m);
        for (int i = 1; i < n; i++) Simd.Add(dyp + (long)i * m, dbp, dbp, m);
    }

    private struct LinearJob : IParallelBody
    {
        public int Kind; // 0 forward, 1 dx, 2 dw
        public float* X, W, B, Y;
        public int N, K, M;
        public bool Accumulate;

        public readonly void Execute(int index, int worker)
        {
            int j0 = index * LinearBlock;
            switch (Kind)
            {
                case 0:
                {
                    int cols = Math.Min(LinearBlock, M - j0);
                    Gemm.ABt(N, cols, K, X, K, W + (long)j0 * K, K, Y + j0, M, false);
                    if (B != null) for (int i = 0; i < N; i++) Simd.Add(Y + (long)i * M + j0, B + j0, Y + (long)i * M + j0, cols);
                    return;
                }
                case 1:
                {
                    int cols = Math.Min(LinearBlock, K - j0);
                    Gemm.AB(N, cols, M, Y, M, 1, W + j0, K, X + j0, K, Accumulate);
                    return;
                }
                default:
                {
                    int rows = Math.Min(LinearBlock, M - j0);
                    Gemm.AB(rows, K, N, Y + j0, 1, M, X, K, W + (long)j0 * K, K, false);
                    return;
                }
            }
        }
    }
}

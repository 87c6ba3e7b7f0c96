using GhostNet.Backends;

namespace GhostNet.Cuda;

// Linear layers, dropout, the loss, top-k and SGD (kernels: gemm.cu, dropout.cu, cross_entropy.cu, sgd.cu).
public sealed partial class CudaBackend
{
    public void LinearForward(in Tensor x, in Tensor w, in Tensor b, in Tensor y)
    {
        ShapeChecks.Linear("linear_fwd", x, w, y);
        int n = x.N, k = x.C, m = w.N;
        // y = x W^T (+ b): B(k, j) = W[j * K + k].
        Gemm(n, m, k, new(Ptr(x), Row: k, K: 1), new(Ptr(w), K: 1, Row: k), new(Ptr(y), 0, m, Bias: b.IsNone ? 0 : Ptr(b)), 1, "linear_fwd");
    }

    public void LinearBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in Tensor db)
    {
        ShapeChecks.Linear("linear_bwd", x, w, dy);
        int n = x.N, k = x.C, m = w.N;
        if (!dx.IsNone)
        {
            ShapeChecks.Same("linear_bwd dx", x, dx);
            Gemm(n, k, m, new(Ptr(dy), Row: m, K: 1), new(Ptr(w), K: k, Row: 1), new(Ptr(dx), 0, k, accumulate ? 1f : 0f), 1, "linear_bwd_data");
        }
        // dW = dY^T x: A(i = out, k = sample) = dy[sample * M + out].
        WeightGradient(m, k, 1, n, new(Ptr(dy), Row: 1, K: m), new(Ptr(x), K: k, Row: 1), Ptr(dw), 0f, "linear_bwd_weight");
        if (!db.IsNone) Launch("column_sum", (uint)((m + Threads - 1) / Threads), 1, 1, Threads, "linear_bwd_bias", n, m, Ptr(dy), Ptr(db));
    }

    public void DropoutForward(in Tensor x, in Tensor y, float p, ulong seed) => Dropout(x, y, p, seed, false, "dropout_fwd");

    public void DropoutBackward(in Tensor dy, in Tensor dx, bool accumulate, float p, ulong seed) => Dropout(dy, dx, p, seed, accumulate, "dropout_bwd");

    private void Dropout(in Tensor x, in Tensor y, float p, ulong seed, bool accumulate, string op)
    {
        ShapeChecks.Same(op, x, y);
        x.RequireContiguous(op);
        y.RequireContiguous(op);
        if (p < 0 || p >= 1) throw new ArgumentOutOfRangeException(nameof(p), $"dropout probability {p} is not in [0, 1)");
        Launch1D("dropout", x.Count, $"{op} {x}", Ptr(x), Ptr(y), x.Count, p, seed, accumulate ? 1 : 0);
    }

    public void SoftmaxCrossEntropy(in Tensor logits, in Tensor labels, in Tensor losses, in Tensor dlogits, float labelSmoothing)
    {
        logits.RequireContiguous("cross_entropy");
        int n = logits.N, k = logits.C * logits.Plane;
        labels.RequireShape("cross_entropy", "labels", n, 1, 1, 1);
        losses.RequireShape("cross_entropy", "losses", n, 1, 1, 1);
        if (!dlogits.IsNone) ShapeChecks.Same("cross_entropy grad", logits, dlogits);
        Launch("softmax_cross_entropy", (uint)n, 1, 1, Threads, $"{logits}", Ptr(logits), Ptr(labels), n, k, labelSmoothing, Ptr(losses),
            dlogits.IsNone ? 0UL : Ptr(dlogits));
    }

    public void TopKRank(in Tensor logits, in Tensor labels, in Tensor ranks)
    {
        logits.RequireContiguous("top_k");
        int n = logits.N, k = logits.C * logits.Plane;
        labels.RequireShape("top_k", "labels", n, 1, 1, 1);
        ranks.RequireShape("top_k", "ranks", n, 1, 1, 1);
        Launch("top_k_rank", (uint)n, 1, 1, Threads, $"{logits}", Ptr(logits), Ptr(labels), k, Ptr(ranks));
    }

    public void SgdStep(in Tensor param, in Tensor grad, in Tensor momentum, SgdHyper h)
    {
        ShapeChecks.Same("sgd", param, grad);
        ShapeChecks.Same("sgd", param, momentum);
        param.RequireContiguous("sgd");
        Launch1D("sgd_step", param.Count, $"{param}", Ptr(param), Ptr(grad), Ptr(momentum), param.Count,
            h.LearningRate, h.Momentum, h.WeightDecay, h.Nesterov ? 1 : 0);
    }
}

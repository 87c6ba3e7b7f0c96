using GhostNet.Backends;

namespace GhostNet.Cuda;

// Linear layers, dropout, the loss, top-k and SGD (kernels: gemm.cu, dropout.cu, cross_entropy.cu, sgd.cu).
// Each launch carries its modelled cost (LaunchCost) next to it; the GEMMs' is in Gemm.
public sealed partial class CudaBackend
{
    public void LinearForward(in Tensor x, in Tensor w, in Tensor b, in Tensor y)
    {
        Op(OpFamily.Linear);
        ShapeChecks.Linear("linear_fwd", x, w, y);
        int n = x.N, k = x.C, m = w.N;
        // y = x W^T (+ b): B(k, j) = W[j * K + k].
        Gemm(n, m, k, new(Act(x), Row: k, K: 1), new(Ptr(w), K: 1, Row: k), new(Act(y), 0, m, Bias: b.IsNone ? 0 : Ptr(b)), 1, "linear_fwd", GemmWeight.InB);
    }

    /// <summary>
    /// Whether <see cref="LinearForward(in Tensor, in Tensor, in Tensor, in Tensor, Activation, in Tensor)"/>
    /// applies the activation in the GEMM's epilogue (v2.14, the default) or with its own launch
    /// after it, the reference the tests compare it with.
    /// </summary>
    public bool ActivationInGemm { get; set; } = true;

    public void LinearForward(in Tensor x, in Tensor w, in Tensor b, in Tensor y, Activation activation, in Tensor activated)
    {
        if (!ActivationInGemm || activation == Activation.None)
        {
            using var call = Composite(OpFamily.Linear);
            LinearForward(x, w, b, y);
            if (activation != Activation.None) this.Activate(y, activation, activated);
            return;
        }
        Op(OpFamily.Linear);
        ShapeChecks.Linear("linear_fwd", x, w, y);
        ShapeChecks.Same("linear_fwd activation", y, activated);
        y.RequireContiguous("linear_fwd");
        activated.RequireContiguous("linear_fwd activation");
        int n = x.N, k = x.C, m = w.N;
        Gemm(n, m, k, new(Act(x), Row: k, K: 1), new(Ptr(w), K: 1, Row: k),
            new(Act(y), 0, m, Bias: b.IsNone ? 0 : Ptr(b), Activation: (int)activation, Activated: Act(activated)), 1, "linear_fwd", GemmWeight.InB);
    }

    public void LinearBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in Tensor db)
    {
        Op(OpFamily.Linear);
        ShapeChecks.Linear("linear_bwd", x, w, dy);
        LinearGemms(x, w, dy, dx, accumulate, dw);
        // Cost: dy read once, db written.
        int n = x.N, m = w.N;
        if (!db.IsNone)
            Launch("column_sum", (uint)((m + Threads - 1) / Threads), 1, 1, Threads, ActCost(read: (long)n * m, written: 0, words: m, flops: (long)n * m), "linear_bwd_bias", n, m, Act(dy), Ptr(db),
                0, 0UL, 0UL, 0UL);
    }

    /// <summary>
    /// Whether <see cref="LinearBackward(in Tensor, in Tensor, in ActivatedOutput, in Tensor, bool, in Tensor, in Tensor)"/>
    /// differentiates the activation in the bias gradient's column sums (v2.17, the default; with
    /// a bias only) or with relu_bwd or hard_sigmoid_bwd before them, the reference the tests compare it with.
    /// </summary>
    public bool ActivationGradientInBiasSum { get; set; } = true;

    public void LinearBackward(in Tensor x, in Tensor w, in ActivatedOutput y, in Tensor dx, bool accumulate, in Tensor dw, in Tensor db)
    {
        var dz = y.Y.Grad;
        if (!ActivationGradientInBiasSum || y.Activation == Activation.None || db.IsNone)
        {
            using var call = Composite(OpFamily.Linear);
            if (y.Activation != Activation.None) this.ActivationBackward(y.Y, y.Activated, y.Activation, y.Activated.Grad, dz, accumulate: false);
            LinearBackward(x, w, dz, dx, accumulate, dw, db);
            return;
        }
        Op(OpFamily.Linear);
        ShapeChecks.Linear("linear_bwd", x, w, y.Y);
        ShapeChecks.Same("linear_bwd activation", y.Y, y.Activated);
        var da = y.Activated.Grad;
        y.Y.RequireContiguous("linear_bwd");
        y.Activated.RequireContiguous("linear_bwd activation");
        da.RequireContiguous("linear_bwd activation gradient");
        dz.RequireContiguous("linear_bwd gradient");
        int n = x.N, m = w.N;
        // y's gradient first, as the GEMMs read it. Cost: the activated gradient and the
        // activation's operand (its output for ReLU, its input for the gate) read, y's gradient and db written.
        Launch("column_sum", (uint)((m + Threads - 1) / Threads), 1, 1, Threads, ActCost(read: 2L * n * m, written: (long)n * m, words: m, flops: 3L * n * m),
            "linear_bwd_bias", n, m, Act(da), Ptr(db), (int)y.Activation, Act(y.Y), Act(y.Activated), Act(dz));
        LinearGemms(x, w, dz, dx, accumulate, dw);
    }

    // dx (+)= dy W and dW = dy^T x.
    private void LinearGemms(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw)
    {
        int n = x.N, k = x.C, m = w.N;
        if (!dx.IsNone)
        {
            ShapeChecks.Same("linear_bwd dx", x, dx);
            Gemm(n, k, m, new(Act(dy), Row: m, K: 1), new(Ptr(w), K: k, Row: 1), new(Act(dx), 0, k, accumulate ? 1f : 0f), 1, "linear_bwd_data", GemmWeight.InB);
        }
        // dW = dY^T x: A(i = out, k = sample) = dy[sample * M + out].
        WeightGradient(m, k, 1, n, new(Act(dy), Row: 1, K: m), new(Act(x), K: k, Row: 1), Ptr(dw), 0f, "linear_bwd_weight");
    }

    public void DropoutForward(in Tensor x, in Tensor y, float p, DropoutSeed seed)
    {
        Op(OpFamily.Head);
        Dropout(x, y, p, seed, false, "dropout_fwd");
    }

    public void DropoutBackward(in Tensor dy, in Tensor dx, bool accumulate, float p, DropoutSeed seed)
    {
        Op(OpFamily.Head);
        Dropout(dy, dx, p, seed, accumulate, "dropout_bwd");
    }

    private void Dropout(in Tensor x, in Tensor y, float p, DropoutSeed seed, bool accumulate, string op)
    {
        ulong seedAt = 0;
        if (!seed.At.IsNone)
        {
            seed.At.RequireShape(op, "seed", 1, 2, 1, 1);
            seedAt = Ptr(seed.At);
            if (seedAt % 8 != 0) throw new ArgumentException($"{op}: the seed's place must be 8-byte aligned (a u64), not at 0x{seedAt:x}");
        }
        ShapeChecks.Same(op, x, y);
        x.RequireContiguous(op);
        y.RequireContiguous(op);
        if (p < 0 || p >= 1) throw new ArgumentOutOfRangeException(nameof(p), $"dropout probability {p} is not in [0, 1)");
        // Cost: x read, y written (and read when accumulating); the mask's hash is integer work, not counted.
        Launch1D("dropout", x.Count, ActCost(read: (accumulate ? 2 : 1) * x.Count, written: x.Count, flops: (accumulate ? 2 : 1) * x.Count), $"{op} {x}", Act(x), Act(y), x.Count, p, seed.Value, accumulate ? 1 : 0, seedAt);
    }

    public void SoftmaxCrossEntropy(in Tensor logits, in Tensor labels, in Tensor losses, in Tensor dlogits, float labelSmoothing)
    {
        Op(OpFamily.Head);
        logits.RequireContiguous("cross_entropy");
        int n = logits.N, k = logits.C * logits.Plane;
        labels.RequireShape("cross_entropy", "labels", n, 1, 1, 1);
        losses.RequireShape("cross_entropy", "losses", n, 1, 1, 1);
        if (!dlogits.IsNone) ShapeChecks.Same("cross_entropy grad", logits, dlogits);
        // Cost: the logits read once (a block's three passes over its row hit L1/L2), labels, losses
        // and the gradient written; max, exp and sums: ~4 FLOPs per logit, ~4 more for the gradient.
        long logitCount = (long)n * k;
        Launch("softmax_cross_entropy", (uint)n, 1, 1, Threads,
            ActCost(read: logitCount, written: dlogits.IsNone ? 0 : logitCount, words: 2L * n, flops: (dlogits.IsNone ? 4 : 8) * logitCount), $"{logits}", Act(logits), Ptr(labels), n, k, labelSmoothing, Ptr(losses),
            dlogits.IsNone ? 0UL : Act(dlogits));
    }

    public void TopKRank(in Tensor logits, in Tensor labels, in Tensor ranks)
    {
        Op(OpFamily.Head);
        logits.RequireContiguous("top_k");
        int n = logits.N, k = logits.C * logits.Plane;
        labels.RequireShape("top_k", "labels", n, 1, 1, 1);
        ranks.RequireShape("top_k", "ranks", n, 1, 1, 1);
        Launch("top_k_rank", (uint)n, 1, 1, Threads, ActCost(read: (long)n * k, written: 0, words: 2L * n, flops: (long)n * k), $"{logits}", Act(logits), Ptr(labels), k, Ptr(ranks));
    }

    public void SumBatch(in Tensor losses, in Tensor ranks, in Tensor totals)
    {
        Op(OpFamily.Head);
        int n = losses.N;
        losses.RequireShape("sum_batch", "losses", n, 1, 1, 1);
        ranks.RequireShape("sum_batch", "ranks", n, 1, 1, 1);
        ShapeChecks.BatchTotals(totals);
        Launch("sum_batch", 1, 1, 1, Threads, LaunchCost.Fp32(read: 2L * n, written: BatchTotals.Words, flops: 3L * n), $"{losses}", Ptr(losses), Ptr(ranks), n, Ptr(totals));
    }

    public void SgdStep(in Tensor param, in Tensor grad, in Tensor momentum, SgdHyper h)
    {
        Op(OpFamily.Sgd);
        ShapeChecks.Same("sgd", param, grad);
        ShapeChecks.Same("sgd", param, momentum);
        param.RequireContiguous("sgd");
        // Cost: parameters, gradients and momentum read, parameters and momentum written (20 bytes per parameter).
        Launch1D("sgd_step", param.Count, LaunchCost.Fp32(read: 3 * param.Count, written: 2 * param.Count, flops: 6 * param.Count), $"{param}", Ptr(param), Ptr(grad), Ptr(momentum), param.Count,
            h.LearningRate, h.Momentum, h.WeightDecay, h.Nesterov ? 1 : 0, LearningRateAt(h));
    }

    private static ulong LearningRateAt(in SgdHyper h)
    {
        if (h.LearningRateAt.IsNone) return 0;
        h.LearningRateAt.RequireShape("sgd", "learning rate", 1, 1, 1, 1);
        return Ptr(h.LearningRateAt);
    }
}

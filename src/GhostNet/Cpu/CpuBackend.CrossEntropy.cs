using GhostNet.Backends;

namespace GhostNet.Cpu;

// Softmax cross-entropy with label smoothing, fused with its gradient (as llm.c does): with
// target t = (1 - eps) onehot(label) + eps / K, loss_n = logsumexp(z) - sum_j t_j z_j and
// d(mean loss)/dz = (softmax(z) - t) / N. Sums in double: K can be 1000. Non-finite logits as
// PyTorch (kernels/cross_entropy.cu): a NaN or +Inf logit makes its row's loss and gradient NaN
// (Math.Max propagates NaN; Inf - Inf is NaN); a -Inf logit adds nothing to the softmax, and
// makes the loss +Inf only when it is the label's or label smoothing is on.
public sealed unsafe partial class CpuBackend
{
    public void SoftmaxCrossEntropy(in Tensor logits, in Tensor labels, in Tensor losses, in Tensor dlogits, float labelSmoothing)
    {
        logits.RequireContiguous("cross_entropy");
        int n = logits.N, k = logits.C * logits.Plane;
        labels.RequireShape("cross_entropy labels", n, 1, 1, 1);
        losses.RequireShape("cross_entropy losses", n, 1, 1, 1);
        if (!dlogits.IsNone) ShapeChecks.Same("cross_entropy grad", logits, dlogits);
        float* z = Ptr(logits), loss = Ptr(losses), dz = dlogits.IsNone ? null : Ptr(dlogits);
        int* label = (int*)Ptr(labels);
        double eps = labelSmoothing;
        for (int i = 0; i < n; i++)
        {
            int y = label[i];
            if ((uint)y >= (uint)k) throw new ArgumentOutOfRangeException(nameof(labels), $"label {y} of sample {i} is outside 0..{k - 1}");
            float* zi = z + (long)i * k;
            float max = float.NegativeInfinity;
            for (int j = 0; j < k; j++) max = Math.Max(max, zi[j]);
            double sumExp = 0, sumZ = 0;
            for (int j = 0; j < k; j++) { sumExp += Math.Exp(zi[j] - max); sumZ += zi[j]; }
            double logSumExp = max + Math.Log(sumExp);
            // Without smoothing sumZ has no weight: 0 * (-Inf) would make a finite loss NaN.
            loss[i] = (float)(logSumExp - (1 - eps) * zi[y] - (eps > 0 ? eps / k * sumZ : 0));
            if (dz == null) continue;
            float* di = dz + (long)i * k;
            for (int j = 0; j < k; j++)
            {
                double target = eps / k + (j == y ? 1 - eps : 0);
                di[j] = (float)((Math.Exp(zi[j] - logSumExp) - target) / n);
            }
        }
    }

    // rank = how many logits rank ahead of the label's (ties: the lower index first). A row holding
    // a NaN, or a label outside [0, K), gets rank int.MaxValue: never top-k correct, even for k > K
    // (PyTorch's topk would rank NaN first; a NaN row must not count as a correct prediction).
    public void TopKRank(in Tensor logits, in Tensor labels, in Tensor ranks)
    {
        logits.RequireContiguous("top_k");
        int n = logits.N, k = logits.C * logits.Plane;
        labels.RequireShape("top_k labels", n, 1, 1, 1);
        ranks.RequireShape("top_k ranks", n, 1, 1, 1);
        float* z = Ptr(logits);
        int* label = (int*)Ptr(labels), rank = (int*)Ptr(ranks);
        for (int i = 0; i < n; i++)
        {
            float* zi = z + (long)i * k;
            int y = label[i], r = 0;
            bool valid = (uint)y < (uint)k, nan = false;
            float v = valid ? zi[y] : 0;
            for (int j = 0; j < k; j++)
            {
                if (zi[j] > v || (zi[j] == v && j < y)) r++;
                nan |= float.IsNaN(zi[j]);
            }
            rank[i] = valid && !nan ? r : int.MaxValue;
        }
    }

    public void SumBatch(in Tensor losses, in Tensor ranks, in Tensor totals)
    {
        int n = losses.N;
        losses.RequireShape("sum_batch losses", n, 1, 1, 1);
        ranks.RequireShape("sum_batch ranks", n, 1, 1, 1);
        ShapeChecks.BatchTotals(totals);
        float* loss = Ptr(losses);
        int* rank = (int*)Ptr(ranks), words = (int*)Ptr(totals);
        double sum = 0;
        int top1 = 0, top5 = 0;
        for (int i = 0; i < n; i++)
        {
            sum += loss[i];
            if (rank[i] < 1) top1++;
            if (rank[i] < 5) top5++;
        }
        *(double*)words = sum;
        words[2] = top1;
        words[3] = top5;
    }
}

using System.Runtime.Intrinsics;
using GhostNet.Backends;

namespace GhostNet.Cpu;

// SGD with momentum, weight decay and optional Nesterov over one contiguous run of the
// parameter arena (all tensors at once, the CPU form of a fused multi-tensor update).
public sealed unsafe partial class CpuBackend
{
    private const int SgdChunk = 1 << 16;

    public void SgdStep(in Tensor param, in Tensor grad, in Tensor momentum, SgdHyper h)
    {
        ShapeChecks.Same("sgd", param, grad);
        ShapeChecks.Same("sgd", param, momentum);
        param.RequireContiguous("sgd");
        if (!h.LearningRateAt.IsNone)
        {
            h.LearningRateAt.RequireShape("sgd", "learning rate", 1, 1, 1, 1);
            h = h with { LearningRate = *PlanePtr(h.LearningRateAt, 0, 0) }; // read when the update runs, as the kernel does
        }
        var job = new SgdJob { P = Ptr(param), G = Ptr(grad), M = Ptr(momentum), Count = param.Count, H = h };
        For((int)((param.Count + SgdChunk - 1) / SgdChunk), param.Count * 4, job);
    }

    private struct SgdJob : IParallelBody
    {
        public float* P, G, M;
        public long Count;
        public SgdHyper H;

        public readonly void Execute(int index, int worker)
        {
            long start = (long)index * SgdChunk;
            int n = (int)Math.Min(SgdChunk, Count - start);
            float* p = P + start, g = G + start, m = M + start;
            var lr = Vector256.Create(H.LearningRate);
            var mu = Vector256.Create(H.Momentum);
            var wd = Vector256.Create(H.WeightDecay);
            int i = 0;
            for (; i <= n - V; i += V)
            {
                var pv = Vector256.Load(p + i);
                var d = Vector256.FusedMultiplyAdd(wd, pv, Vector256.Load(g + i));
                var buf = Vector256.FusedMultiplyAdd(mu, Vector256.Load(m + i), d);
                Vector256.Store(buf, m + i);
                var step = H.Nesterov ? Vector256.FusedMultiplyAdd(mu, buf, d) : buf;
                Vector256.Store(pv - lr * step, p + i);
            }
            for (; i < n; i++)
            {
                float d = g[i] + H.WeightDecay * p[i];
                float buf = H.Momentum * m[i] + d;
                m[i] = buf;
                p[i] -= H.LearningRate * (H.Nesterov ? d + H.Momentum * buf : buf);
            }
        }
    }
}

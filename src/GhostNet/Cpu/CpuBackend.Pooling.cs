using GhostNet.Backends;

namespace GhostNet.Cpu;

// Global average pooling to N x C x 1 x 1 (the squeeze of squeeze-excite, and the head's pool).
public sealed unsafe partial class CpuBackend
{
    public void GlobalAvgPool(in Tensor x, in Tensor y)
    {
        y.RequireContiguous("global_avg_pool");
        y.RequireShape("global_avg_pool output", x.N, x.C, 1, 1);
        For(x.N * x.C, x.Count, new PoolJob { X = x, Y = Ptr(y) });
    }

    public void GlobalAvgPoolBackward(in Tensor dy, in Tensor dx, bool accumulate)
    {
        dy.RequireContiguous("global_avg_pool_bwd");
        dy.RequireShape("global_avg_pool_bwd grad", dx.N, dx.C, 1, 1);
        For(dx.N * dx.C, dx.Count, new PoolJob { X = dx, Y = Ptr(dy), Backward = true, Accumulate = accumulate });
    }

    private struct PoolJob : IParallelBody
    {
        public Tensor X;
        public float* Y;
        public bool Backward, Accumulate;

        public readonly void Execute(int index, int worker)
        {
            int plane = X.Plane;
            float* x = PlanePtr(X, index / X.C, index % X.C);
            if (Backward) Simd.FillOrAdd(Y[index] / plane, x, plane, Accumulate);
            else Y[index] = Simd.Sum(x, plane) / plane;
        }
    }
}

using GhostNet.Backends;

namespace GhostNet.Cpu;

// Global average pooling to N x C x 1 x 1 (the squeeze of squeeze-excite, and the head's pool),
// and max pooling (VGG's).
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

    public void MaxPool(in Tensor x, in Tensor y, ConvGeometry g)
    {
        ShapeChecks.MaxPool("max_pool", x, y, g);
        For(x.N * x.C, y.Count * g.Kernel * g.Kernel, new MaxPoolJob { X = x, Y = y, G = g });
    }

    public void MaxPoolBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate, ConvGeometry g)
    {
        ShapeChecks.MaxPool("max_pool_bwd", x, dy, g);
        ShapeChecks.Same("max_pool_bwd", x, dx);
        For(x.N * x.C, x.Count * g.Kernel * g.Kernel, new MaxPoolJob { X = x, Y = dy, Dx = dx, G = g, Backward = true, Accumulate = accumulate });
    }

    /// <summary>
    /// The index in its plane of the input that window (oh, ow) passes on: the first largest in
    /// row-major order, or the last NaN (PyTorch's `v > max || isnan(v)`); the CUDA kernel's twin.
    /// </summary>
    internal static int MaxPoolArgmax(float* plane, int h, int w, int oh, int ow, ConvGeometry g, out float best)
    {
        int h0 = oh * g.Stride - g.Padding, w0 = ow * g.Stride - g.Padding, arg = -1;
        best = float.NegativeInfinity;
        for (int ih = Math.Max(h0, 0); ih < Math.Min(h0 + g.Kernel, h); ih++)
            for (int iw = Math.Max(w0, 0); iw < Math.Min(w0 + g.Kernel, w); iw++)
            {
                float v = plane[ih * w + iw];
                if (arg < 0 || v > best || float.IsNaN(v)) (best, arg) = (v, ih * w + iw);
            }
        return arg;
    }

    /// <summary>One (n, c) plane. The backward gathers: each input adds up, in row-major window order, the gradients of the windows that chose it.</summary>
    private struct MaxPoolJob : IParallelBody
    {
        public Tensor X, Y, Dx;
        public ConvGeometry G;
        public bool Backward, Accumulate;

        public readonly void Execute(int index, int worker)
        {
            int n = index / X.C, c = index % X.C, h = X.H, w = X.W, ho = Y.H, wo = Y.W;
            float* x = PlanePtr(X, n, c), y = PlanePtr(Y, n, c);
            if (!Backward)
            {
                for (int oh = 0; oh < ho; oh++)
                    for (int ow = 0; ow < wo; ow++)
                    {
                        MaxPoolArgmax(x, h, w, oh, ow, G, out float best);
                        y[oh * wo + ow] = best;
                    }
                return;
            }
            float* dx = PlanePtr(Dx, n, c);
            for (int ih = 0; ih < h; ih++)
                for (int iw = 0; iw < w; iw++)
                {
                    int p = ih * w + iw;
                    float sum = 0;
                    for (int oh = FirstWindow(ih, G); oh <= Math.Min(ho - 1, (ih + G.Padding) / G.Stride); oh++)
                        for (int ow = FirstWindow(iw, G); ow <= Math.Min(wo - 1, (iw + G.Padding) / G.Stride); ow++)
                            if (MaxPoolArgmax(x, h, w, oh, ow, G, out _) == p) sum += y[oh * wo + ow];
                    dx[p] = Accumulate ? dx[p] + sum : sum;
                }
        }

        /// <summary>The first window along one axis that holds input i: ceil((i + pad - k + 1) / stride), at least 0.</summary>
        private static int FirstWindow(int i, ConvGeometry g)
        {
            int a = i + g.Padding - g.Kernel + 1;
            return a <= 0 ? 0 : (a + g.Stride - 1) / g.Stride;
        }
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

using System.Runtime.InteropServices;
using GhostNet.Backends;

namespace GhostNet.Cpu;

// Dense convolution (groups = 1) by im2col + GEMM. The column matrix col[(c, kh, kw), (oh, ow)]
// lives in the running thread's scratch. Forward runs one task per image. Backward recomputes
// col, scatters dcol = W^T dY back (col2im) and sums dW over a fixed chunk of images per task;
// the chunk partials are added in chunk order, so the result does not depend on which thread
// ran which chunk (bitwise reproducible for a given thread count).
public sealed unsafe partial class CpuBackend
{
    public void ConvForward(in Tensor x, in Tensor w, in Tensor y, ConvGeometry g)
    {
        ShapeChecks.Conv("conv_fwd", x, w, y, g);
        var job = new ConvForwardJob { Backend = this, X = x, W = Ptr(w), Y = y, G = g, Rows = w.C * g.Kernel * g.Kernel };
        _pool.For(x.N, job);
    }

    public void ConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, ConvGeometry g)
    {
        ShapeChecks.Conv("conv_bwd", x, w, dy, g);
        if (!dx.IsNone) ShapeChecks.Same("conv_bwd dx", x, dx);
        int rows = w.C * g.Kernel * g.Kernel;
        long colSize = (long)rows * dy.Plane;
        int dwSize = w.N * rows, chunks = Math.Min(_pool.Threads, x.N);
        for (int t = 0; t < _pool.Threads; t++) Scratch(t, 2 * colSize);
        float* partials = ConvPartials((long)chunks * dwSize);
        var job = new ConvBackwardJob
        {
            Backend = this, X = x, W = Ptr(w), Dy = dy, Dx = dx, Accumulate = accumulate, G = g, Rows = rows,
            Partials = partials, Chunks = chunks,
        };
        _pool.For(chunks, job);
        float* dwp = Ptr(dw);
        Simd.Copy(partials, dwp, dwSize);
        for (int c = 1; c < chunks; c++) Simd.Add(partials + (long)c * dwSize, dwp, dwp, dwSize);
    }

    private float* ConvPartials(long elements)
    {
        if (_convPartialsLength < elements)
        {
            NativeMemory.AlignedFree(_convPartials);
            _convPartials = (float*)NativeMemory.AlignedAlloc((nuint)(elements * sizeof(float)), 64);
            _convPartialsLength = elements;
        }
        return _convPartials;
    }

    /// <summary>Output positions o in [lo, hi) whose input index o * stride + offset lies in [0, size).</summary>
    internal static (int Lo, int Hi) ValidRange(int outSize, int inSize, int stride, int offset)
    {
        int lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
        int last = inSize - 1 - offset;
        int hi = last < 0 ? 0 : Math.Min(outSize, last / stride + 1);
        return (lo, Math.Max(lo, hi));
    }

    private static void Im2Col(float* x, int channels, int h, int w, ConvGeometry g, int ho, int wo, float* col)
    {
        int k = g.Kernel;
        for (int c = 0; c < channels; c++)
        for (int kh = 0; kh < k; kh++)
        for (int kw = 0; kw < k; kw++)
        {
            float* row = col + ((long)(c * k + kh) * k + kw) * ho * wo;
            var (owLo, owHi) = ValidRange(wo, w, g.Stride, kw - g.Padding);
            for (int oh = 0; oh < ho; oh++)
            {
                float* r = row + oh * wo;
                int ih = oh * g.Stride - g.Padding + kh;
                if (ih < 0 || ih >= h) { Simd.Clear(r, wo); continue; }
                float* xr = x + ((long)c * h + ih) * w + kw - g.Padding;
                for (int ow = 0; ow < owLo; ow++) r[ow] = 0;
                for (int ow = owLo; ow < owHi; ow++) r[ow] = xr[ow * g.Stride];
                for (int ow = owHi; ow < wo; ow++) r[ow] = 0;
            }
        }
    }

    private static void Col2ImAdd(float* col, int channels, int h, int w, ConvGeometry g, int ho, int wo, float* x)
    {
        int k = g.Kernel;
        for (int c = 0; c < channels; c++)
        for (int kh = 0; kh < k; kh++)
        for (int kw = 0; kw < k; kw++)
        {
            float* row = col + ((long)(c * k + kh) * k + kw) * ho * wo;
            var (owLo, owHi) = ValidRange(wo, w, g.Stride, kw - g.Padding);
            for (int oh = 0; oh < ho; oh++)
            {
                int ih = oh * g.Stride - g.Padding + kh;
                if (ih < 0 || ih >= h) continue;
                float* r = row + oh * wo;
                float* xr = x + ((long)c * h + ih) * w + kw - g.Padding;
                for (int ow = owLo; ow < owHi; ow++) xr[ow * g.Stride] += r[ow];
            }
        }
    }

    private struct ConvForwardJob : IParallelBody
    {
        public CpuBackend Backend;
        public Tensor X, Y;
        public float* W;
        public ConvGeometry G;
        public int Rows;

        public readonly void Execute(int n, int worker)
        {
            int plane = Y.Plane;
            float* col = Backend.Scratch(worker, (long)Rows * plane);
            Im2Col(PlanePtr(X, n, 0), X.C, X.H, X.W, G, Y.H, Y.W, col);
            Gemm.AB(Y.C, plane, Rows, W, Rows, 1, col, plane, PlanePtr(Y, n, 0), plane, false);
        }
    }

    private struct ConvBackwardJob : IParallelBody
    {
        public CpuBackend Backend;
        public Tensor X, Dy, Dx;
        public float* W;
        public bool Accumulate;
        public ConvGeometry G;
        public int Rows;

        public float* Partials;
        public int Chunks;

        public readonly void Execute(int chunk, int worker)
        {
            int plane = Dy.Plane;
            long colSize = (long)Rows * plane;
            float* col = Backend._scratch[worker];
            float* dcol = col + colSize;
            float* dw = Partials + (long)chunk * Dy.C * Rows;
            int first = chunk * X.N / Chunks, end = (chunk + 1) * X.N / Chunks;
            for (int n = first; n < end; n++)
            {
                Im2Col(PlanePtr(X, n, 0), X.C, X.H, X.W, G, Dy.H, Dy.W, col);
                float* dyn = PlanePtr(Dy, n, 0);
                Gemm.ABt(Dy.C, Rows, plane, dyn, plane, col, plane, dw, Rows, n > first);
                if (Dx.IsNone) continue;
                Gemm.AB(Rows, plane, Dy.C, W, 1, Rows, dyn, plane, dcol, plane, false);
                float* dxn = PlanePtr(Dx, n, 0);
                if (!Accumulate) Simd.Clear(dxn, Dx.C * Dx.Plane);
                Col2ImAdd(dcol, Dx.C, Dx.H, Dx.W, G, Dy.H, Dy.W, dxn);
            }
        }
    }
}

using GhostNet.Backends;

namespace GhostNet.Cpu;

// Depthwise convolution, NCHW, one k x k filter per output channel (stride 1 with same padding
// takes the stencil path of CpuBackend.DepthwiseStride1.cs; this file is the general form); with a channel multiplier
// (Cout = m * Cin, PyTorch's groups = Cin) output channel o reads input channel o / m, as the
// Ghost module's cheap operation does for ratio > 2. For each output row and each tap
// (kh, kw) the valid output columns are computed once, so the inner loop has no bounds checks;
// at stride 1 it is an AXPY (forward, dx) or a dot product (dw) over contiguous rows. Memory
// bound: each tap re-reads an input row that is still in L1. Forward runs one task per
// (image, channel) plane; backward one task per channel, looping over images, so that dw needs
// no reduction across threads.
public sealed unsafe partial class CpuBackend
{
    /// <summary>Unfused on the CPU, forward and backward: each pass runs over planes still in cache.</summary>
    public void DepthwiseConvBatchNormForward(in Tensor x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor y, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.FusedActivation("depthwise_conv_bn_fwd", o);
        DepthwiseConvForward(x, w, z, g);
        BatchNormTrainForward(z, y, p, o);
    }

    /// <summary>Unfused on the CPU: x's batch norm is applied, then the conv reads its output; a sum is added after.</summary>
    public void DepthwiseConvBatchNormForward(in NormalizedInput x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor y, in BatchNormTensors p, BatchNormOptions o,
        ResidualSum? sum = null)
    {
        ShapeChecks.FusedActivation("depthwise_conv_bn_fwd", o);
        ShapeChecks.FusedActivation("depthwise_conv_bn_fwd", x.Options);
        Tensor concat = default; // checked before anything is written
        if (sum is { } checkedSum) ShapeChecks.Sum("depthwise_conv_bn_fwd", checkedSum, concat = checkedSum.Concat(x.Y, y));
        ApplySaved(x.X, x.Y, x.Tensors, x.Options);
        DepthwiseConvForward(x.Y, w, z, g);
        BatchNormTrainForward(z, y, p, o);
        if (sum is { } s) Add(concat, s.Addend, s.Sum);
    }

    public void DepthwiseConvBatchNormBackward(in Tensor x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.FusedActivation("depthwise_conv_bn_bwd", o);
        BatchNormBackward(z, dy, z.Grad, false, p, o);
        DepthwiseConvBackward(x, w, z.Grad, dx, accumulate, dw, g);
    }

    /// <summary>Unfused on the CPU: the pair's backward, then x's batch norm's parameter gradients from the finished dx.</summary>
    public void DepthwiseConvBatchNormBackward(in NormalizedInput x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.FusedActivation("depthwise_conv_bn_bwd", o);
        ShapeChecks.FusedActivation("depthwise_conv_bn_bwd", x.Options);
        if (dx.IsNone) throw new ArgumentException("the input's batch norm is reduced from the input gradient: dx is needed", nameof(dx));
        DepthwiseConvBatchNormBackward(x.Y, w, z, g, dy, dx, accumulate, dw, p, o);
        BatchNormParameterGradients(x.X, dx, x.Tensors, x.Options);
    }

    public void DepthwiseConvForward(in Tensor x, in Tensor w, in Tensor y, ConvGeometry g)
    {
        ShapeChecks.Depthwise("depthwise_conv_fwd", x, w, y, g);
        if (IsSameStride1(g))
        {
            var fast = new DepthwiseStride1ForwardJob { Backend = this, X = x, W = Ptr(w), Y = y, K = g.Kernel, Multiplier = y.C / x.C };
            For(y.N * y.C, y.Count * g.Kernel * g.Kernel, fast);
            return;
        }
        var job = new DepthwiseForwardJob { X = x, W = Ptr(w), Y = y, G = g, Multiplier = y.C / x.C };
        For(y.N * y.C, y.Count * g.Kernel * g.Kernel, job);
    }

    public void DepthwiseConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, ConvGeometry g)
    {
        ShapeChecks.Depthwise("depthwise_conv_bwd", x, w, dy, g);
        if (!dx.IsNone) ShapeChecks.Same("depthwise_conv_bwd dx", x, dx);
        if (IsSameStride1(g))
        {
            var fast = new DepthwiseStride1BackwardJob
            {
                Backend = this, X = x, W = Ptr(w), Dy = dy, Dx = dx, Dw = Ptr(dw), Accumulate = accumulate, K = g.Kernel, Multiplier = dy.C / x.C,
            };
            For(x.C, dy.Count * g.Kernel * g.Kernel * 2, fast);
            return;
        }
        var job = new DepthwiseBackwardJob
        {
            X = x, W = Ptr(w), Dy = dy, Dx = dx, Dw = Ptr(dw), Accumulate = accumulate, G = g, Multiplier = dy.C / x.C,
        };
        For(x.C, dy.Count * g.Kernel * g.Kernel * 2, job);
    }

    private struct DepthwiseForwardJob : IParallelBody
    {
        public Tensor X, Y;
        public float* W;
        public ConvGeometry G;
        public int Multiplier;

        public readonly void Execute(int index, int worker)
        {
            int n = index / Y.C, c = index % Y.C, k = G.Kernel, s = G.Stride, p = G.Padding;
            float* x = PlanePtr(X, n, c / Multiplier);
            float* y = PlanePtr(Y, n, c);
            float* w = W + (long)c * k * k;
            Simd.Clear(y, Y.Plane);
            for (int oh = 0; oh < Y.H; oh++)
            {
                float* yr = y + oh * Y.W;
                for (int kh = 0; kh < k; kh++)
                {
                    int ih = oh * s - p + kh;
                    if (ih < 0 || ih >= X.H) continue;
                    float* xr = x + ih * X.W;
                    for (int kw = 0; kw < k; kw++)
                    {
                        float wv = w[kh * k + kw];
                        var (lo, hi) = ValidRange(Y.W, X.W, s, kw - p);
                        float* xs = xr + kw - p;
                        if (s == 1) Simd.Axpy(wv, xs + lo, yr + lo, hi - lo);
                        else for (int ow = lo; ow < hi; ow++) yr[ow] += wv * xs[ow * s];
                    }
                }
            }
        }
    }

    private struct DepthwiseBackwardJob : IParallelBody
    {
        public Tensor X, Dy, Dx;
        public float* W, Dw;
        public bool Accumulate;
        public ConvGeometry G;

        public int Multiplier;

        /// <summary>Input channel <paramref name="ci"/>: its dx plane and the filters of its Multiplier outputs.</summary>
        public readonly void Execute(int ci, int worker)
        {
            int k = G.Kernel, kk = k * k, s = G.Stride, p = G.Padding;
            Span<double> dw = stackalloc double[Multiplier * kk]; // sums over N * H * W: accumulate in double
            dw.Clear();
            for (int n = 0; n < X.N; n++)
            {
                float* x = PlanePtr(X, n, ci);
                float* dx = Dx.IsNone ? null : PlanePtr(Dx, n, ci);
                if (dx != null && !Accumulate) Simd.Clear(dx, X.Plane);
                for (int j = 0; j < Multiplier; j++)
                {
                    int co = ci * Multiplier + j;
                    float* w = W + (long)co * kk;
                    float* dy = PlanePtr(Dy, n, co);
                    for (int oh = 0; oh < Dy.H; oh++)
                    {
                        float* dyr = dy + oh * Dy.W;
                        for (int kh = 0; kh < k; kh++)
                        {
                            int ih = oh * s - p + kh;
                            if (ih < 0 || ih >= X.H) continue;
                            for (int kw = 0; kw < k; kw++)
                            {
                                var (lo, hi) = ValidRange(Dy.W, X.W, s, kw - p);
                                long shift = (long)ih * X.W + kw - p;
                                float* xs = x + shift;
                                float wv = w[kh * k + kw];
                                ref double dwv = ref dw[j * kk + kh * k + kw];
                                if (s == 1)
                                {
                                    dwv += Simd.Dot(dyr + lo, xs + lo, hi - lo);
                                    if (dx != null) Simd.Axpy(wv, dyr + lo, dx + shift + lo, hi - lo);
                                }
                                else
                                {
                                    float acc = 0;
                                    for (int ow = lo; ow < hi; ow++) acc += dyr[ow] * xs[ow * s];
                                    dwv += acc;
                                    if (dx != null)
                                    {
                                        float* dxs = dx + shift;
                                        for (int ow = lo; ow < hi; ow++) dxs[ow * s] += wv * dyr[ow];
                                    }
                                }
                            }
                        }
                    }
                }
            }
            for (int i = 0; i < dw.Length; i++) Dw[(long)ci * Multiplier * kk + i] = (float)dw[i];
        }
    }
}

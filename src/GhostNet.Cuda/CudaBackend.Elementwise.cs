using GhostNet.Backends;

namespace GhostNet.Cuda;

// Elementwise ops, pooling and the squeeze-excite scale (kernels: elementwise.cu). Each launch
// carries its modelled cost (LaunchCost: elements read and written once, FLOPs as written) next to it.
public sealed partial class CudaBackend
{
    private static long PerImage(in Tensor t) => (long)t.C * t.Plane;

    /// <summary>
    /// The modelled cost of an fp32-arithmetic launch that reads and writes <paramref name="read"/>
    /// and <paramref name="written"/> activation elements (of this backend's activation bytes),
    /// <paramref name="words"/> fp32 elements (parameters, statistics) and <paramref name="otherBytes"/>:
    /// LaunchCost.Fp32 where activations are fp32.
    /// </summary>
    private LaunchCost ActCost(long read, long written, long flops, long otherBytes = 0, long words = 0) =>
        new(ActivationType.Bytes() * (read + written) + 4 * words + otherBytes, flops, GhostNet.Cuda.Precision.Fp32);

    public void Fill(in Tensor tensor, float value)
    {
        Op(OpFamily.Fill);
        bool fp32 = tensor.Storage.Type == ElementType.Float32; // a parameter or a statistic, or an fp32 backend's activation
        Launch1D(fp32 ? "fill_view" : "fill_act", tensor.Count, new LaunchCost(tensor.Count * tensor.Storage.Type.Bytes(), 0), $"{tensor}",
            fp32 ? Ptr(tensor) : Act(tensor), Stride(tensor), PerImage(tensor), tensor.Count, value);
    }

    public void Add(in Tensor a, in Tensor b, in Tensor y)
    {
        Op(OpFamily.Elementwise);
        ShapeChecks.Same("add", a, b);
        ShapeChecks.Same("add", a, y);
        AddViews(a, b, y);
    }

    private void AddViews(in Tensor a, in Tensor b, in Tensor y) =>
        Launch1D("add_views", a.Count, ActCost(read: 2 * a.Count, written: a.Count, flops: a.Count), $"{a} + {b}", Act(a), Stride(a), Act(b), Stride(b), Act(y), Stride(y), PerImage(a), a.Count);

    public void CopyOrAccumulate(in Tensor src, in Tensor dst, bool accumulate)
    {
        Op(OpFamily.Elementwise);
        ShapeChecks.Same("copy", src, dst);
        Launch1D("copy_or_accumulate", src.Count, ActCost(read: (accumulate ? 2 : 1) * src.Count, written: src.Count, flops: accumulate ? src.Count : 0), $"{src} -> {dst}", Act(src), Stride(src), Act(dst), Stride(dst), PerImage(src), src.Count, accumulate ? 1 : 0);
    }

    public void NormalizeImages(in Tensor pixels, in Tensor images, Normalization n)
    {
        Op(OpFamily.Input);
        ShapeChecks.NormalizeImages(pixels, images);
        long total = (long)images.N * images.Plane; // pixels: 3 bytes read, 3 floats written each
        Launch1D("normalize_images", total, new LaunchCost(4 * ((3 * total + 3) / 4) + ActivationType.Bytes() * 3 * total, 6 * total), $"{pixels} -> {images}",
            Ptr(pixels), (long)images.Plane, total, n.Scale(0), n.Scale(1), n.Scale(2), n.Shift(0), n.Shift(1), n.Shift(2), Act(images));
    }

    public void Relu(in Tensor x, in Tensor y)
    {
        Op(OpFamily.Elementwise);
        ShapeChecks.Same("relu", x, y);
        Launch1D("relu_fwd", x.Count, ActCost(read: x.Count, written: x.Count, flops: x.Count), $"{x}", Act(x), Stride(x), Act(y), Stride(y), PerImage(x), x.Count);
    }

    public void ReluBackward(in Tensor y, in Tensor dy, in Tensor dx, bool accumulate)
    {
        Op(OpFamily.Elementwise);
        ShapeChecks.Same("relu_bwd", y, dy);
        ShapeChecks.Same("relu_bwd", y, dx);
        Launch1D("relu_bwd", y.Count, ActCost(read: (accumulate ? 3 : 2) * y.Count, written: y.Count, flops: (accumulate ? 2 : 1) * y.Count), $"{y}", Act(y), Stride(y), Act(dy), Stride(dy), Act(dx), Stride(dx), PerImage(y), y.Count, accumulate ? 1 : 0);
    }

    public void HardSigmoid(in Tensor x, in Tensor y)
    {
        Op(OpFamily.SqueezeExcite);
        ShapeChecks.Same("hard_sigmoid", x, y);
        Launch1D("hard_sigmoid_fwd", x.Count, ActCost(read: x.Count, written: x.Count, flops: 4 * x.Count), $"{x}", Act(x), Stride(x), Act(y), Stride(y), PerImage(x), x.Count);
    }

    public void HardSigmoidBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate)
    {
        Op(OpFamily.SqueezeExcite);
        ShapeChecks.Same("hard_sigmoid_bwd", x, dy);
        ShapeChecks.Same("hard_sigmoid_bwd", x, dx);
        Launch1D("hard_sigmoid_bwd", x.Count, ActCost(read: (accumulate ? 3 : 2) * x.Count, written: x.Count, flops: (accumulate ? 4 : 3) * x.Count), $"{x}", Act(x), Stride(x), Act(dy), Stride(dy), Act(dx), Stride(dx), PerImage(x), x.Count, accumulate ? 1 : 0);
    }

    public void Clamp01(in Tensor x, in Tensor y)
    {
        Op(OpFamily.SqueezeExcite);
        ShapeChecks.Same("clamp01", x, y);
        Launch1D("clamp01_fwd", x.Count, ActCost(read: x.Count, written: x.Count, flops: 2 * x.Count), $"{x}", Act(x), Stride(x), Act(y), Stride(y), PerImage(x), x.Count);
    }

    public void Clamp01Backward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate)
    {
        Op(OpFamily.SqueezeExcite);
        ShapeChecks.Same("clamp01_bwd", x, dy);
        ShapeChecks.Same("clamp01_bwd", x, dx);
        Launch1D("clamp01_bwd", x.Count, ActCost(read: (accumulate ? 3 : 2) * x.Count, written: x.Count, flops: (accumulate ? 3 : 2) * x.Count), $"{x}", Act(x), Stride(x), Act(dy), Stride(dy), Act(dx), Stride(dx), PerImage(x), x.Count, accumulate ? 1 : 0);
    }

    // Spelled out like the gates above, not through one helper: LaunchSignatureTests reads each
    // launch's literal kernel name and argument count.
    public void HardSwish(in Tensor x, in Tensor y)
    {
        Op(OpFamily.Elementwise);
        ShapeChecks.Same("hard_swish", x, y);
        Launch1D("hard_swish_fwd", x.Count, ActCost(read: x.Count, written: x.Count, flops: 5 * x.Count), $"{x}", Act(x), Stride(x), Act(y), Stride(y), PerImage(x), x.Count);
    }

    public void HardSwishBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate)
    {
        Op(OpFamily.Elementwise);
        ShapeChecks.Same("hard_swish_bwd", x, dy);
        ShapeChecks.Same("hard_swish_bwd", x, dx);
        Launch1D("hard_swish_bwd", x.Count, ActCost(read: (accumulate ? 3 : 2) * x.Count, written: x.Count, flops: (accumulate ? 5 : 4) * x.Count), $"{x}", Act(x), Stride(x), Act(dy), Stride(dy), Act(dx), Stride(dx), PerImage(x), x.Count, accumulate ? 1 : 0);
    }

    public void ChannelScale(in Tensor x, in Tensor s, in Tensor y)
    {
        Op(OpFamily.SqueezeExcite);
        ShapeChecks.Same("channel_scale", x, y);
        s.RequireShape("channel_scale", "gate", x.N, x.C, 1, 1);
        s.RequireContiguous("channel_scale");
        Launch1D("channel_scale", x.Count, ActCost(read: x.Count + s.Count, written: x.Count, flops: x.Count), $"{x}", Act(x), Stride(x), Act(s), Act(y), Stride(y), x.C, x.Plane, x.Count, 0);
    }

    public void ChannelScaleBackward(in Tensor x, in Tensor s, in Tensor dy, in Tensor dx, bool accumulate, in Tensor ds)
    {
        Op(OpFamily.SqueezeExcite);
        ShapeChecks.Same("channel_scale_bwd", x, dy);
        if (!dx.IsNone) ShapeChecks.Same("channel_scale_bwd", x, dx);
        s.RequireShape("channel_scale_bwd", "gate", x.N, x.C, 1, 1);
        ds.RequireShape("channel_scale_bwd", "gate gradient", x.N, x.C, 1, 1);
        ds.RequireContiguous("channel_scale_bwd");
        // The gate's gradient: dy and x read once, one value per plane written.
        LaunchPlanes(x, ActCost(read: 2 * x.Count, written: ds.Count, flops: 2 * x.Count), $"{dy} . {x}", Act(dy), Stride(dy), Act(x), Stride(x), 1f, Act(ds));
        if (!dx.IsNone) ScaleGradient(s, dy, dx, accumulate);
    }

    // dx (+)= dy * s (channel_scale).
    private void ScaleGradient(in Tensor s, in Tensor dy, in Tensor dx, bool accumulate) =>
        Launch1D("channel_scale", dx.Count, ActCost(read: (accumulate ? 2 : 1) * dx.Count + s.Count, written: dx.Count, flops: (accumulate ? 2 : 1) * dx.Count), $"{dy}", Act(dy), Stride(dy), Act(s), Act(dx), Stride(dx), dx.C, dx.Plane, dx.Count, accumulate ? 1 : 0);

    /// <summary>
    /// Whether <see cref="ChannelScaleAndPoolBackward"/> adds both paths' gradients in one pass
    /// (v2.15, the default: channel_scale_pool_bwd) or with channel_scale then broadcast_plane,
    /// the reference the tests compare it with.
    /// </summary>
    public bool FuseSqueezeExciteGradient { get; set; } = true;

    public void ChannelScaleAndPoolBackward(in Tensor s, in Tensor dy, in Tensor dPooled, in Tensor dx, bool accumulate)
    {
        ShapeChecks.Same("channel_scale_pool_bwd", dy, dx);
        s.RequireShape("channel_scale_pool_bwd", "gate", dx.N, dx.C, 1, 1);
        dPooled.RequireContiguous("channel_scale_pool_bwd");
        dPooled.RequireShape("channel_scale_pool_bwd", "pooled gradient", dx.N, dx.C, 1, 1);
        if (!FuseSqueezeExciteGradient)
        {
            using var call = Composite(OpFamily.SqueezeExcite);
            ScaleGradient(s, dy, dx, accumulate);
            GlobalAvgPoolBackward(dPooled, dx, accumulate: true);
            return;
        }
        Op(OpFamily.SqueezeExcite);
        // Cost: dy read, dx written (and read when accumulating), the gate and the pooled gradient per plane; 2-3 FLOPs an element.
        Launch1D("channel_scale_pool_bwd", dx.Count,
            ActCost(read: (accumulate ? 2 : 1) * dx.Count + s.Count + dPooled.Count, written: dx.Count, flops: (accumulate ? 4 : 3) * dx.Count), $"{dy}",
            Act(dy), Stride(dy), Act(s), Act(dPooled), 1f / dx.Plane, Act(dx), Stride(dx), dx.C, dx.Plane, dx.Count, accumulate ? 1 : 0);
    }

    public void GlobalAvgPool(in Tensor x, in Tensor y)
    {
        Op(OpFamily.Pooling);
        y.RequireContiguous("global_avg_pool");
        y.RequireShape("global_avg_pool", "output", x.N, x.C, 1, 1);
        LaunchPlanes(x, ActCost(read: x.Count, written: y.Count, flops: x.Count), $"{x}", Act(x), Stride(x), 0UL, 0L, 1f / x.Plane, Act(y));
    }

    public void MaxPool(in Tensor x, in Tensor y, ConvGeometry g)
    {
        Op(OpFamily.Pooling);
        ShapeChecks.MaxPool("max_pool", x, y, g);
        // Cost: x read once (overlapping windows hit the cache), y written; k*k compares an output.
        Launch1D("max_pool", y.Count, ActCost(read: x.Count, written: y.Count, flops: (long)y.Count * g.Kernel * g.Kernel), $"{x} {g}",
            Act(x), Stride(x), Act(y), Stride(y), x.N, x.C, x.H, x.W, y.H, y.W, g.Kernel, g.Stride, g.Padding);
    }

    public void MaxPoolBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate, ConvGeometry g)
    {
        Op(OpFamily.Pooling);
        ShapeChecks.MaxPool("max_pool_bwd", x, dy, g);
        ShapeChecks.Same("max_pool_bwd", x, dx);
        // Cost: x and dy read, dx written (and read when accumulating); each input recomputes the
        // choice of every window holding it: ceil(k / s)^2 windows of k*k compares.
        long windows = (long)Math.Pow((g.Kernel + g.Stride - 1) / g.Stride, 2);
        Launch1D("max_pool_bwd", dx.Count,
            ActCost(read: x.Count + dy.Count + (accumulate ? dx.Count : 0), written: dx.Count, flops: dx.Count * windows * g.Kernel * g.Kernel),
            $"{x} {g}", Act(x), Stride(x), Act(dy), Stride(dy), Act(dx), Stride(dx), x.N, x.C, x.H, x.W, dy.H, dy.W, g.Kernel, g.Stride, g.Padding,
            accumulate ? 1 : 0);
    }

    /// <summary>plane_reduce over the N x C planes of <paramref name="x"/>: one warp a plane.</summary>
    private void LaunchPlanes(in Tensor x, in LaunchCost cost, DeferredText context, ulong a, long aStride, ulong b, long bStride, float scale, ulong output)
    {
        int planes = x.N * x.C, perBlock = Threads / 32;
        Launch("plane_reduce", (uint)((planes + perBlock - 1) / perBlock), 1, 1, Threads, cost, context,
            a, aStride, b, bStride, planes, x.C, x.Plane, scale, output);
    }

    public void GlobalAvgPoolBackward(in Tensor dy, in Tensor dx, bool accumulate)
    {
        Op(OpFamily.Pooling);
        dy.RequireContiguous("global_avg_pool_bwd");
        dy.RequireShape("global_avg_pool_bwd", "gradient", dx.N, dx.C, 1, 1);
        Launch1D("broadcast_plane", dx.Count, ActCost(read: dy.Count + (accumulate ? dx.Count : 0), written: dx.Count, flops: (accumulate ? 2 : 1) * dx.Count), $"{dx}", Act(dy), 1f / dx.Plane, Act(dx), Stride(dx), dx.C, dx.Plane, dx.Count, accumulate ? 1 : 0);
    }
}

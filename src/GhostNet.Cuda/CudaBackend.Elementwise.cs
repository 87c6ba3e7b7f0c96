using GhostNet.Backends;

namespace GhostNet.Cuda;

// Elementwise ops, pooling and the squeeze-excite scale (kernels: elementwise.cu). Each launch
// carries its modelled cost (LaunchCost: elements read and written once, FLOPs as written) next to it.
public sealed partial class CudaBackend
{
    private static long PerImage(in Tensor t) => (long)t.C * t.Plane;

    public void Fill(in Tensor tensor, float value)
    {
        Op(OpFamily.Fill);
        Launch1D("fill_view", tensor.Count, LaunchCost.Fp32(read: 0, written: tensor.Count, flops: 0), $"{tensor}", Ptr(tensor), Stride(tensor), PerImage(tensor), tensor.Count, value);
    }

    public void Add(in Tensor a, in Tensor b, in Tensor y)
    {
        Op(OpFamily.Elementwise);
        ShapeChecks.Same("add", a, b);
        ShapeChecks.Same("add", a, y);
        AddViews(a, b, y);
    }

    private void AddViews(in Tensor a, in Tensor b, in Tensor y) =>
        Launch1D("add_views", a.Count, LaunchCost.Fp32(read: 2 * a.Count, written: a.Count, flops: a.Count), $"{a} + {b}", Ptr(a), Stride(a), Ptr(b), Stride(b), Ptr(y), Stride(y), PerImage(a), a.Count);

    public void CopyOrAccumulate(in Tensor src, in Tensor dst, bool accumulate)
    {
        Op(OpFamily.Elementwise);
        ShapeChecks.Same("copy", src, dst);
        Launch1D("copy_or_accumulate", src.Count, LaunchCost.Fp32(read: (accumulate ? 2 : 1) * src.Count, written: src.Count, flops: accumulate ? src.Count : 0), $"{src} -> {dst}", Ptr(src), Stride(src), Ptr(dst), Stride(dst), PerImage(src), src.Count, accumulate ? 1 : 0);
    }

    public void NormalizeImages(in Tensor pixels, in Tensor images, Normalization n)
    {
        Op(OpFamily.Input);
        ShapeChecks.NormalizeImages(pixels, images);
        long total = (long)images.N * images.Plane; // pixels: 3 bytes read, 3 floats written each
        Launch1D("normalize_images", total, LaunchCost.Fp32(read: (3 * total + 3) / 4, written: 3 * total, flops: 6 * total), $"{pixels} -> {images}",
            Ptr(pixels), (long)images.Plane, total, n.Scale(0), n.Scale(1), n.Scale(2), n.Shift(0), n.Shift(1), n.Shift(2), Ptr(images));
    }

    public void Relu(in Tensor x, in Tensor y)
    {
        Op(OpFamily.Elementwise);
        ShapeChecks.Same("relu", x, y);
        Launch1D("relu_fwd", x.Count, LaunchCost.Fp32(read: x.Count, written: x.Count, flops: x.Count), $"{x}", Ptr(x), Stride(x), Ptr(y), Stride(y), PerImage(x), x.Count);
    }

    public void ReluBackward(in Tensor y, in Tensor dy, in Tensor dx, bool accumulate)
    {
        Op(OpFamily.Elementwise);
        ShapeChecks.Same("relu_bwd", y, dy);
        ShapeChecks.Same("relu_bwd", y, dx);
        Launch1D("relu_bwd", y.Count, LaunchCost.Fp32(read: (accumulate ? 3 : 2) * y.Count, written: y.Count, flops: (accumulate ? 2 : 1) * y.Count), $"{y}", Ptr(y), Stride(y), Ptr(dy), Stride(dy), Ptr(dx), Stride(dx), PerImage(y), y.Count, accumulate ? 1 : 0);
    }

    public void HardSigmoid(in Tensor x, in Tensor y)
    {
        Op(OpFamily.SqueezeExcite);
        ShapeChecks.Same("hard_sigmoid", x, y);
        Launch1D("hard_sigmoid_fwd", x.Count, LaunchCost.Fp32(read: x.Count, written: x.Count, flops: 4 * x.Count), $"{x}", Ptr(x), Stride(x), Ptr(y), Stride(y), PerImage(x), x.Count);
    }

    public void HardSigmoidBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate)
    {
        Op(OpFamily.SqueezeExcite);
        ShapeChecks.Same("hard_sigmoid_bwd", x, dy);
        ShapeChecks.Same("hard_sigmoid_bwd", x, dx);
        Launch1D("hard_sigmoid_bwd", x.Count, LaunchCost.Fp32(read: (accumulate ? 3 : 2) * x.Count, written: x.Count, flops: (accumulate ? 4 : 3) * x.Count), $"{x}", Ptr(x), Stride(x), Ptr(dy), Stride(dy), Ptr(dx), Stride(dx), PerImage(x), x.Count, accumulate ? 1 : 0);
    }

    public void ChannelScale(in Tensor x, in Tensor s, in Tensor y)
    {
        Op(OpFamily.SqueezeExcite);
        ShapeChecks.Same("channel_scale", x, y);
        s.RequireShape("channel_scale", "gate", x.N, x.C, 1, 1);
        s.RequireContiguous("channel_scale");
        Launch1D("channel_scale", x.Count, LaunchCost.Fp32(read: x.Count + s.Count, written: x.Count, flops: x.Count), $"{x}", Ptr(x), Stride(x), Ptr(s), Ptr(y), Stride(y), x.C, x.Plane, x.Count, 0);
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
        LaunchPlanes(x, LaunchCost.Fp32(read: 2 * x.Count, written: ds.Count, flops: 2 * x.Count), $"{dy} . {x}", Ptr(dy), Stride(dy), Ptr(x), Stride(x), 1f, Ptr(ds));
        if (!dx.IsNone) ScaleGradient(s, dy, dx, accumulate);
    }

    // dx (+)= dy * s (channel_scale).
    private void ScaleGradient(in Tensor s, in Tensor dy, in Tensor dx, bool accumulate) =>
        Launch1D("channel_scale", dx.Count, LaunchCost.Fp32(read: (accumulate ? 2 : 1) * dx.Count + s.Count, written: dx.Count, flops: (accumulate ? 2 : 1) * dx.Count), $"{dy}", Ptr(dy), Stride(dy), Ptr(s), Ptr(dx), Stride(dx), dx.C, dx.Plane, dx.Count, accumulate ? 1 : 0);

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
            LaunchCost.Fp32(read: (accumulate ? 2 : 1) * dx.Count + s.Count + dPooled.Count, written: dx.Count, flops: (accumulate ? 4 : 3) * dx.Count), $"{dy}",
            Ptr(dy), Stride(dy), Ptr(s), Ptr(dPooled), 1f / dx.Plane, Ptr(dx), Stride(dx), dx.C, dx.Plane, dx.Count, accumulate ? 1 : 0);
    }

    public void GlobalAvgPool(in Tensor x, in Tensor y)
    {
        Op(OpFamily.Pooling);
        y.RequireContiguous("global_avg_pool");
        y.RequireShape("global_avg_pool", "output", x.N, x.C, 1, 1);
        LaunchPlanes(x, LaunchCost.Fp32(read: x.Count, written: y.Count, flops: x.Count), $"{x}", Ptr(x), Stride(x), 0UL, 0L, 1f / x.Plane, Ptr(y));
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
        Launch1D("broadcast_plane", dx.Count, LaunchCost.Fp32(read: dy.Count + (accumulate ? dx.Count : 0), written: dx.Count, flops: (accumulate ? 2 : 1) * dx.Count), $"{dx}", Ptr(dy), 1f / dx.Plane, Ptr(dx), Stride(dx), dx.C, dx.Plane, dx.Count, accumulate ? 1 : 0);
    }
}

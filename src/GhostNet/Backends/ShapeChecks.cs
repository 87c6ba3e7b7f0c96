namespace GhostNet.Backends;

/// <summary>
/// The shape contract of each kernel family, checked by every backend before it launches, so a
/// mismatch is an exception naming the op and both shapes instead of a wild memory access.
/// </summary>
public static class ShapeChecks
{
    /// <summary>
    /// A batch norm fused into a conv's kernel applies no activation or ReLU: BatchNorm2d runs one
    /// with hard-swish as its own launches (in the CUDA kernels, hard-swish in every unrolled tap
    /// cost registers and spills; the CPU twin keeps the same contract).
    /// </summary>
    public static void FusedActivation(string op, BatchNormOptions o)
    {
        if (o.Activation is not (Activation.None or Activation.Relu))
            throw new ArgumentException($"{op}: a batch norm fused into a conv applies no activation or ReLU, not {o.Activation.Name()}");
    }

    public static void Same(string op, in Tensor a, in Tensor b)
    {
        if (a.N != b.N || a.C != b.C || a.H != b.H || a.W != b.W)
            throw new ArgumentException($"{op}: shapes differ, {a} and {b}");
    }

    /// <summary>A residual sum in place of output y (<see cref="ResidualSum"/>): its three tensors have one shape, and y is computed here (not deferred).</summary>
    public static void Sum(string op, in ResidualSum sum, in Tensor y, bool deferred = false)
    {
        if (deferred) throw new ArgumentException($"{op}: an output left to a later call cannot be summed here");
        Same(op, y, sum.Addend); // op alone: a concatenation here would allocate every step
        Same(op, y, sum.Sum);
    }

    public static void Conv(string op, in Tensor x, in Tensor w, in Tensor y, ConvGeometry g)
    {
        w.RequireContiguous(op);
        if (w.H != g.Kernel || w.W != g.Kernel || w.C != x.C)
            throw new ArgumentException($"{op}: weight {w} does not fit input {x} with {g}");
        y.RequireShape(op, "output", x.N, w.N, g.OutputSize(x.H), g.OutputSize(x.W));
    }

    /// <summary>
    /// PyTorch's rules: padding at most half the window, so every window holds an input, and a
    /// padded input at least a window wide (OutputSize's division truncates toward zero, so it
    /// alone would let a too-small plane through as one clipped window).
    /// </summary>
    public static void MaxPoolWindow(string op, in Tensor x, ConvGeometry g)
    {
        if (g.Kernel < 1 || g.Stride < 1 || g.Padding < 0 || g.Padding > g.Kernel / 2)
            throw new ArgumentException($"{op}: {g} is not a max pool window (kernel and stride at least 1, padding at most half the kernel)");
        if (x.H + 2 * g.Padding < g.Kernel || x.W + 2 * g.Padding < g.Kernel) throw new ArgumentException($"{op}: input {x} is smaller than the window {g}");
    }

    public static void MaxPool(string op, in Tensor x, in Tensor y, ConvGeometry g)
    {
        MaxPoolWindow(op, x, g);
        y.RequireShape(op, "output", x.N, x.C, g.OutputSize(x.H), g.OutputSize(x.W));
    }

    public static void Pointwise(string op, in Tensor x, in Tensor w, in Tensor y)
    {
        w.RequireContiguous(op);
        w.RequireShape(op, "weight", y.C, x.C, 1, 1);
        y.RequireShape(op, "output", x.N, w.N, x.H, x.W);
    }

    public static void Depthwise(string op, in Tensor x, in Tensor w, in Tensor y, ConvGeometry g)
    {
        w.RequireContiguous(op);
        if (w.C != 1 || w.H != g.Kernel || w.W != g.Kernel || w.N % x.C != 0)
            throw new ArgumentException($"{op}: weight {w} does not fit input {x} with {g}");
        y.RequireShape(op, "output", x.N, w.N, g.OutputSize(x.H), g.OutputSize(x.W));
    }

    public static void Linear(string op, in Tensor x, in Tensor w, in Tensor y)
    {
        x.RequireContiguous(op);
        y.RequireContiguous(op);
        w.RequireContiguous(op);
        if (x.Plane != 1 || y.Plane != 1 || w.Plane != 1 || w.C != x.C)
            throw new ArgumentException($"{op}: input {x}, weight {w}, output {y} do not make a linear layer");
        y.RequireShape(op, "output", x.N, w.N, 1, 1);
    }

    /// <summary>Training batch norm needs two values per channel at least, as PyTorch insists.</summary>
    public static void BatchNormTraining(string op, in Tensor x)
    {
        if ((long)x.N * x.Plane < 2) throw new ArgumentException($"{op}: training needs more than one value per channel, got {x}");
    }

    /// <summary>A readback's source: contiguous and small (a step's results, not a tensor of activations). Returns its words.</summary>
    public static int Readback(in Tensor source)
    {
        source.RequireContiguous("readback");
        if (source.Count is < 1 or > 4096) throw new ArgumentException($"readback: {source} is not a few words (1 to 4096)");
        return (int)source.Count;
    }

    /// <summary><see cref="IBackend.SumBatch"/>'s totals: 1 x 4 x 1 x 1, at an even offset (its double is 8-byte aligned).</summary>
    public static void BatchTotals(in Tensor totals)
    {
        totals.RequireShape("sum_batch", "totals", 1, Backends.BatchTotals.Words, 1, 1);
        totals.RequireContiguous("sum_batch");
        if (totals.Offset % 2 != 0) throw new ArgumentException($"sum_batch: totals {totals} must start 8-byte aligned");
    }

    /// <summary><see cref="IBackend.NormalizeImages"/>: RGB images, contiguous, and at least their bytes of pixels.</summary>
    public static void NormalizeImages(in Tensor pixels, in Tensor images)
    {
        images.RequireContiguous("normalize_images");
        pixels.RequireContiguous("normalize_images");
        if (images.C != 3) throw new ArgumentException($"normalize_images: {images} is not RGB (3 channels)");
        if (pixels.Count * 4 < images.Count) throw new ArgumentException($"normalize_images: {pixels} holds fewer than the {images.Count} bytes of {images}");
    }
}

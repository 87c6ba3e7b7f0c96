namespace GhostNet.Backends;

/// <summary>
/// A view of a 4-d tensor (N, C, H, W) in a <see cref="Storage"/>. The view may be a channel
/// window [C0, C0 + C) of a buffer that holds <see cref="CTotal"/> channels: that is how a Ghost
/// module writes its primary and cheap halves into one buffer and hands out the first
/// <c>oup</c> channels without a concat or a slice copy. Where element (n, c, h, w) lives is the
/// backend's business (the CPU backend stores NCHW); parameters are always contiguous and in
/// PyTorch's layout. A view's gradient is the same view on the storage's gradient twin, unless
/// <see cref="WithGradientOf"/> points it elsewhere.
/// </summary>
public readonly struct Tensor
{
    public readonly Storage Storage;
    public readonly long Offset;
    public readonly int N, C, H, W;
    public readonly int C0, CTotal;
    private readonly GradientView? _gradient;

    /// <summary>
    /// Where a view's gradient lives when it is not the view's own place on the gradient twin. A
    /// struct: a channel window of such a view (<see cref="Channels"/>) allocates nothing, as a
    /// training step must not (a bottleneck's sum is one, and the kernels that write it take windows).
    /// </summary>
    private readonly record struct GradientView(Storage Storage, long Offset, int C0, int CTotal);

    public Tensor(Storage storage, long offset, int n, int c, int h, int w, int c0 = 0, int cTotal = -1)
    {
        ArgumentNullException.ThrowIfNull(storage);
        if (cTotal < 0) cTotal = c;
        if (n < 0 || c < 0 || h < 0 || w < 0 || c0 < 0 || c0 + c > cTotal)
            throw new ArgumentException($"bad tensor view {n}x{c}x{h}x{w} (channels {c0}..{c0 + c} of {cTotal}) in {storage.Name}");
        long extent = (long)n * cTotal * h * w;
        if (offset < 0 || offset + extent > storage.Length)
            throw new ArgumentException($"tensor view {n}x{cTotal}x{h}x{w} at {offset} runs past the end of {storage}");
        Storage = storage;
        Offset = offset;
        N = n; C = c; H = h; W = w;
        C0 = c0; CTotal = cTotal;
    }

    private Tensor(in Tensor view, GradientView? gradient)
    {
        this = view;
        _gradient = gradient;
    }

    /// <summary>
    /// This view with <paramref name="other"/>'s gradient as its own: for a value whose gradient
    /// is passed on unchanged (the branches of a residual sum), so the backward copies nothing.
    /// In a plan without gradients (inference) it is this view unchanged.
    /// </summary>
    public Tensor WithGradientOf(in Tensor other)
    {
        if (other.N != N || other.C != C || other.H != H || other.W != W)
            throw new ArgumentException($"{this} cannot share the gradient of {other}: the shapes differ");
        if (other._gradient is null && other.Storage.Gradient is null) return this;
        var g = other.Grad;
        return new Tensor(this, new GradientView(g.Storage, g.Offset, g.C0, g.CTotal));
    }

    public bool IsNone => Storage is null;
    public long Count => (long)N * C * H * W;
    public int Plane => H * W;
    public bool IsContiguous => C0 == 0 && C == CTotal;

    /// <summary>Whether this view begins where <paramref name="other"/> does (one buffer, one offset, one first channel): a layer reading what another wrote.</summary>
    public bool StartsAt(in Tensor other) => ReferenceEquals(Storage, other.Storage) && Offset == other.Offset && C0 == other.C0;

    /// <summary>The channel window [start, start + count) of this view.</summary>
    public Tensor Channels(int start, int count)
    {
        if (start < 0 || start + count > C)
            throw new ArgumentOutOfRangeException(nameof(start), $"channels {start}..{start + count} of a {C}-channel view");
        var window = new Tensor(Storage, Offset, N, count, H, W, C0 + start, CTotal);
        return _gradient is { } g ? new Tensor(window, g with { C0 = g.C0 + start }) : window;
    }

    /// <summary>The same view on the gradient twin of its storage, or the gradient it shares (<see cref="WithGradientOf"/>).</summary>
    public Tensor Grad
    {
        get
        {
            if (_gradient is { } shared) return new Tensor(shared.Storage, shared.Offset, N, C, H, W, shared.C0, shared.CTotal);
            var g = Storage.Gradient ?? throw new InvalidOperationException($"{Storage.Name} has no gradient storage");
            return new Tensor(g, Offset, N, C, H, W, C0, CTotal);
        }
    }

    public void RequireContiguous(string op)
    {
        if (!IsContiguous) throw new ArgumentException($"{op} needs a contiguous tensor, got {this}");
    }

    public void RequireShape(string op, int n, int c, int h, int w) => RequireShape(op, "tensor", n, c, h, w);

    /// <summary>Checks the shape; <paramref name="part"/> names the operand in the error (kept separate so that no string is built unless it fails).</summary>
    public void RequireShape(string op, string part, int n, int c, int h, int w)
    {
        if (N != n || C != c || H != h || W != w)
            throw new ArgumentException($"{op}: {part} should be {n}x{c}x{h}x{w}, got {this}");
    }

    public override string ToString() =>
        IsNone ? "(none)" :
        IsContiguous ? $"{Storage.Name}@{Offset}[{N}x{C}x{H}x{W}]" : $"{Storage.Name}@{Offset}[{N}x{C}({C0}..{C0 + C} of {CTotal})x{H}x{W}]";
}

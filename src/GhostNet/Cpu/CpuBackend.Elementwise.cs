using System.Runtime.Intrinsics;
using GhostNet.Backends;

namespace GhostNet.Cpu;

// Elementwise ops over views, one task per image: within an image a channel window is one
// contiguous run of C * H * W values in NCHW, so every op is a flat SIMD loop over that run.
public sealed unsafe partial class CpuBackend
{
    private enum Pointwise { Add, Copy, Accumulate, Relu, ReluBackward, ReluBackwardAccumulate, Activate, ActivationBackward, ActivationBackwardAccumulate }

    public void Add(in Tensor a, in Tensor b, in Tensor y)
    {
        ShapeChecks.Same("add", a, b);
        ShapeChecks.Same("add", a, y);
        Elementwise(Pointwise.Add, a, b, y);
    }

    public void CopyOrAccumulate(in Tensor src, in Tensor dst, bool accumulate)
    {
        ShapeChecks.Same("copy", src, dst);
        Elementwise(accumulate ? Pointwise.Accumulate : Pointwise.Copy, src, src, dst);
    }

    public void NormalizeImages(in Tensor pixels, in Tensor images, Normalization normalization)
    {
        ShapeChecks.NormalizeImages(pixels, images);
        int perImage = 3 * images.Plane;
        byte* bytes = (byte*)Ptr(pixels);
        for (int n = 0; n < images.N; n++)
            normalization.Normalize(new ReadOnlySpan<byte>(bytes + (long)n * perImage, perImage), new Span<float>(PlanePtr(images, n, 0), perImage), images.H, images.W);
    }

    public void Relu(in Tensor x, in Tensor y)
    {
        ShapeChecks.Same("relu", x, y);
        Elementwise(Pointwise.Relu, x, x, y);
    }

    public void ReluBackward(in Tensor y, in Tensor dy, in Tensor dx, bool accumulate)
    {
        ShapeChecks.Same("relu_bwd", y, dy);
        ShapeChecks.Same("relu_bwd", y, dx);
        Elementwise(accumulate ? Pointwise.ReluBackwardAccumulate : Pointwise.ReluBackward, y, dy, dx);
    }

    public void HardSigmoid(in Tensor x, in Tensor y) => Activate("hard_sigmoid", Activation.HardSigmoid, x, y);
    public void HardSigmoidBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate) => ActivationBackward("hard_sigmoid_bwd", Activation.HardSigmoid, x, dy, dx, accumulate);
    public void Clamp01(in Tensor x, in Tensor y) => Activate("clamp01", Activation.Clamp01, x, y);
    public void Clamp01Backward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate) => ActivationBackward("clamp01_bwd", Activation.Clamp01, x, dy, dx, accumulate);
    public void HardSwish(in Tensor x, in Tensor y) => Activate("hard_swish", Activation.HardSwish, x, y);
    public void HardSwishBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate) => ActivationBackward("hard_swish_bwd", Activation.HardSwish, x, dy, dx, accumulate);

    private void Activate(string op, Activation kind, in Tensor x, in Tensor y)
    {
        ShapeChecks.Same(op, x, y);
        Elementwise(Pointwise.Activate, x, x, y, kind);
    }

    private void ActivationBackward(string op, Activation kind, in Tensor x, in Tensor dy, in Tensor dx, bool accumulate)
    {
        ShapeChecks.Same(op, x, dy);
        ShapeChecks.Same(op, x, dx);
        Elementwise(accumulate ? Pointwise.ActivationBackwardAccumulate : Pointwise.ActivationBackward, x, dy, dx, kind);
    }

    public void ChannelScale(in Tensor x, in Tensor s, in Tensor y)
    {
        ShapeChecks.Same("channel_scale", x, y);
        s.RequireShape("channel_scale gate", x.N, x.C, 1, 1);
        var job = new ChannelScaleJob { X = x, S = s, Y = y };
        For(x.N * x.C, x.Count, job);
    }

    public void ChannelScaleBackward(in Tensor x, in Tensor s, in Tensor dy, in Tensor dx, bool accumulate, in Tensor ds)
    {
        ShapeChecks.Same("channel_scale_bwd", x, dy);
        if (!dx.IsNone) ShapeChecks.Same("channel_scale_bwd", x, dx);
        s.RequireShape("channel_scale_bwd gate", x.N, x.C, 1, 1);
        ds.RequireShape("channel_scale_bwd gate grad", x.N, x.C, 1, 1);
        var job = new ChannelScaleJob { X = x, S = s, Y = dy, Dx = dx, Ds = ds, Backward = true, Accumulate = accumulate };
        For(x.N * x.C, x.Count * 2, job);
    }

    /// <summary>Per plane, dx (+)= dy * s, then dPooled / P added, while the plane is in cache.</summary>
    public void ChannelScaleAndPoolBackward(in Tensor s, in Tensor dy, in Tensor dPooled, in Tensor dx, bool accumulate)
    {
        ShapeChecks.Same("channel_scale_pool_bwd", dy, dx);
        s.RequireShape("channel_scale_pool_bwd gate", dx.N, dx.C, 1, 1);
        dPooled.RequireContiguous("channel_scale_pool_bwd");
        dPooled.RequireShape("channel_scale_pool_bwd pooled gradient", dx.N, dx.C, 1, 1);
        var job = new ChannelScaleJob { X = dy, S = s, Y = dy, Dx = dx, Pooled = Ptr(dPooled), Backward = true, Accumulate = accumulate };
        For(dx.N * dx.C, dx.Count * 2, job);
    }

    private void Elementwise(Pointwise op, in Tensor a, in Tensor b, in Tensor y, Activation kind = Activation.None) =>
        For(a.N, a.Count, new ElementwiseJob { Op = op, A = a, B = b, Y = y, Kind = kind });

    private struct ElementwiseJob : IParallelBody
    {
        public Pointwise Op;
        public Tensor A, B, Y;
        /// <summary>The activation of Activate and ActivationBackward.</summary>
        public Activation Kind;

        public readonly void Execute(int n, int worker)
        {
            float* a = PlanePtr(A, n, 0), b = PlanePtr(B, n, 0), y = PlanePtr(Y, n, 0);
            int len = A.C * A.Plane;
            switch (Op)
            {
                case Pointwise.Add: Simd.Add(a, b, y, len); return;
                case Pointwise.Copy: Simd.Copy(a, y, len); return;
                case Pointwise.Accumulate: Simd.Add(a, y, y, len); return;
                case Pointwise.Relu: Relu(a, y, len); return;
                case Pointwise.ReluBackward: ReluBackward(a, b, y, len, false); return;
                case Pointwise.ReluBackwardAccumulate: ReluBackward(a, b, y, len, true); return;
                case Pointwise.Activate: Activate(Kind, a, y, len); return;
                case Pointwise.ActivationBackward: ActivationBackward(Kind, a, b, y, len, false); return;
                case Pointwise.ActivationBackwardAccumulate: ActivationBackward(Kind, a, b, y, len, true); return;
            }
        }

        private static void Relu(float* x, float* y, int n)
        {
            int i = 0;
            for (; i <= n - V; i += V) Vector256.Store(Simd.Relu(Vector256.Load(x + i)), y + i);
            for (; i < n; i++) y[i] = Simd.Relu(x[i]);
        }

        private static void ReluBackward(float* y, float* dy, float* dx, int n, bool accumulate)
        {
            for (int i = 0; i < n; i++)
            {
                float g = Simd.ReluGrad(y[i], dy[i]);
                dx[i] = accumulate ? dx[i] + g : g;
            }
        }

        private static void Activate(Activation kind, float* x, float* y, int n)
        {
            for (int i = 0; i < n; i++) y[i] = ActivationMath.Apply(kind, x[i]);
        }

        private static void ActivationBackward(Activation kind, float* x, float* dy, float* dx, int n, bool accumulate)
        {
            for (int i = 0; i < n; i++)
            {
                float g = ActivationMath.Grad(kind, x[i], dy[i]);
                dx[i] = accumulate ? dx[i] + g : g;
            }
        }
    }

    private struct ChannelScaleJob : IParallelBody
    {
        public Tensor X, S, Y, Dx, Ds;
        public bool Backward, Accumulate;
        /// <summary>With the pooled input's gradient (ChannelScaleAndPoolBackward): dx only, and the pool's share added.</summary>
        public float* Pooled;

        public readonly void Execute(int index, int worker)
        {
            int n = index / X.C, c = index % X.C, plane = X.Plane;
            float s = Ptr(S)[index];
            float* x = PlanePtr(X, n, c);
            if (!Backward)
            {
                Simd.ScaleInto(s, x, PlanePtr(Y, n, c), plane, false);
                return;
            }
            float* dy = PlanePtr(Y, n, c);
            if (Pooled != null)
            {
                float* dx = PlanePtr(Dx, n, c);
                Simd.ScaleInto(s, dy, dx, plane, Accumulate);
                Simd.FillOrAdd(Pooled[index] / plane, dx, plane, true);
                return;
            }
            Ptr(Ds)[index] = Simd.Dot(dy, x, plane);
            if (!Dx.IsNone) Simd.ScaleInto(s, dy, PlanePtr(Dx, n, c), plane, Accumulate);
        }
    }
}

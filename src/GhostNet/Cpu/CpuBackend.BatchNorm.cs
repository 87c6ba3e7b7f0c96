using System.Runtime.Intrinsics;
using GhostNet.Backends;

namespace GhostNet.Cpu;

// Batch norm over (N, H, W) for each channel, one task per channel. Training form: two passes
// for the statistics (mean, then the centred second moment: no cancellation in fp32), one
// pass writing y = x * scale + shift, then the fused activation. PyTorch semantics: the biased
// variance normalises, the unbiased one (M / (M - 1)) enters the running estimate.
// Backward (training form): with dy' = the activation's gradient at y (ActivationMath.Grad),
//   dbeta = sum dy', dgamma = sum dy' xhat,
//   dx = gamma invstd (dy' - dbeta / M - xhat dgamma / M).
// y is never read: the gradient recomputes y = fma(x, scale, shift) from x exactly as the forward
// wrote it (Affine; the CUDA kernels' BnAffine), so it is the forward's y bit for bit. None and
// ReLU run 8 lanes at a time; the other activations (MobileNetV3's hard-swish) one by one.
public sealed unsafe partial class CpuBackend
{
    private const int V = 8;

    public void BatchNormTrainForward(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.Same("batch_norm_fwd", x, y);
        ShapeChecks.BatchNormTraining("batch_norm_fwd", x);
        var job = new BatchNormForwardJob { X = x, Y = y, P = p, O = o, Statistics = BatchStatistics.Computed };
        For(x.C, x.Count * 3, job);
    }

    /// <summary>The batch statistics alone, into the saved and running ones: y is written later (<see cref="ApplySaved"/>).</summary>
    private void BatchNormStatistics(in Tensor x, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.BatchNormTraining("batch_norm_fwd", x);
        var job = new BatchNormForwardJob { X = x, Y = default, P = p, O = o, Statistics = BatchStatistics.Computed };
        For(x.C, x.Count * 2, job);
    }

    /// <summary>y from x and the batch statistics that <see cref="BatchNormStatistics"/> saved.</summary>
    private void ApplySaved(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.Same("batch_norm_fwd", x, y);
        var job = new BatchNormForwardJob { X = x, Y = y, P = p, O = o, Statistics = BatchStatistics.Saved };
        For(x.C, x.Count, job);
    }

    public void BatchNormEvalForward(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.Same("batch_norm_eval", x, y);
        var job = new BatchNormForwardJob { X = x, Y = y, P = p, O = o, Statistics = BatchStatistics.Running };
        For(x.C, x.Count, job);
    }

    /// <summary>dgamma and dbeta alone, as <see cref="BatchNormBackward"/> reduces them.</summary>
    private void BatchNormParameterGradients(in Tensor x, in Tensor dy, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.Same("batch_norm_bwd", x, dy);
        var job = new BatchNormBackwardJob { X = x, Dy = dy, Dx = default, Accumulate = false, P = p, O = o };
        For(x.C, x.Count * 2, job);
    }

    /// <summary>What a forward normalises with: the batch's (computed now, or saved by an earlier call) or the running ones (eval).</summary>
    private enum BatchStatistics { Computed, Saved, Running }

    public void BatchNormBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.Same("batch_norm_bwd", x, dy);
        ShapeChecks.Same("batch_norm_bwd", x, dx);
        var job = new BatchNormBackwardJob { X = x, Dy = dy, Dx = dx, Accumulate = accumulate, P = p, O = o };
        For(x.C, x.Count * 3, job);
    }

    private struct BatchNormForwardJob : IParallelBody
    {
        public Tensor X, Y;
        public BatchNormTensors P;
        public BatchNormOptions O;
        public BatchStatistics Statistics;

        /// <summary>Y none (with computed statistics): the statistics only.</summary>
        public readonly void Execute(int c, int worker)
        {
            int plane = X.Plane;
            float mean, invStd;
            if (Statistics == BatchStatistics.Computed)
            {
                long m = (long)X.N * plane;
                double sum = 0;
                for (int n = 0; n < X.N; n++) sum += Simd.Sum(PlanePtr(X, n, c), plane);
                mean = (float)(sum / m);
                double sq = 0;
                for (int n = 0; n < X.N; n++) sq += Simd.SumSquaredDeviation(PlanePtr(X, n, c), plane, mean);
                double variance = sq / m;
                invStd = (float)(1.0 / Math.Sqrt(variance + O.Eps));
                Ptr(P.SaveMean)[c] = mean;
                Ptr(P.SaveInvStd)[c] = invStd;
                float* rm = Ptr(P.RunningMean), rv = Ptr(P.RunningVar);
                rm[c] = (1 - O.Momentum) * rm[c] + O.Momentum * mean;
                rv[c] = (float)((1 - O.Momentum) * rv[c] + O.Momentum * variance * m / (m - 1));
            }
            else if (Statistics == BatchStatistics.Saved)
            {
                mean = Ptr(P.SaveMean)[c];
                invStd = Ptr(P.SaveInvStd)[c];
            }
            else
            {
                mean = Ptr(P.RunningMean)[c];
                invStd = 1f / MathF.Sqrt(Ptr(P.RunningVar)[c] + O.Eps);
            }
            if (Y.IsNone) return;
            var (scale, shift) = Affine(Ptr(P.Weight)[c], Ptr(P.Bias)[c], mean, invStd);
            var vs = Vector256.Create(scale);
            var vb = Vector256.Create(shift);
            var act = O.Activation;
            bool relu = act == Activation.Relu, vectorised = relu || act == Activation.None;
            for (int n = 0; n < X.N; n++)
            {
                float* x = PlanePtr(X, n, c), y = PlanePtr(Y, n, c);
                int i = 0;
                for (; vectorised && i <= plane - V; i += V)
                {
                    var v = Vector256.FusedMultiplyAdd(Vector256.Load(x + i), vs, vb);
                    if (relu) v = Simd.Relu(v);
                    Vector256.Store(v, y + i);
                }
                for (; i < plane; i++) y[i] = ActivationMath.Apply(act, MathF.FusedMultiplyAdd(x[i], scale, shift));
            }
        }
    }

    /// <summary>y = fma(x, scale, shift): one rounding each, so forward and backward agree exactly.</summary>
    private static (float Scale, float Shift) Affine(float gamma, float beta, float mean, float invStd)
    {
        float scale = gamma * invStd;
        return (scale, MathF.FusedMultiplyAdd(-mean, scale, beta));
    }

    private struct BatchNormBackwardJob : IParallelBody
    {
        public Tensor X, Dy, Dx;
        public bool Accumulate;
        public BatchNormTensors P;
        public BatchNormOptions O;

        private const int SumChunk = 256; // fp32 partial sums this long, added in double

        /// <summary>
        /// Sum of dy' and of dy' (x - mean) over a short run; dy' = the gradient of
        /// <paramref name="act"/> at the forward's y = fma(x, scale, shift).
        /// </summary>
        private static (float, float) MaskedSums(float* x, float* dy, int n, float mean, Activation act, float scale, float shift)
        {
            bool relu = act == Activation.Relu, vectorised = relu || act == Activation.None;
            var vmean = Vector256.Create(mean);
            var vs = Vector256.Create(scale);
            var vb = Vector256.Create(shift);
            var a0 = Vector256<float>.Zero;
            var a1 = Vector256<float>.Zero;
            int i = 0;
            for (; vectorised && i <= n - V; i += V)
            {
                var g = Vector256.Load(dy + i);
                var xv = Vector256.Load(x + i);
                if (relu) g = Simd.ReluGrad(Vector256.FusedMultiplyAdd(xv, vs, vb), g);
                a0 += g;
                a1 = Vector256.FusedMultiplyAdd(g, xv - vmean, a1);
            }
            float s0 = Vector256.Sum(a0), s1 = Vector256.Sum(a1);
            for (; i < n; i++)
            {
                float g = ActivationMath.Grad(act, MathF.FusedMultiplyAdd(x[i], scale, shift), dy[i]);
                s0 += g;
                s1 += g * (x[i] - mean);
            }
            return (s0, s1);
        }

        public readonly void Execute(int c, int worker)
        {
            int plane = X.Plane;
            long m = (long)X.N * plane;
            float mean = Ptr(P.SaveMean)[c], invStd = Ptr(P.SaveInvStd)[c];
            var (scale, shift) = Affine(Ptr(P.Weight)[c], Ptr(P.Bias)[c], mean, invStd);
            var vmean = Vector256.Create(mean);
            var vs = Vector256.Create(scale);
            var vsh = Vector256.Create(shift);
            double sumDy = 0, sumDyXc = 0;
            for (int n = 0; n < X.N; n++)
            {
                float* x = PlanePtr(X, n, c), dy = PlanePtr(Dy, n, c);
                for (int start = 0; start < plane; start += SumChunk)
                {
                    var (s0, s1) = MaskedSums(x + start, dy + start, Math.Min(SumChunk, plane - start), mean, O.Activation, scale, shift);
                    sumDy += s0;
                    sumDyXc += s1;
                }
            }
            float gamma = Ptr(P.Weight)[c];
            Ptr(P.Weight.Grad)[c] = (float)(sumDyXc * invStd);
            Ptr(P.Bias.Grad)[c] = (float)sumDy;
            if (Dx.IsNone) return; // the parameter gradients alone
            float a = gamma * invStd;
            float b = (float)(-a * invStd * invStd * sumDyXc / m);
            float k = (float)(-a * sumDy / m);
            var va = Vector256.Create(a);
            var vb = Vector256.Create(b);
            var vk = Vector256.Create(k);
            var act = O.Activation;
            bool relu = act == Activation.Relu, vectorised = relu || act == Activation.None;
            for (int n = 0; n < X.N; n++)
            {
                float* x = PlanePtr(X, n, c), dy = PlanePtr(Dy, n, c), dx = PlanePtr(Dx, n, c);
                int i = 0;
                for (; vectorised && i <= plane - V; i += V)
                {
                    var g = Vector256.Load(dy + i);
                    var xv = Vector256.Load(x + i);
                    if (relu) g = Simd.ReluGrad(Vector256.FusedMultiplyAdd(xv, vs, vsh), g);
                    var v = Vector256.FusedMultiplyAdd(va, g, Vector256.FusedMultiplyAdd(vb, xv - vmean, vk));
                    if (Accumulate) v += Vector256.Load(dx + i);
                    Vector256.Store(v, dx + i);
                }
                for (; i < plane; i++)
                {
                    float g = ActivationMath.Grad(act, MathF.FusedMultiplyAdd(x[i], scale, shift), dy[i]);
                    float v = a * g + b * (x[i] - mean) + k;
                    dx[i] = Accumulate ? dx[i] + v : v;
                }
            }
        }
    }
}

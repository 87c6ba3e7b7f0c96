using GhostNet.Backends;

namespace GhostNet.Cuda;

// Batch norm (kernels: batch_norm.cu). Each launch carries its modelled cost (LaunchCost) next to
// it: every pass over x, y or dy is counted, per-channel values too. The backward never reads
// y: a fused ReLU's mask is recomputed from x (v2.4).
public sealed partial class CudaBackend
{
    public void BatchNormTrainForward(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o)
    {
        Op(OpFamily.BatchNormForward);
        ShapeChecks.Same("batch_norm_fwd", x, y);
        Statistics(x, p, o);
        Apply(x, y, p, o, training: true);
    }

    /// <summary>The batch statistics of x into the saved and running ones (batch_norm_stats): the first half of the training forward.</summary>
    private void Statistics(in Tensor x, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.BatchNormTraining("batch_norm_fwd", x);
        var (chunks, chunk) = ChannelChunks(x.C, (long)x.N * x.Plane);
        ulong parts = chunks > 1 ? Partials((long)x.C * chunks * 3 * 2) : 0, done = chunks > 1 ? Counters(x.C) : 0;
        long c = x.C, partBytes = chunks > 1 ? 2 * 8 * 3 * c * chunks : 0;
        // Cost: x read once, then the four statistics (running ones read too); split, each
        // chunk's three double parts written, and read by the channel's last block.
        Launch("batch_norm_stats", (uint)x.C, (uint)chunks, 1, Threads,
            ActCost(read: x.Count, written: 0, words: 6 * c, flops: 4 * x.Count, otherBytes: partBytes), $"{x}", Act(x), Stride(x), x.N, x.C, x.Plane, chunk,
            Ptr(p.SaveMean), Ptr(p.SaveInvStd), Ptr(p.RunningMean), Ptr(p.RunningVar), o.Momentum, o.Eps, parts, done);
    }

    public void BatchNormEvalForward(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o)
    {
        Op(OpFamily.BatchNormForward);
        ShapeChecks.Same("batch_norm_eval", x, y);
        Apply(x, y, p, o, training: false);
    }

    // Cost: x read, y written, four per-channel values; scale and shift are recomputed per element
    // (5 FLOPs, 1 more for ReLU). With an addend (y = batch_norm(x) + addend, v2.16), it is read too: 1 FLOP more.
    private void Apply(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o, bool training, in Tensor addend = default)
    {
        bool sum = !addend.IsNone;
        if (sum) ShapeChecks.Same("batch_norm_apply addend", x, addend);
        Launch1D("batch_norm_apply", x.Count, ActCost(read: (sum ? 2 : 1) * x.Count, written: x.Count, words: 4L * x.C, flops: (5 + ActivationFlops(o.Activation)) * x.Count + (sum ? x.Count : 0)),
            $"{x}{addend:+} -> {y}", Act(x), Stride(x), Act(y), Stride(y), x.N, x.C, x.Plane,
            Ptr(p.Weight), Ptr(p.Bias), training ? Ptr(p.SaveMean) : Ptr(p.RunningMean), training ? Ptr(p.SaveInvStd) : Ptr(p.RunningVar),
            training ? 0 : 1, o.Eps, (int)o.Activation, sum ? Act(addend) : 0UL, sum ? Stride(addend) : 0L);
    }

    /// <summary>
    /// Whether a residual sum written in place of a batch norm's output (<see cref="ResidualSum"/>)
    /// is added by the kernels that write that output (v2.16, the default: batch_norm_apply, the
    /// depthwise _apply kernels) or by add_views after them, the reference the tests compare them with.
    /// </summary>
    public bool ResidualInBatchNorm { get; set; } = true;

    /// <summary>
    /// Whether the kernels that write y may add a residual in its place (the rest is the caller's:
    /// no sum over what they read or write, no addend over what they write or leave unwritten).
    /// </summary>
    private bool SumsInKernel(in ResidualSum sum) => ResidualInBatchNorm && !Overlap(sum.Sum, sum.Addend);

    /// <summary>y = batch_norm(z) from saved statistics; with a sum, sum.Sum = y + sum.Addend instead, in the apply or after it.</summary>
    private void ApplyOrSum(in Tensor z, in Tensor y, in BatchNormTensors p, BatchNormOptions o, ResidualSum? sum)
    {
        if (sum is { } s && SumsInKernel(s) && !Overlap(s.Sum, z) && !Overlap(s.Addend, y)) Apply(z, s.Sum, p, o, training: true, s.Addend);
        else
        {
            Apply(z, y, p, o, training: true);
            if (sum is { } after) AddViews(y, after.Addend, after.Sum);
        }
    }

    /// <summary>dgamma and dbeta into the parameters' gradients (batch_norm_bwd_reduce), which dx needs first.</summary>
    private void BatchNormReduce(in Tensor x, in Tensor dy, in BatchNormTensors p, BatchNormOptions o)
    {
        ulong dgamma = Ptr(p.Weight.Grad), dbeta = Ptr(p.Bias.Grad);
        var (chunks, chunk) = ChannelChunks(x.C, (long)x.N * x.Plane);
        ulong parts = chunks > 1 ? Partials((long)x.C * chunks * 2 * 2) : 0, done = chunks > 1 ? Counters(x.C) : 0;
        long c = x.C, partBytes = chunks > 1 ? 2 * 8 * 2 * c * chunks : 0, relu = ActivationGradFlops(o.Activation);
        // Cost: x and dy read once (the ReLU mask is recomputed from x: 2 FLOPs more, no pass
        // over y), four per-channel values, then dgamma and dbeta; split, the two double sums
        // per chunk written, and read by the channel's last block.
        Launch("batch_norm_bwd_reduce", (uint)x.C, (uint)chunks, 1, Threads,
            ActCost(read: 2 * x.Count, written: 0, words: 6 * c, flops: (4 + relu) * x.Count, otherBytes: partBytes), $"{x}", Act(x), Stride(x), Act(dy), Stride(dy),
            x.N, x.C, x.Plane, chunk, Ptr(p.Weight), Ptr(p.Bias), Ptr(p.SaveMean), Ptr(p.SaveInvStd), dgamma, dbeta, (int)o.Activation, parts, done);
    }

    public void BatchNormBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate, in BatchNormTensors p, BatchNormOptions o)
    {
        Op(OpFamily.BatchNormBackward);
        ShapeChecks.Same("batch_norm_bwd", x, dy);
        ShapeChecks.Same("batch_norm_bwd", x, dx);
        BatchNormReduce(x, dy, p, o);
        BatchNormInputGradient(x, dy, dx, accumulate, p, o);
    }

    /// <summary>dx from dgamma and dbeta already in the parameters' gradients (batch_norm_bwd_data): the second half of the backward.</summary>
    private void BatchNormInputGradient(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.Same("batch_norm_bwd", x, dy);
        ShapeChecks.Same("batch_norm_bwd", x, dx);
        ulong dgamma = Ptr(p.Weight.Grad), dbeta = Ptr(p.Bias.Grad);
        long c = x.C, relu = ActivationGradFlops(o.Activation);
        // Cost: x and dy read again, dx written (and read when accumulating), six per-channel values; ~10 FLOPs per element.
        Launch1D("batch_norm_bwd_data", x.Count,
            ActCost(read: (accumulate ? 3 : 2) * x.Count, written: x.Count, words: 6 * c, flops: (10 + relu + (accumulate ? 1 : 0)) * x.Count), $"{x}", Act(x), Stride(x), Act(dy), Stride(dy), Act(dx), Stride(dx),
            x.N, x.C, x.Plane, Ptr(p.Weight), Ptr(p.Bias), Ptr(p.SaveMean), Ptr(p.SaveInvStd), dgamma, dbeta, (int)o.Activation, accumulate ? 1 : 0);
    }

    /// <summary>The cost model's FLOPs of one activation an epilogue applies (0 for none; ReLU 1, as v2 counted it).</summary>
    internal static long ActivationFlops(Activation a) => a switch
    {
        Activation.None => 0, Activation.Relu => 1, Activation.Clamp01 => 2, Activation.HardSigmoid => 4, _ => 5, // as the elementwise launches count them
    };

    /// <summary>The FLOPs of its gradient from the recomputed pre-activation (ReLU's mask 2, as v2 counted it).</summary>
    internal static long ActivationGradFlops(Activation a) => a switch
    {
        Activation.None => 0, Activation.Relu => 2, Activation.HardSwish => 4, _ => 3,
    };
}

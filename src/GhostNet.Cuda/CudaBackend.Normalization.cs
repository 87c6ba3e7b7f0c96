using GhostNet.Backends;

namespace GhostNet.Cuda;

// Batch norm (kernels: batch_norm.cu).
public sealed partial class CudaBackend
{
    public void BatchNormTrainForward(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.Same("batch_norm_fwd", x, y);
        ShapeChecks.BatchNormTraining("batch_norm_fwd", x);
        var (chunks, chunk) = ChannelChunks(x.C, (long)x.N * x.Plane);
        ulong parts = chunks > 1 ? Partials((long)x.C * chunks * 3 * 2) : 0;
        Launch("batch_norm_stats", (uint)x.C, (uint)chunks, 1, Threads, $"{x}", Ptr(x), Stride(x), x.N, x.C, x.Plane, chunk,
            Ptr(p.SaveMean), Ptr(p.SaveInvStd), Ptr(p.RunningMean), Ptr(p.RunningVar), o.Momentum, o.Eps, parts);
        if (chunks > 1)
            Launch1D("batch_norm_finish_stats", x.C, $"{x}", parts, chunks, x.C, (long)x.N * x.Plane,
                Ptr(p.SaveMean), Ptr(p.SaveInvStd), Ptr(p.RunningMean), Ptr(p.RunningVar), o.Momentum, o.Eps);
        Apply(x, y, p, o, training: true);
    }

    public void BatchNormEvalForward(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.Same("batch_norm_eval", x, y);
        Apply(x, y, p, o, training: false);
    }

    private void Apply(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o, bool training) =>
        Launch1D("batch_norm_apply", x.Count, $"{x} -> {y}", Ptr(x), Stride(x), Ptr(y), Stride(y), x.N, x.C, x.Plane,
            Ptr(p.Weight), Ptr(p.Bias), training ? Ptr(p.SaveMean) : Ptr(p.RunningMean), training ? Ptr(p.SaveInvStd) : Ptr(p.RunningVar),
            training ? 0 : 1, o.Eps, o.Relu ? 1 : 0);

    public void BatchNormBackward(in Tensor x, in Tensor y, in Tensor dy, in Tensor dx, bool accumulate, in BatchNormTensors p, BatchNormOptions o)
    {
        ShapeChecks.Same("batch_norm_bwd", x, dy);
        ShapeChecks.Same("batch_norm_bwd", x, dx);
        ulong dgamma = Ptr(p.Weight.Grad), dbeta = Ptr(p.Bias.Grad);
        var (chunks, chunk) = ChannelChunks(x.C, (long)x.N * x.Plane);
        ulong parts = chunks > 1 ? Partials((long)x.C * chunks * 2 * 2) : 0;
        Launch("batch_norm_bwd_reduce", (uint)x.C, (uint)chunks, 1, Threads, $"{x}", Ptr(x), Stride(x), Ptr(y), Stride(y), Ptr(dy), Stride(dy),
            x.N, x.C, x.Plane, chunk, Ptr(p.SaveMean), Ptr(p.SaveInvStd), dgamma, dbeta, o.Relu ? 1 : 0, parts);
        if (chunks > 1)
            Launch1D("batch_norm_finish_bwd", x.C, $"{x}", parts, chunks, x.C, Ptr(p.SaveInvStd), dgamma, dbeta);
        Launch1D("batch_norm_bwd_data", x.Count, $"{x}", Ptr(x), Stride(x), Ptr(y), Stride(y), Ptr(dy), Stride(dy), Ptr(dx), Stride(dx),
            x.N, x.C, x.Plane, Ptr(p.Weight), Ptr(p.SaveMean), Ptr(p.SaveInvStd), dgamma, dbeta, o.Relu ? 1 : 0, accumulate ? 1 : 0);
    }
}

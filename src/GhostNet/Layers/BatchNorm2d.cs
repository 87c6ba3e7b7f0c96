using GhostNet.Backends;
using GhostNet.Graph;

namespace GhostNet.Layers;

/// <summary>
/// nn.BatchNorm2d (eps 1e-5, momentum 0.1) with an optional fused activation (timm's
/// BatchNormAct2d: ReLU, MobileNetV3's hard-swish, or none). The output may be a
/// channel window of a wider buffer (the Ghost module's concat). Training mode normalises with
/// the batch statistics and updates the running ones; eval mode uses the running ones.
/// </summary>
public sealed class BatchNorm2d : ILayer
{
    public BatchNorm2d(PlanBuilder pb, string name, Tensor x, Activation activation, Tensor? output = null)
    {
        X = x;
        int c = x.C;
        Weight = pb.Constant(name + ".weight", c, 1f);
        Bias = pb.Constant(name + ".bias", c, 0f);
        RunningMean = pb.Stat(name + ".running_mean", c, 0f);
        RunningVar = pb.Stat(name + ".running_var", c, 1f);
        NumBatchesTracked = pb.Counter(name + ".num_batches_tracked");
        Output = output ?? pb.Activation(c, x.H, x.W);
        Output.RequireShape(name, x.N, c, x.H, x.W);
        SaveMean = pb.Vector(c);
        SaveInvStd = pb.Vector(c);
        Options = new BatchNormOptions(Activation: activation);
        pb.Record(name, activation == Activation.None ? "batch norm" : $"batch norm + {activation.Name()}", Output, 2L * c, 0);
    }

    public Tensor X { get; }
    public Tensor Output { get; }
    public Parameter Weight { get; }
    public Parameter Bias { get; }
    public StatBuffer RunningMean { get; }
    public StatBuffer RunningVar { get; }
    public Counter NumBatchesTracked { get; }
    public BatchNormOptions Options { get; }
    private Tensor SaveMean { get; }
    private Tensor SaveInvStd { get; }

    private BatchNormTensors Tensors => new(Weight.Value, Bias.Value, RunningMean.Value, RunningVar.Value, SaveMean, SaveInvStd);

    public void Forward(IBackend b, bool training)
    {
        if (training)
        {
            b.BatchNormTrainForward(X, Output, Tensors, Options);
            NumBatchesTracked.Value++;
        }
        else b.BatchNormEvalForward(X, Output, Tensors, Options);
    }

    /// <summary>
    /// The training forward together with the depthwise or pointwise conv that writes X, as one
    /// backend call that may compute the statistics inside the conv (<see cref="ConvBn"/>). With
    /// <paramref name="deferApply"/> (pointwise only) the output may be left unwritten until the
    /// depthwise conv that reads it (<see cref="TrainForwardAfter(IBackend, Conv2d, NormalizedInput, ResidualSum?)"/>) writes it.
    /// With <paramref name="sum"/> (pointwise only) the sum is written in place of the output. With
    /// <paramref name="gated"/> (pointwise only, not with a sum) the conv's input is squeeze-excite's
    /// output, which need not be written (<see cref="GatedInput"/>).
    /// </summary>
    public void TrainForwardAfter(IBackend b, Conv2d conv, bool deferApply = false, ResidualSum? sum = null, GatedInput? gated = null)
    {
        if (gated is { } g)
        {
            if (conv.Kind != Conv2d.Form.Pointwise || sum is not null || !g.Y.StartsAt(conv.X))
                throw new ArgumentException($"only a pointwise conv without a sum reads a gated input, and it must read {conv.X}", nameof(gated));
            b.PointwiseConvBatchNormForward(g, conv.Weight.Value, X, Output, Tensors, Options, deferApply);
        }
        else if (conv.Kind == Conv2d.Form.Depthwise && !deferApply && sum is null)
            b.DepthwiseConvBatchNormForward(conv.X, conv.Weight.Value, X, conv.Geometry, Output, Tensors, Options);
        else if (conv.Kind == Conv2d.Form.Pointwise)
            b.PointwiseConvBatchNormForward(conv.X, conv.Weight.Value, X, Output, Tensors, Options, deferApply, sum);
        else throw new ArgumentException($"{conv.Kind} convs run their batch norm's forward apart{(deferApply ? " and cannot defer it" : sum is null ? "" : " and cannot sum it")}", nameof(conv));
        NumBatchesTracked.Value++;
    }

    /// <summary>
    /// The training forward together with the depthwise conv that writes X, whose input is
    /// <paramref name="input"/>: another batch norm's output that this call writes too. With
    /// <paramref name="sum"/> the sum of the two outputs' first channels and its addend is written
    /// in place of both (<see cref="ResidualSum.Concat"/>: the Ghost module's concat).
    /// </summary>
    public void TrainForwardAfter(IBackend b, Conv2d conv, NormalizedInput input, ResidualSum? sum = null)
    {
        if (conv.Kind != Conv2d.Form.Depthwise)
            throw new ArgumentException($"only a depthwise conv applies its input's batch norm, not a {conv.Kind} one", nameof(conv));
        if (!input.Y.StartsAt(conv.X))
            throw new ArgumentException($"the conv reads {conv.X}, not the batch norm's output {input.Y}", nameof(input));
        b.DepthwiseConvBatchNormForward(input, conv.Weight.Value, X, conv.Geometry, Output, Tensors, Options, sum);
        NumBatchesTracked.Value++;
    }

    /// <summary>This batch norm's output as the input of a conv that applies it (its statistics computed, its output maybe not written).</summary>
    public NormalizedInput AsInput => new(X, Output, Tensors, Options);

    /// <summary>
    /// The backward together with the depthwise or pointwise conv that writes X (<see cref="ConvBn"/>):
    /// X's gradient may never be written. <paramref name="accumulate"/> is the conv's. With
    /// <paramref name="gradientsReady"/> (pointwise only) this batch norm's parameter gradients
    /// were computed by the depthwise conv that read its output (<see cref="BackwardThrough(IBackend, Conv2d, NormalizedInput)"/>).
    /// </summary>
    public void BackwardThrough(IBackend b, Conv2d conv, bool accumulate, bool gradientsReady = false, GatedInput? gated = null)
    {
        if (gated is { } g)
        {
            if (conv.Kind != Conv2d.Form.Pointwise || !g.Y.StartsAt(conv.X))
                throw new ArgumentException($"only a pointwise conv reads a gated input, and it must read {conv.X}", nameof(gated));
            b.PointwiseConvBatchNormBackward(g, conv.Weight.Value, X, Output.Grad, conv.InputGradient, accumulate, conv.Weight.Grad, Tensors, Options, gradientsReady);
        }
        else if (conv.Kind == Conv2d.Form.Depthwise && !gradientsReady)
            b.DepthwiseConvBatchNormBackward(conv.X, conv.Weight.Value, X, conv.Geometry, Output.Grad, conv.InputGradient, accumulate, conv.Weight.Grad, Tensors, Options);
        else if (conv.Kind == Conv2d.Form.Pointwise)
            b.PointwiseConvBatchNormBackward(conv.X, conv.Weight.Value, X, Output.Grad, conv.InputGradient, accumulate, conv.Weight.Grad, Tensors, Options, gradientsReady);
        else throw new ArgumentException($"{conv.Kind} convs run their batch norm's backward apart{(gradientsReady ? " and reduce it themselves" : "")}", nameof(conv));
    }

    /// <summary>
    /// The backward together with the depthwise conv that writes X, whose input is
    /// <paramref name="input"/>, another batch norm's output: that conv's input gradient is the
    /// last addition to input's output gradient, so this call also computes input's parameter gradients.
    /// </summary>
    public void BackwardThrough(IBackend b, Conv2d conv, NormalizedInput input)
    {
        if (conv.Kind != Conv2d.Form.Depthwise)
            throw new ArgumentException($"only a depthwise conv reduces its input's batch norm, not a {conv.Kind} one", nameof(conv));
        if (!input.Y.StartsAt(conv.X))
            throw new ArgumentException($"the conv reads {conv.X}, not the batch norm's output {input.Y}", nameof(input));
        b.DepthwiseConvBatchNormBackward(input, conv.Weight.Value, X, conv.Geometry, Output.Grad, conv.InputGradient, true, conv.Weight.Grad, Tensors, Options);
    }

    public void Backward(IBackend b, bool accumulate) =>
        b.BatchNormBackward(X, Output.Grad, X.Grad, accumulate, Tensors, Options);
}

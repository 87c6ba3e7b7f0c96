namespace GhostNet.Backends;

/// <summary>
/// One method per kernel family, forward and backward, over tensors in backend memory. The
/// layers above never learn which backend runs them. Conventions:
/// - Weights are contiguous in PyTorch's layout: conv [Cout, Cin/groups, k, k], linear [out, in].
/// - A weight or bias gradient is overwritten (each parameter is used once per step).
/// - An input gradient is overwritten, or added to when <c>accumulate</c> is true, because a
///   tensor read by two consumers (a residual input, the ghost primary half) gets two gradients.
/// - <see cref="Tensor.IsNone"/> for an optional output means "do not compute it".
/// </summary>
public interface IBackend : IDisposable
{
    string Name { get; }

    DeviceBuffer Allocate(long elements);

    /// <summary>Memory of <paramref name="elements"/> elements of <paramref name="type"/>; a backend that holds only fp32 refuses bf16.</summary>
    DeviceBuffer Allocate(long elements, ElementType type) =>
        type == ElementType.Float32 ? Allocate(elements) : throw new NotSupportedException($"{Name} holds fp32 only, not {type.Name()}");

    /// <summary>
    /// How this backend holds activations and their gradients (plans make their activation
    /// storages of it): fp32, or bf16 on CUDA with <c>--precision bf16</c>. Upload and Download
    /// convert to and from float.
    /// </summary>
    ElementType ActivationType => ElementType.Float32;
    void Upload(ReadOnlySpan<float> source, in Tensor destination);
    void Download(in Tensor source, Span<float> destination);
    void UploadInts(ReadOnlySpan<int> source, in Tensor destination);
    void DownloadInts(in Tensor source, Span<int> destination);
    void Fill(in Tensor tensor, float value);
    /// <summary>Waits until all launched work has finished (a no-op on the CPU).</summary>
    void Synchronize();
    /// <summary>A copy of <paramref name="source"/> (a few words: contiguous, at most 4096) the host can read without waiting mid-step.</summary>
    HostReadback CreateReadback(in Tensor source);
    /// <summary>
    /// Host memory <paramref name="destination"/> (contiguous) is uploaded from without the host
    /// waiting. <paramref name="overlapped"/>: the copies may run beside the work queued before them
    /// (CUDA: on a copy stream), each after the work the last <see cref="HostStaging.Consumed"/>
    /// marked; the caller marks it after every read of the destination.
    /// </summary>
    HostStaging CreateStaging(in Tensor destination, bool overlapped = false);

    /// <summary>
    /// ToTensor and Normalize of a batch uploaded as bytes: <paramref name="pixels"/> holds the N
    /// images' HWC RGB bytes one after another (3 H W bytes each, packed four to an element), and
    /// <paramref name="images"/> (N x 3 x H x W, contiguous) gets (v / 255 - mean) / std per
    /// channel, exactly as <see cref="Normalization.Normalize"/> computes it.
    /// </summary>
    void NormalizeImages(in Tensor pixels, in Tensor images, Normalization normalization);

    // Dense convolution, groups = 1 (the stem, and the standard-conv baseline).
    void ConvForward(in Tensor x, in Tensor w, in Tensor y, ConvGeometry g);
    void ConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, ConvGeometry g);

    // Pointwise (1x1, stride 1) convolution: per image a GEMM Y = W X.
    void PointwiseConvForward(in Tensor x, in Tensor w, in Tensor y);
    void PointwiseConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw);

    /// <summary>
    /// A pointwise conv z = conv(x) and the training form of the batch norm that follows it, y =
    /// batch_norm(z): the results of PointwiseConvForward then BatchNormTrainForward, which a
    /// backend may fuse (CUDA: the GEMM's epilogue computes z's statistics from its accumulators;
    /// they agree with the unfused path to rounding). z stays the conv's output, as the backward needs it.
    /// With <paramref name="deferApply"/> y may be left unwritten: the statistics are computed, and
    /// the conv that reads y writes it, from a <see cref="NormalizedInput"/> (the Ghost module's cheap operation).
    /// With <paramref name="sum"/> (not with deferApply), sum.Sum = y + sum.Addend is written and y may
    /// not be (a projecting shortcut's last batch norm and the bottleneck's sum).
    /// </summary>
    void PointwiseConvBatchNormForward(in Tensor x, in Tensor w, in Tensor z, in Tensor y, in BatchNormTensors p, BatchNormOptions o, bool deferApply = false,
        ResidualSum? sum = null);

    /// <summary>
    /// <see cref="PointwiseConvBatchNormForward(in Tensor, in Tensor, in Tensor, in Tensor, in BatchNormTensors, BatchNormOptions, bool, ResidualSum?)"/>
    /// on x.Y = x.X * x.Gate (squeeze-excite's output): the same results as ChannelScale into x.Y,
    /// then that call, which a backend may fuse (CUDA: the GEMM scales x.X as it loads it, and x.Y
    /// is not written).
    /// </summary>
    void PointwiseConvBatchNormForward(in GatedInput x, in Tensor w, in Tensor z, in Tensor y, in BatchNormTensors p, BatchNormOptions o, bool deferApply = false);

    /// <summary>
    /// Whether the <see cref="GatedInput"/> pair above scales its input in the conv now (CUDA's
    /// fp32 GEMMs with their batch norms fused): a layer passes squeeze-excite's output as a
    /// GatedInput only then, and otherwise writes it and passes it plainly (the calls would
    /// compute the same, with the scale's launch made twice).
    /// </summary>
    bool FusesGatedInput { get; }

    /// <summary>
    /// The backward of a pointwise conv z = conv(x) and the training form of the batch norm that
    /// follows it: from y's gradient dy, the batch norm's parameter gradients, then the conv's input
    /// (unless none) and weight gradients. The same results as BatchNormBackward into z's gradient
    /// then PointwiseConvBackward from it, which a backend may fuse (CUDA: the conv's GEMMs compute
    /// z's gradient where they load it, and never write it). With <paramref name="bnGradientsReady"/>
    /// the batch norm's parameter gradients are already in p (the backward of the depthwise conv
    /// that read y computed them: the Ghost module's cheap operation), and need not be reduced again.
    /// </summary>
    void PointwiseConvBatchNormBackward(in Tensor x, in Tensor w, in Tensor z, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o,
        bool bnGradientsReady = false);

    /// <summary>
    /// The backward of the pair on x.Y = x.X * x.Gate (as above): dx is x.Y's gradient. The same
    /// results as that backward on x.Y, which a backend may fuse (CUDA: the weight gradient's GEMM
    /// scales x.X as it loads it; x.Y is not read).
    /// </summary>
    void PointwiseConvBatchNormBackward(in GatedInput x, in Tensor w, in Tensor z, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o,
        bool bnGradientsReady = false);

    // Depthwise convolution (groups = channels, one filter per channel).
    void DepthwiseConvForward(in Tensor x, in Tensor w, in Tensor y, ConvGeometry g);
    void DepthwiseConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, ConvGeometry g);

    /// <summary>
    /// A depthwise conv z = conv(x) and the training form of the batch norm that follows it,
    /// y = batch_norm(z): the same results as DepthwiseConvForward then BatchNormTrainForward, which
    /// a backend may fuse (CUDA: the conv's kernel also sums z's statistics, so z is read once
    /// less). z stays the conv's output, as the backward needs it.
    /// </summary>
    void DepthwiseConvBatchNormForward(in Tensor x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor y, in BatchNormTensors p, BatchNormOptions o);

    /// <summary>
    /// <see cref="DepthwiseConvBatchNormForward(in Tensor, in Tensor, in Tensor, ConvGeometry, in Tensor, in BatchNormTensors, BatchNormOptions)"/>
    /// on x.Y, the output of another batch norm whose statistics are computed but whose output may
    /// not be written yet: this call writes x.Y as well. The same results as that batch norm's
    /// apply, then the conv and its batch norm, which a backend may fuse (CUDA, at stride 1 with
    /// same padding: the conv's kernel applies x's batch norm to each tap it reads and writes x.Y
    /// from the centre taps, so x.Y is not read back).
    /// With <paramref name="sum"/>, y must follow x.Y in one buffer (the Ghost module's concat):
    /// sum.Sum = the first sum.Sum.C channels of x.Y and y (<see cref="ResidualSum.Concat"/>) +
    /// sum.Addend is written, and y may not be (x.Y is: the backward reads it; the last Ghost
    /// module of a bottleneck with an identity shortcut, and the bottleneck's sum).
    /// </summary>
    void DepthwiseConvBatchNormForward(in NormalizedInput x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor y, in BatchNormTensors p, BatchNormOptions o,
        ResidualSum? sum = null);

    /// <summary>
    /// The backward of <see cref="DepthwiseConvBatchNormForward"/>: from y's gradient dy, the batch
    /// norm's parameter gradients, then the conv's input (unless none) and weight gradients. The
    /// same results as BatchNormBackward into z's gradient then DepthwiseConvBackward from it,
    /// which a backend may fuse (CUDA: the conv's kernels compute z's gradient where they read it,
    /// and never write it).
    /// </summary>
    void DepthwiseConvBatchNormBackward(in Tensor x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o);

    /// <summary>
    /// The backward of the depthwise pair on x.Y (as above), where dx, x.Y's gradient, is complete
    /// once this call has written or added to it: then the parameter gradients of x's batch norm
    /// from it, as BatchNormBackward would reduce them (into x.Tensors' Weight.Grad and Bias.Grad).
    /// A backend may fuse (CUDA: the data-gradient kernel sums them as it writes dx, so dx is not
    /// read back). dx is required.
    /// </summary>
    void DepthwiseConvBatchNormBackward(in NormalizedInput x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o);

    // Batch norm over (N, H, W) per channel, optionally followed by ReLU.
    void BatchNormTrainForward(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o);
    void BatchNormEvalForward(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o);
    /// <summary>
    /// Backward of the training form. A fused ReLU's mask is recomputed from x and the saved
    /// statistics exactly as the forward computed y, so y is not needed (one pass less).
    /// </summary>
    void BatchNormBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate, in BatchNormTensors p, BatchNormOptions o);

    // Elementwise.
    void Add(in Tensor a, in Tensor b, in Tensor y);
    /// <summary>dst = src, or dst += src: the gradient of an identity shortcut.</summary>
    void CopyOrAccumulate(in Tensor src, in Tensor dst, bool accumulate);
    void Relu(in Tensor x, in Tensor y);
    void ReluBackward(in Tensor y, in Tensor dy, in Tensor dx, bool accumulate);
    /// <summary>relu6(x + 3) / 6, the gate of timm's GhostNet squeeze-excite.</summary>
    void HardSigmoid(in Tensor x, in Tensor y);
    void HardSigmoidBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate);
    /// <summary>
    /// clamp(x, 0, 1), the gate of the seed's ghost_net squeeze-excite; NaN stays NaN. Its gradient
    /// passes dy where 0 &lt;= x &lt;= 1 (PyTorch's clamp_backward, ends included), NaN at a NaN x.
    /// </summary>
    void Clamp01(in Tensor x, in Tensor y);
    void Clamp01Backward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate);
    /// <summary>
    /// x relu6(x + 3) / 6, MobileNetV3's hard-swish (PyTorch's hardswish); NaN stays NaN. Its
    /// gradient, from x: 0 below -3, dy (x / 3 + 1/2) on [-3, 3], dy above; NaN at a NaN x.
    /// </summary>
    void HardSwish(in Tensor x, in Tensor y);
    void HardSwishBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate);
    /// <summary>y[n, c, :, :] = x[n, c, :, :] * s[n, c].</summary>
    void ChannelScale(in Tensor x, in Tensor s, in Tensor y);
    /// <summary>ds = the gate's gradient; dx (+)= dy * s, unless dx is none (squeeze-excite adds it later, with its pool's: <see cref="ChannelScaleAndPoolBackward"/>).</summary>
    void ChannelScaleBackward(in Tensor x, in Tensor s, in Tensor dy, in Tensor dx, bool accumulate, in Tensor ds);
    /// <summary>
    /// The input gradient of squeeze-excite, y = x * s with s a function of avgpool(x), through both
    /// paths once the pooled input's gradient dPooled (N x C x 1 x 1) is known: dx (+)= dy * s +
    /// dPooled / P over each plane. The same as ChannelScaleBackward's dx then GlobalAvgPoolBackward
    /// accumulating, which a backend may fuse (CUDA: one pass over dx).
    /// </summary>
    void ChannelScaleAndPoolBackward(in Tensor s, in Tensor dy, in Tensor dPooled, in Tensor dx, bool accumulate);

    // Global average pool to N x C x 1 x 1.
    void GlobalAvgPool(in Tensor x, in Tensor y);
    void GlobalAvgPoolBackward(in Tensor dy, in Tensor dx, bool accumulate);

    /// <summary>
    /// nn.MaxPool2d(k, stride, padding): each output the largest input of its window (padding is no
    /// candidate). The window's first largest in row-major order takes the gradient, as in
    /// PyTorch, and a NaN wins (the last NaN of a window), so NaN propagates. The backward
    /// recomputes each window's choice from x instead of storing indices.
    /// </summary>
    void MaxPool(in Tensor x, in Tensor y, ConvGeometry g);
    void MaxPoolBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate, ConvGeometry g);

    // Fully connected: y[N, out] = x[N, in] W^T + b (b optional). x and y are N x K x 1 x 1.
    void LinearForward(in Tensor x, in Tensor w, in Tensor b, in Tensor y);
    /// <summary>
    /// LinearForward, then <paramref name="activated"/> = activation(y) (Relu or HardSigmoid; with
    /// None, LinearForward alone and activated is not written); y stays the linear output, as the
    /// activation's backward may need it. A backend may fuse (CUDA:
    /// the GEMM's epilogue writes both).
    /// </summary>
    void LinearForward(in Tensor x, in Tensor w, in Tensor b, in Tensor y, Activation activation, in Tensor activated);
    void LinearBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in Tensor db);
    /// <summary>
    /// The backward of LinearForward with an activation, from the gradient of y.Activated: first
    /// y.Y's gradient (y.Y.Grad, written) through the activation (Relu or HardSigmoid; with None,
    /// Activated is Y and nothing is written), then LinearBackward from it. A backend may fuse (CUDA: the bias gradient's column sums compute
    /// y.Y's gradient as they sum it, and write it for the GEMMs).
    /// </summary>
    void LinearBackward(in Tensor x, in Tensor w, in ActivatedOutput y, in Tensor dx, bool accumulate, in Tensor dw, in Tensor db);

    /// <summary>
    /// Inverted dropout whose mask is a pure function of (seed, element index), so backward
    /// recomputes it and every backend draws the same mask.
    /// </summary>
    void DropoutForward(in Tensor x, in Tensor y, float p, DropoutSeed seed);
    void DropoutBackward(in Tensor dy, in Tensor dx, bool accumulate, float p, DropoutSeed seed);

    /// <summary>
    /// Per-sample cross-entropy with label smoothing into <paramref name="losses"/> (N x 1 x 1 x 1),
    /// and, unless <paramref name="dlogits"/> is none, the gradient of the batch mean loss.
    /// </summary>
    void SoftmaxCrossEntropy(in Tensor logits, in Tensor labels, in Tensor losses, in Tensor dlogits, float labelSmoothing);

    /// <summary>
    /// Rank of the true class per sample (0 = top-1); ties go to the lower index. A row holding a
    /// NaN logit, or a label outside [0, K), gets rank int.MaxValue: never top-k correct for any k,
    /// even when K &lt; k.
    /// </summary>
    void TopKRank(in Tensor logits, in Tensor labels, in Tensor ranks);

    /// <summary>
    /// What the host reads of a batch, in the 4 words of <paramref name="totals"/> (1 x 4 x 1 x 1,
    /// 8-byte aligned): the sum of <paramref name="losses"/> as a double (words 0-1; a NaN or
    /// infinite loss makes it non-finite), and the samples of rank &lt; 1 and &lt; 5 (words 2, 3):
    /// see <see cref="BatchTotals"/>.
    /// </summary>
    void SumBatch(in Tensor losses, in Tensor ranks, in Tensor totals);

    /// <summary>SGD over a contiguous run of parameters with its gradients and momentum buffers.</summary>
    void SgdStep(in Tensor param, in Tensor grad, in Tensor momentum, SgdHyper h);
}

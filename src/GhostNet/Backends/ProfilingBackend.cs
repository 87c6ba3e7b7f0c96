using System.Diagnostics;

namespace GhostNet.Backends;

/// <summary>
/// Wraps a backend and times every call per op family (<see cref="OpFamily"/>; synchronising the device around each, so
/// the times are the kernels', at the cost of overlap): where a training step's time goes.
/// Disposes the inner backend only when it was handed over (<paramref name="ownsInner"/>).
/// </summary>
public sealed class ProfilingBackend(IBackend inner, bool ownsInner = true) : IBackend
{
    private readonly Dictionary<string, (long Calls, double Seconds)> _times = [];

    public IBackend Inner => inner;
    public string Name => inner.Name + " (profiled)";
    public bool FusesGatedInput => inner.FusesGatedInput;

    public IReadOnlyDictionary<string, (long Calls, double Seconds)> Times => _times;

    public void Reset() => _times.Clear();

    private long Begin()
    {
        inner.Synchronize();
        return Stopwatch.GetTimestamp();
    }

    private void End(string op, long start)
    {
        inner.Synchronize();
        double s = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var (calls, seconds) = _times.GetValueOrDefault(op);
        _times[op] = (calls + 1, seconds + s);
    }

    public DeviceBuffer Allocate(long elements) => inner.Allocate(elements);
    public DeviceBuffer Allocate(long elements, ElementType type) => inner.Allocate(elements, type);
    public ElementType ActivationType => inner.ActivationType;
    public void Upload(ReadOnlySpan<float> source, in Tensor destination) { var t = Begin(); inner.Upload(source, destination); End(OpFamily.Upload, t); }
    public void Download(in Tensor source, Span<float> destination) { var t = Begin(); inner.Download(source, destination); End(OpFamily.Download, t); }
    public void UploadInts(ReadOnlySpan<int> source, in Tensor destination) { var t = Begin(); inner.UploadInts(source, destination); End(OpFamily.Upload, t); }
    public void DownloadInts(in Tensor source, Span<int> destination) { var t = Begin(); inner.DownloadInts(source, destination); End(OpFamily.Download, t); }
    public void Fill(in Tensor tensor, float value) { var t = Begin(); inner.Fill(tensor, value); End(OpFamily.Fill, t); }
    public void Synchronize() => inner.Synchronize();
    public HostReadback CreateReadback(in Tensor source) => new ProfiledReadback(this, inner.CreateReadback(source));
    public HostStaging CreateStaging(in Tensor destination, bool overlapped = false) => new ProfiledStaging(this, inner.CreateStaging(destination, overlapped));

    /// <summary>Times the queued copy as a download (synchronised around it, as every call here is).</summary>
    private sealed class ProfiledReadback(ProfilingBackend profiler, HostReadback read) : HostReadback
    {
        public override Tensor Source => read.Source;
        protected override void Queue()
        {
            var t = profiler.Begin();
            read.Start();
            profiler.End(OpFamily.Download, t);
        }
        protected override ReadOnlySpan<int> Land() => read.Wait();
        public override void Dispose() => read.Dispose();
    }

    /// <summary>Times the queued copy as an upload.</summary>
    private sealed class ProfiledStaging(ProfilingBackend profiler, HostStaging staging) : HostStaging
    {
        public override Tensor Destination => staging.Destination;
        public override Span<byte> Write() => staging.Write();
        public override void Start()
        {
            var t = profiler.Begin();
            staging.Start();
            profiler.End(OpFamily.Upload, t);
        }
        public override void Consumed() => staging.Consumed();
        public override void Dispose() => staging.Dispose();
    }

    public void ConvForward(in Tensor x, in Tensor w, in Tensor y, ConvGeometry g) { var t = Begin(); inner.ConvForward(x, w, y, g); End(OpFamily.DenseConvForward, t); }
    public void ConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, ConvGeometry g) { var t = Begin(); inner.ConvBackward(x, w, dy, dx, accumulate, dw, g); End(OpFamily.DenseConvBackward, t); }
    public void PointwiseConvForward(in Tensor x, in Tensor w, in Tensor y) { var t = Begin(); inner.PointwiseConvForward(x, w, y); End(OpFamily.PointwiseConvForward, t); }
    public void PointwiseConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw) { var t = Begin(); inner.PointwiseConvBackward(x, w, dy, dx, accumulate, dw); End(OpFamily.PointwiseConvBackward, t); }
    // Timed as a whole under the pointwise families, where CudaBackend records their launches too.
    public void PointwiseConvBatchNormForward(in Tensor x, in Tensor w, in Tensor z, in Tensor y, in BatchNormTensors p, BatchNormOptions o, bool deferApply = false, ResidualSum? sum = null) { var t = Begin(); inner.PointwiseConvBatchNormForward(x, w, z, y, p, o, deferApply, sum); End(OpFamily.PointwiseConvForward, t); }
    public void PointwiseConvBatchNormBackward(in Tensor x, in Tensor w, in Tensor z, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o, bool bnGradientsReady = false) { var t = Begin(); inner.PointwiseConvBatchNormBackward(x, w, z, dy, dx, accumulate, dw, p, o, bnGradientsReady); End(OpFamily.PointwiseConvBackward, t); }
    public void PointwiseConvBatchNormForward(in GatedInput x, in Tensor w, in Tensor z, in Tensor y, in BatchNormTensors p, BatchNormOptions o, bool deferApply = false) { var t = Begin(); inner.PointwiseConvBatchNormForward(x, w, z, y, p, o, deferApply); End(OpFamily.PointwiseConvForward, t); }
    public void PointwiseConvBatchNormBackward(in GatedInput x, in Tensor w, in Tensor z, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o, bool bnGradientsReady = false) { var t = Begin(); inner.PointwiseConvBatchNormBackward(x, w, z, dy, dx, accumulate, dw, p, o, bnGradientsReady); End(OpFamily.PointwiseConvBackward, t); }
    public void DepthwiseConvForward(in Tensor x, in Tensor w, in Tensor y, ConvGeometry g) { var t = Begin(); inner.DepthwiseConvForward(x, w, y, g); End(OpFamily.DepthwiseConvForward, t); }
    public void DepthwiseConvBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, ConvGeometry g) { var t = Begin(); inner.DepthwiseConvBackward(x, w, dy, dx, accumulate, dw, g); End(OpFamily.DepthwiseConvBackward, t); }
    // Timed as a whole under the depthwise families, where CudaBackend records their launches too.
    public void DepthwiseConvBatchNormForward(in Tensor x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor y, in BatchNormTensors p, BatchNormOptions o) { var t = Begin(); inner.DepthwiseConvBatchNormForward(x, w, z, g, y, p, o); End(OpFamily.DepthwiseConvForward, t); }
    public void DepthwiseConvBatchNormForward(in NormalizedInput x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor y, in BatchNormTensors p, BatchNormOptions o, ResidualSum? sum = null) { var t = Begin(); inner.DepthwiseConvBatchNormForward(x, w, z, g, y, p, o, sum); End(OpFamily.DepthwiseConvForward, t); }
    public void DepthwiseConvBatchNormBackward(in Tensor x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o) { var t = Begin(); inner.DepthwiseConvBatchNormBackward(x, w, z, g, dy, dx, accumulate, dw, p, o); End(OpFamily.DepthwiseConvBackward, t); }
    public void DepthwiseConvBatchNormBackward(in NormalizedInput x, in Tensor w, in Tensor z, ConvGeometry g, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in BatchNormTensors p, BatchNormOptions o) { var t = Begin(); inner.DepthwiseConvBatchNormBackward(x, w, z, g, dy, dx, accumulate, dw, p, o); End(OpFamily.DepthwiseConvBackward, t); }
    public void BatchNormTrainForward(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o) { var t = Begin(); inner.BatchNormTrainForward(x, y, p, o); End(OpFamily.BatchNormForward, t); }
    public void BatchNormEvalForward(in Tensor x, in Tensor y, in BatchNormTensors p, BatchNormOptions o) { var t = Begin(); inner.BatchNormEvalForward(x, y, p, o); End(OpFamily.BatchNormForward, t); }
    public void BatchNormBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate, in BatchNormTensors p, BatchNormOptions o) { var t = Begin(); inner.BatchNormBackward(x, dy, dx, accumulate, p, o); End(OpFamily.BatchNormBackward, t); }
    public void Add(in Tensor a, in Tensor b, in Tensor y) { var t = Begin(); inner.Add(a, b, y); End(OpFamily.Elementwise, t); }
    public void CopyOrAccumulate(in Tensor src, in Tensor dst, bool accumulate) { var t = Begin(); inner.CopyOrAccumulate(src, dst, accumulate); End(OpFamily.Elementwise, t); }
    public void Relu(in Tensor x, in Tensor y) { var t = Begin(); inner.Relu(x, y); End(OpFamily.Elementwise, t); }
    public void ReluBackward(in Tensor y, in Tensor dy, in Tensor dx, bool accumulate) { var t = Begin(); inner.ReluBackward(y, dy, dx, accumulate); End(OpFamily.Elementwise, t); }
    public void HardSigmoid(in Tensor x, in Tensor y) { var t = Begin(); inner.HardSigmoid(x, y); End(OpFamily.SqueezeExcite, t); }
    public void HardSigmoidBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate) { var t = Begin(); inner.HardSigmoidBackward(x, dy, dx, accumulate); End(OpFamily.SqueezeExcite, t); }
    public void Clamp01(in Tensor x, in Tensor y) { var t = Begin(); inner.Clamp01(x, y); End(OpFamily.SqueezeExcite, t); }
    public void Clamp01Backward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate) { var t = Begin(); inner.Clamp01Backward(x, dy, dx, accumulate); End(OpFamily.SqueezeExcite, t); }
    public void HardSwish(in Tensor x, in Tensor y) { var t = Begin(); inner.HardSwish(x, y); End(OpFamily.Elementwise, t); }
    public void HardSwishBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate) { var t = Begin(); inner.HardSwishBackward(x, dy, dx, accumulate); End(OpFamily.Elementwise, t); }
    public void ChannelScale(in Tensor x, in Tensor s, in Tensor y) { var t = Begin(); inner.ChannelScale(x, s, y); End(OpFamily.SqueezeExcite, t); }
    public void ChannelScaleAndPoolBackward(in Tensor s, in Tensor dy, in Tensor dPooled, in Tensor dx, bool accumulate) { var t = Begin(); inner.ChannelScaleAndPoolBackward(s, dy, dPooled, dx, accumulate); End(OpFamily.SqueezeExcite, t); }
    public void ChannelScaleBackward(in Tensor x, in Tensor s, in Tensor dy, in Tensor dx, bool accumulate, in Tensor ds) { var t = Begin(); inner.ChannelScaleBackward(x, s, dy, dx, accumulate, ds); End(OpFamily.SqueezeExcite, t); }
    public void GlobalAvgPool(in Tensor x, in Tensor y) { var t = Begin(); inner.GlobalAvgPool(x, y); End(OpFamily.Pooling, t); }
    public void GlobalAvgPoolBackward(in Tensor dy, in Tensor dx, bool accumulate) { var t = Begin(); inner.GlobalAvgPoolBackward(dy, dx, accumulate); End(OpFamily.Pooling, t); }
    public void MaxPool(in Tensor x, in Tensor y, ConvGeometry g) { var t = Begin(); inner.MaxPool(x, y, g); End(OpFamily.Pooling, t); }
    public void MaxPoolBackward(in Tensor x, in Tensor dy, in Tensor dx, bool accumulate, ConvGeometry g) { var t = Begin(); inner.MaxPoolBackward(x, dy, dx, accumulate, g); End(OpFamily.Pooling, t); }
    public void LinearForward(in Tensor x, in Tensor w, in Tensor b, in Tensor y) { var t = Begin(); inner.LinearForward(x, w, b, y); End(OpFamily.Linear, t); }
    public void LinearForward(in Tensor x, in Tensor w, in Tensor b, in Tensor y, Activation activation, in Tensor activated) { var t = Begin(); inner.LinearForward(x, w, b, y, activation, activated); End(OpFamily.Linear, t); }
    public void LinearBackward(in Tensor x, in Tensor w, in Tensor dy, in Tensor dx, bool accumulate, in Tensor dw, in Tensor db) { var t = Begin(); inner.LinearBackward(x, w, dy, dx, accumulate, dw, db); End(OpFamily.Linear, t); }
    public void LinearBackward(in Tensor x, in Tensor w, in ActivatedOutput y, in Tensor dx, bool accumulate, in Tensor dw, in Tensor db) { var t = Begin(); inner.LinearBackward(x, w, y, dx, accumulate, dw, db); End(OpFamily.Linear, t); }
    public void DropoutForward(in Tensor x, in Tensor y, float p, DropoutSeed seed) { var t = Begin(); inner.DropoutForward(x, y, p, seed); End(OpFamily.Head, t); }
    public void DropoutBackward(in Tensor dy, in Tensor dx, bool accumulate, float p, DropoutSeed seed) { var t = Begin(); inner.DropoutBackward(dy, dx, accumulate, p, seed); End(OpFamily.Head, t); }
    public void SoftmaxCrossEntropy(in Tensor logits, in Tensor labels, in Tensor losses, in Tensor dlogits, float labelSmoothing) { var t = Begin(); inner.SoftmaxCrossEntropy(logits, labels, losses, dlogits, labelSmoothing); End(OpFamily.Head, t); }
    public void TopKRank(in Tensor logits, in Tensor labels, in Tensor ranks) { var t = Begin(); inner.TopKRank(logits, labels, ranks); End(OpFamily.Head, t); }
    public void SumBatch(in Tensor losses, in Tensor ranks, in Tensor totals) { var t = Begin(); inner.SumBatch(losses, ranks, totals); End(OpFamily.Head, t); }
    public void NormalizeImages(in Tensor pixels, in Tensor images, Normalization normalization) { var t = Begin(); inner.NormalizeImages(pixels, images, normalization); End(OpFamily.Input, t); }
    public void SgdStep(in Tensor param, in Tensor grad, in Tensor momentum, SgdHyper h) { var t = Begin(); inner.SgdStep(param, grad, momentum, h); End(OpFamily.Sgd, t); }

    public void Dispose()
    {
        if (ownsInner) inner.Dispose();
    }
}

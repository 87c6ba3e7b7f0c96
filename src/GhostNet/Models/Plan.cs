using GhostNet.Backends;
using GhostNet.Graph;
using GhostNet.Training;

namespace GhostNet.Models;

/// <summary>
/// A <see cref="GhostNetModel"/> compiled for one batch shape: every activation, its gradient, the
/// input, labels, per-sample losses and ranks are allocated once here. Forward runs the layers in
/// order, backward in reverse; neither allocates, so a training step touches no managed memory
/// (and, on a GPU, could be captured as one graph).
/// </summary>
public sealed class Plan : IDisposable
{
    private readonly GhostNetModel _model;
    private readonly Network _network;
    private readonly Storage _input, _pixelBytes, _statistics, _small;
    private readonly Tensor _labels, _losses, _ranks, _stepValues, _totals;
    private readonly HostReadback?[] _totalsReads = new HostReadback?[2]; // a step's read lands while the next step's is queued
    private int _reads;
    private readonly StagedUpload?[] _uploads = new StagedUpload?[4]; // images, labels, step values, pixels: no upload makes the host wait
    private readonly Tensor _pixels, _nextPixels; // pixel batches land in each in turn, the next one's copy beside the step on the other
    private readonly float[] _hostLosses;
    private readonly int[] _hostRanks;
    private readonly ulong _dropoutSeed;

    internal Plan(GhostNetModel model, int batch, int height, int width, bool withGradients)
    {
        if (batch < 1 || height < 1 || width < 1) throw new ArgumentOutOfRangeException(nameof(batch), $"bad plan shape {batch}x{height}x{width}");
        _model = model;
        var config = model.Config;
        Batch = batch;
        Height = height;
        Width = width;
        HasGradients = withGradients;
        var activations = model.Backend.ActivationType;
        _input = new Storage("input", 0, activations);
        Input = new Tensor(_input, _input.Reserve((long)batch * config.InChannels * height * width), batch, config.InChannels, height, width);
        long pixelWords = ((long)batch * config.InChannels * height * width + 3) / 4; // the batch's bytes, four to an element
        _pixelBytes = new Storage("pixels");
        _pixels = new Tensor(_pixelBytes, _pixelBytes.Reserve(pixelWords), 1, 1, 1, checked((int)pixelWords));
        _nextPixels = new Tensor(_pixelBytes, _pixelBytes.Reserve(pixelWords), 1, 1, 1, checked((int)pixelWords));
        var pb = new PlanBuilder(model.Parameters, batch, withGradients, activations);
        _network = config.Build(pb, Input);
        Activations = pb.Activations;
        _statistics = pb.Statistics;
        _small = new Storage("step_labels_losses_ranks");
        // First, at the buffer's aligned start (the seed is a u64): [seed low, seed high, learning rate, unused].
        _stepValues = new Tensor(_small, _small.Reserve(4), 1, 4, 1, 1);
        _network.SetDropoutSeedAt(_stepValues.Channels(0, 2));
        _labels = new Tensor(_small, _small.Reserve(batch), batch, 1, 1, 1);
        _losses = new Tensor(_small, _small.Reserve(batch), batch, 1, 1, 1);
        _ranks = new Tensor(_small, _small.Reserve(batch), batch, 1, 1, 1);
        _totals = new Tensor(_small, _small.Reserve(BatchTotals.Words), 1, BatchTotals.Words, 1, 1); // an aligned start, as its double needs
        _hostLosses = new float[batch];
        _hostRanks = new int[batch];
        _dropoutSeed = CounterRng.Mix((ulong)model.Seed, 0x6a09e667f3bcc908UL);
        try
        {
            _input.Bind(model.Backend);
            _pixelBytes.Bind(model.Backend);
            Activations.Bind(model.Backend);
            _statistics.Bind(model.Backend);
            _small.Bind(model.Backend);
            for (int i = 0; i < _totalsReads.Length; i++) _totalsReads[i] = model.Backend.CreateReadback(_totals);
            _uploads[0] = new StagedUpload(model.Backend, Input);
            _uploads[1] = new StagedUpload(model.Backend, _labels);
            _uploads[2] = new StagedUpload(model.Backend, _stepValues);
            _uploads[3] = new StagedUpload(model.Backend, _pixels, _nextPixels);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int Batch { get; }
    public int Height { get; }
    public int Width { get; }
    public bool HasGradients { get; }
    public Tensor Input { get; }
    public Tensor Logits => _network.Logits;

    /// <summary>
    /// The learning rate's place in the backend's memory, which <see cref="BeginTrainingStep"/>
    /// writes: a captured step's update reads it there (<see cref="SgdHyper.LearningRateAt"/>).
    /// </summary>
    public Tensor LearningRate => _stepValues.Channels(2, 1);

    /// <summary>The training step of this plan's latest trainer, captured once warm (disposed with the plan).</summary>
    internal ReplayedCalls? TrainingStep
    {
        get => _trainingStep;
        set
        {
            if (ReferenceEquals(value, _trainingStep)) return;
            _trainingStep?.Dispose();
            _trainingStep = value;
        }
    }

    private ReplayedCalls? _trainingStep, _evalForward;

    /// <summary>
    /// Whether an eval-mode forward (<see cref="Forward"/> with training false) is captured as one
    /// graph on its second call and replayed from then on, where the backend can capture (CUDA).
    /// Replayed and call-by-call forwards compute the same bits; the replay makes no host wait.
    /// </summary>
    public bool CaptureForward
    {
        get => EvalForward.Enabled;
        set => EvalForward.Enabled = value;
    }

    /// <summary>Why eval forwards run call by call on a backend that captures (the capture failed), or null.</summary>
    public string? ForwardNotCapturedBecause => _evalForward?.NotCapturedBecause;

    /// <summary>The launches a replayed eval forward makes, or 0 while it is not captured.</summary>
    public int ForwardGraphLaunches => _evalForward?.Launches ?? 0;

    /// <summary>Told once why eval forwards run call by call (set it before the first forward and before <see cref="CaptureForward"/>).</summary>
    public Action<string>? Note { get; set; }

    private ReplayedCalls EvalForward => _evalForward ??= new ReplayedCalls(Backend, State, () => ForwardCalls(training: false), "eval forwards", Note);

    internal ParameterSet State => _model.Parameters;
    public Storage Activations { get; }

    /// <summary>The saved batch statistics of every batch norm (fp32 whatever the activations are): the rest of a forward's state.</summary>
    public Storage Statistics => _statistics;
    public IBackend Backend => _model.Backend;
    /// <summary>Training forwards run so far; it also numbers the dropout masks.</summary>
    public long Step { get; set; }
    /// <summary>The loss's label smoothing; changing it drops the graphs made, whose launches hold it.</summary>
    public float LabelSmoothing
    {
        get => _labelSmoothing;
        set
        {
            if (value == _labelSmoothing) return;
            _labelSmoothing = value;
            _trainingStep?.Drop();
            _evalForward?.Drop();
        }
    }

    private float _labelSmoothing;

    /// <summary>
    /// Copies a batch of images (N x C x H x W, contiguous) and labels to the backend, through
    /// page-locked stagings on CUDA: the copies are queued behind the work launched so far and the
    /// host does not wait for them (the spans may be reused once this returns).
    /// </summary>
    public void SetBatch(ReadOnlySpan<float> images, ReadOnlySpan<int> labels)
    {
        CheckLabels(labels);
        if (images.Length != Input.Count) throw new ArgumentException($"{images.Length} image values for a batch of {Input}");
        _uploads[0]!.Upload(images);
        _uploads[1]!.Upload(labels);
    }

    /// <summary>
    /// A batch as the loader makes it: N images of H x W RGB bytes (HWC, one after another), sent
    /// up as they are (a quarter of the bytes of floats) and turned into the input on the backend
    /// by ToTensor and Normalize (<see cref="IBackend.NormalizeImages"/>), with the same bits as on the CPU.
    /// </summary>
    public void SetBatch(ReadOnlySpan<byte> pixels, ReadOnlySpan<int> labels, Normalization normalization)
    {
        CheckLabels(labels);
        if (pixels.Length != Input.Count) throw new ArgumentException($"{pixels.Length} pixel bytes for a batch of {Input} (HWC RGB bytes, one image after another)");
        var landed = _uploads[3]!.Upload(pixels);
        _uploads[1]!.Upload(labels);
        Backend.NormalizeImages(landed, Input, normalization);
        _uploads[3]!.Consumed(); // the next copy into these bytes waits for this read alone
    }

    /// <summary>
    /// The input made from pixel bytes already in the backend's memory (HWC RGB, one image after
    /// another: a host application's device buffer, <c>CudaBackend.Borrow</c>), normalised where
    /// they are, with no copy; the labels stay as they are (an inference plan's are zeros). The
    /// launch is queued behind the work on the backend's stream, so the application orders its
    /// writes of the pixels with that stream.
    /// </summary>
    public void SetInput(in Tensor pixels, Normalization normalization) => Backend.NormalizeImages(pixels, Input, normalization);

    /// <summary>A host batch of either kind: pixels with their normalisation, or float images.</summary>
    public void SetBatch(in HostBatch batch)
    {
        if (batch.Normalization is { } normalization) SetBatch(batch.Pixels.Span, batch.Labels.Span, normalization);
        else SetBatch(batch.Images.Span, batch.Labels.Span);
    }

    private void CheckLabels(ReadOnlySpan<int> labels)
    {
        if (labels.Length != Batch) throw new ArgumentException($"{labels.Length} labels for a batch of {Batch}");
        int classes = _model.Config.NumClasses;
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)classes)
                throw new ArgumentOutOfRangeException(nameof(labels), $"label {labels[i]} of sample {i} is outside 0..{classes - 1}");
    }

    /// <summary>
    /// Forward pass and the loss. In training mode batch norms use batch statistics, dropout is
    /// active and the loss gradient is left in the logits' gradient for <see cref="Backward"/>.
    /// </summary>
    public void Forward(bool training)
    {
        if (training)
        {
            BeginTrainingStep(_learningRate);
            ForwardCalls(training);
        }
        else EvalForward.Run();
    }

    private float _learningRate;

    /// <summary>
    /// Writes what changes from one training step to the next besides the batch into the
    /// backend's memory, where the step's calls read it (and a captured step replays with it): the
    /// dropout seed of step <see cref="Step"/>, which it then counts, and the learning rate.
    /// </summary>
    public void BeginTrainingStep(float learningRate)
    {
        if (!HasGradients) throw new InvalidOperationException("this plan was compiled without gradients; it can only evaluate");
        ulong seed = CounterRng.Mix(_dropoutSeed, (ulong)Step++);
        _learningRate = learningRate;
        Span<int> values = [(int)(uint)seed, (int)(uint)(seed >> 32), BitConverter.SingleToInt32Bits(learningRate), 0];
        _uploads[2]!.Upload<int>(values);
    }

    /// <summary>The forward and loss launches alone: a training one reads its seed from the step's values.</summary>
    internal void ForwardCalls(bool training)
    {
        if (training && !HasGradients) throw new InvalidOperationException("this plan was compiled without gradients; it can only evaluate");
        _network.Forward(Backend, training);
        Backend.SoftmaxCrossEntropy(Logits, _labels, _losses, training ? Logits.Grad : default, LabelSmoothing);
    }

    public void Backward() => _network.Backward(Backend);

    /// <summary>Mean loss of the last forward.</summary>
    public float Loss()
    {
        Backend.Download(_losses, _hostLosses);
        double sum = 0;
        foreach (float l in _hostLosses) sum += l;
        return (float)(sum / Batch);
    }

    /// <summary>
    /// Samples whose label is the top-1, and among the top-5, logits of the last forward. A row
    /// with a NaN logit has rank int.MaxValue (IBackend.TopKRank), so it is never counted.
    /// </summary>
    public (int Top1, int Top5) CountCorrect()
    {
        RankLabels();
        return CountRanked();
    }

    /// <summary>The top-k ranks of the labels among the logits (launched, not read).</summary>
    internal void RankLabels() => Backend.TopKRank(Logits, _labels, _ranks);

    /// <summary>
    /// The loss sum and top-1/top-5 counts of the last forward (launched and read at once: a
    /// trainer reads them one step late, <see cref="StartReadingTotals"/>).
    /// </summary>
    public BatchTotals Totals()
    {
        RankLabels();
        SumTotals();
        return ReadTotals(StartReadingTotals());
    }

    /// <summary>Sums the losses and the ranks <see cref="RankLabels"/> computed into the totals (launched, not read).</summary>
    internal void SumTotals() => Backend.SumBatch(_losses, _ranks, _totals);

    /// <summary>Queues the copy of the totals as the launches so far leave them; returns the slot <see cref="ReadTotals"/> reads.</summary>
    internal int StartReadingTotals()
    {
        int slot = _reads++ & 1;
        _totalsReads[slot]!.Start();
        return slot;
    }

    /// <summary>The totals a <see cref="StartReadingTotals"/> queued, once they have landed (the host waits for them here, and only here).</summary>
    internal BatchTotals ReadTotals(int slot) => BatchTotals.Read(_totalsReads[slot]!.Wait());

    /// <summary>Reads the ranks <see cref="RankLabels"/> computed and counts them as <see cref="CountCorrect"/> does.</summary>
    internal (int Top1, int Top5) CountRanked()
    {
        Backend.DownloadInts(_ranks, _hostRanks);
        int top1 = 0, top5 = 0;
        foreach (int r in _hostRanks)
        {
            if (r < 1) top1++;
            if (r < 5) top5++;
        }
        return (top1, top5);
    }

    public void Dispose()
    {
        TrainingStep = null;
        _evalForward?.Dispose();
        foreach (var read in _totalsReads) read?.Dispose();
        foreach (var upload in _uploads) upload?.Dispose();
        _input.Release();
        _pixelBytes.Release();
        Activations.Release();
        _statistics.Release();
        _small.Release();
    }
}

using GhostNet.Backends;
using GhostNet.Graph;

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
    private readonly GhostNetwork _network;
    private readonly Storage _input, _small;
    private readonly Tensor _labels, _losses, _ranks, _stepValues;
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
        _input = new Storage("input");
        Input = new Tensor(_input, _input.Reserve((long)batch * config.InChannels * height * width), batch, config.InChannels, height, width);
        var pb = new PlanBuilder(model.Parameters, batch, withGradients);
        _network = new GhostNetwork(pb, config, Input);
        Activations = pb.Activations;
        _small = new Storage("step_labels_losses_ranks");
        // First, at the buffer's aligned start (the seed is a u64): [seed low, seed high, learning rate, unused].
        _stepValues = new Tensor(_small, _small.Reserve(4), 1, 4, 1, 1);
        _network.SetDropoutSeedAt(_stepValues.Channels(0, 2));
        _labels = new Tensor(_small, _small.Reserve(batch), batch, 1, 1, 1);
        _losses = new Tensor(_small, _small.Reserve(batch), batch, 1, 1, 1);
        _ranks = new Tensor(_small, _small.Reserve(batch), batch, 1, 1, 1);
        _hostLosses = new float[batch];
        _hostRanks = new int[batch];
        _dropoutSeed = CounterRng.Mix((ulong)model.Seed, 0x6a09e667f3bcc908UL);
        try
        {
            _input.Bind(model.Backend);
            Activations.Bind(model.Backend);
            _small.Bind(model.Backend);
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

    /// <summary>The captured training step of this plan, when its trainer made one (disposed with the plan).</summary>
    internal CapturedStep? CapturedStep { get; set; }

    internal ParameterSet State => _model.Parameters;
    public Storage Activations { get; }
    public IBackend Backend => _model.Backend;
    /// <summary>Training forwards run so far; it also numbers the dropout masks.</summary>
    public long Step { get; set; }
    public float LabelSmoothing { get; set; }

    /// <summary>Copies a batch of images (N x C x H x W, contiguous) and labels to the backend.</summary>
    public void SetBatch(ReadOnlySpan<float> images, ReadOnlySpan<int> labels)
    {
        if (labels.Length != Batch) throw new ArgumentException($"{labels.Length} labels for a batch of {Batch}");
        int classes = _model.Config.NumClasses;
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)classes)
                throw new ArgumentOutOfRangeException(nameof(labels), $"label {labels[i]} of sample {i} is outside 0..{classes - 1}");
        Backend.Upload(images, Input);
        Backend.UploadInts(labels, _labels);
    }

    /// <summary>
    /// Forward pass and the loss. In training mode batch norms use batch statistics, dropout is
    /// active and the loss gradient is left in the logits' gradient for <see cref="Backward"/>.
    /// </summary>
    public void Forward(bool training)
    {
        if (training) BeginTrainingStep(_learningRate);
        ForwardCalls(training);
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
        Backend.UploadInts(values, _stepValues);
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
        CapturedStep?.Dispose();
        CapturedStep = null;
        _input.Release();
        Activations.Release();
        _small.Release();
    }
}

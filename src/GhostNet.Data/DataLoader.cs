using System.Diagnostics;
using GhostNet.Data.Transforms;

namespace GhostNet.Data;

/// <summary>The loader's settings, PyTorch DataLoader's in spirit.</summary>
public sealed record DataLoaderOptions(int BatchSize, bool Shuffle = true, bool DropLast = true, int Workers = 0, int Prefetch = 0, int Seed = 0)
{
    /// <summary>Stop at the first bad sample instead of skipping it with a warning.</summary>
    public bool StrictBadSamples { get; init; }
    /// <summary>Where skipped-sample warnings go (one line per file); null for stderr.</summary>
    public TextWriter? Warnings { get; init; }
}

/// <summary>One batch in a buffer the loader owns; it is valid until the enumerator moves on.</summary>
public sealed class Batch(int capacity, int imageSize)
{
    public float[] Images { get; } = new float[(long)capacity * imageSize];
    public int[] Labels { get; } = new int[capacity];
    public int Count { get; internal set; }
    public int Index { get; internal set; }
    public ReadOnlySpan<float> ImageSpan => Images.AsSpan(0, Count * (Images.Length / Labels.Length));
    public ReadOnlySpan<int> LabelSpan => Labels.AsSpan(0, Count);
}

/// <summary>
/// Batches of transformed images, prepared by worker threads ahead of the consumer. The epoch's
/// order is a seeded shuffle; every sample's augmentation draws from a generator seeded by
/// (seed, epoch, position), so the batches are the same whatever the thread timing. Batches go
/// into a ring of preallocated buffers (no per-batch allocation). A sample that fails to decode is
/// reported once and replaced by the next readable sample (deterministically), or stops the
/// epoch when <see cref="DataLoaderOptions.StrictBadSamples"/> is set.
/// </summary>
public sealed class DataLoader
{
    private readonly IImageDataset _dataset;
    private readonly IImageTransform _transform;
    private readonly Batch[] _slots;
    private readonly HashSet<int> _reported = [];
    private long _skipped;

    public DataLoader(IImageDataset dataset, IImageTransform transform, DataLoaderOptions options)
    {
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), "batch size must be positive");
        if (dataset.Count == 0) throw new ArgumentException("the data set is empty");
        _dataset = dataset;
        _transform = transform;
        Options = options;
        Workers = options.Workers > 0 ? options.Workers : Environment.ProcessorCount;
        int prefetch = options.Prefetch > 0 ? options.Prefetch : 2 * Workers;
        ImageSize = 3 * transform.Size * transform.Size;
        _slots = Enumerable.Range(0, prefetch).Select(_ => new Batch(options.BatchSize, ImageSize)).ToArray();
    }

    public DataLoaderOptions Options { get; }
    public int Workers { get; }
    public int ImageSize { get; }
    public IImageDataset Dataset => _dataset;
    public int BatchesPerEpoch => Options.DropLast ? _dataset.Count / Options.BatchSize : (_dataset.Count + Options.BatchSize - 1) / Options.BatchSize;
    /// <summary>Samples replaced because they could not be read, over the loader's life.</summary>
    public long SkippedSamples => Interlocked.Read(ref _skipped);
    /// <summary>Seconds the consumer has waited for batches in the current (or last) epoch, updated every batch.</summary>
    public double WaitSeconds { get; private set; }
    /// <summary>Images delivered per second over the last finished epoch.</summary>
    public double LastImagesPerSecond { get; private set; }

    /// <summary>The sample order of an epoch (a seeded Fisher-Yates shuffle, or 0..n-1).</summary>
    public int[] Order(int epoch)
    {
        var order = Enumerable.Range(0, _dataset.Count).ToArray();
        if (Options.Shuffle) new Random(Mix(Options.Seed, epoch, -1)).Shuffle(order);
        return order;
    }

    public IEnumerable<Batch> Epoch(int epoch, CancellationToken cancel = default)
    {
        var order = Order(epoch);
        int batches = BatchesPerEpoch, ring = _slots.Length;
        var state = new EpochState(ring);
        var clock = Stopwatch.StartNew();
        WaitSeconds = 0;
        long images = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var threads = Enumerable.Range(0, Math.Min(Workers, batches)).Select(w => new Thread(() => Work(epoch, order, batches, state, stop.Token))
        {
            IsBackground = true,
            Name = $"ghostnet-loader-{w}",
        }).ToArray();
        foreach (var t in threads) t.Start();
        try
        {
            for (int b = 0; b < batches; b++)
            {
                cancel.ThrowIfCancellationRequested();
                var wait = Stopwatch.StartNew();
                state.WaitReady(b, b % ring, cancel);
                WaitSeconds += wait.Elapsed.TotalSeconds;
                var slot = _slots[b % ring];
                images += slot.Count;
                yield return slot;
                state.Release(b, b % ring);
            }
        }
        finally
        {
            stop.Cancel();
            state.Abort();
            foreach (var t in threads) t.Join();
            LastImagesPerSecond = images / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        }
    }

    private void Work(int epoch, int[] order, int batches, EpochState state, CancellationToken cancel)
    {
        try
        {
            while (true)
            {
                int b = state.NextBatch();
                if (b >= batches || cancel.IsCancellationRequested) return;
                int slotIndex = b % _slots.Length;
                if (!state.WaitFree(b, slotIndex, cancel)) return;
                Fill(_slots[slotIndex], epoch, order, b);
                state.MarkReady(b, slotIndex);
            }
        }
        catch (Exception e)
        {
            state.Fail(e);
        }
    }

    private void Fill(Batch slot, int epoch, int[] order, int b)
    {
        int start = b * Options.BatchSize, count = Math.Min(Options.BatchSize, order.Length - start);
        slot.Index = b;
        slot.Count = count;
        for (int i = 0; i < count; i++)
        {
            int position = start + i;
            var rng = new Random(Mix(Options.Seed, epoch, position));
            int index = order[position];
            for (int attempt = 0; ; attempt++)
            {
                try
                {
                    using var image = _dataset.Load(index);
                    _transform.Apply(image, rng, slot.Images.AsSpan(i * ImageSize, ImageSize));
                    slot.Labels[i] = _dataset.Label(index);
                    break;
                }
                catch (BadSampleException e) when (!Options.StrictBadSamples && attempt < _dataset.Count)
                {
                    Report(index, e);
                    index = (index + 1) % _dataset.Count;
                }
            }
        }
    }

    private void Report(int index, BadSampleException e)
    {
        lock (_reported)
        {
            if (!_reported.Add(index)) return;
            Interlocked.Increment(ref _skipped);
            (Options.Warnings ?? Console.Error).WriteLine($"warning: image skipped: {e.Message}");
        }
    }

    /// <summary>A seed for (seed, epoch, position): SplitMix64 of the three, folded to 31 bits.</summary>
    internal static int Mix(int seed, int epoch, long position)
    {
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)epoch * 0xC2B2AE3D27D4EB4FUL ^ (ulong)position * 0x165667B19E3779F9UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & 0x7FFFFFFF);
    }

    /// <summary>Hand-over between workers and the consumer: slot s holds batch b when b % ring == s.</summary>
    private sealed class EpochState(int ring)
    {
        private readonly object _gate = new();
        private readonly int[] _turn = Enumerable.Range(0, ring).ToArray(); // the batch each slot may take next
        private readonly int[] _ready = Enumerable.Repeat(-1, ring).ToArray();
        private int _next = -1;
        private bool _aborted;
        private Exception? _error;

        public int NextBatch() => Interlocked.Increment(ref _next);

        public bool WaitFree(int b, int slot, CancellationToken cancel)
        {
            lock (_gate)
            {
                while (_turn[slot] != b && !_aborted && !cancel.IsCancellationRequested) Monitor.Wait(_gate, 100);
                return !_aborted && !cancel.IsCancellationRequested;
            }
        }

        public void MarkReady(int b, int slot)
        {
            lock (_gate)
            {
                _ready[slot] = b;
                Monitor.PulseAll(_gate);
            }
        }

        public void WaitReady(int b, int slot, CancellationToken cancel)
        {
            lock (_gate)
            {
                while (_ready[slot] != b)
                {
                    if (_error is not null) throw new InvalidOperationException($"the data loader failed: {_error.Message}", _error);
                    cancel.ThrowIfCancellationRequested();
                    Monitor.Wait(_gate, 100);
                }
            }
        }

        public void Release(int b, int slot)
        {
            lock (_gate)
            {
                _turn[slot] = b + ring;
                Monitor.PulseAll(_gate);
            }
        }

        public void Fail(Exception e)
        {
            lock (_gate)
            {
                _error ??= e;
                Monitor.PulseAll(_gate);
            }
        }

        public void Abort()
        {
            lock (_gate)
            {
                _aborted = true;
                Monitor.PulseAll(_gate);
            }
        }
    }
}

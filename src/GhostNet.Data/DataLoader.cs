using System.Diagnostics;
using GhostNet.Backends;
using GhostNet.Data.Transforms;

namespace GhostNet.Data;

/// <summary>
/// Batches of transformed images, prepared by worker threads ahead of the consumer. The epoch's
/// order is a seeded shuffle; every sample's augmentation draws from a generator seeded by
/// (seed, epoch, position), so the batches are the same whatever the thread timing. Batches go
/// into a ring of preallocated buffers (<see cref="LoaderBuffers"/>; no per-batch allocation).
/// A sample that fails to decode is reported once and then, by <see cref="DataLoaderOptions.BadSamples"/>,
/// replaced by the next readable sample in data-set order, left out of its batch, or thrown.
/// When no sample can be read the epoch throws <see cref="InvalidDataException"/>.
/// </summary>
public sealed class DataLoader
{
    private readonly IImageDataset _dataset;
    private readonly IImageTransform _transform;
    private readonly Batch[] _slots;
    private readonly BadSampleLedger _ledger;

    public DataLoader(IImageDataset dataset, IImageTransform transform, DataLoaderOptions options)
    {
        Buffers = LoaderBuffers.Plan(options, transform.Size);
        if (dataset.Count == 0) throw new ArgumentException("the data set is empty");
        _dataset = dataset;
        _transform = transform;
        // Under Fail the bad sample ends the epoch with its own error: a "skipped" warning would be untrue.
        _ledger = new BadSampleLedger(options.BadSamples == BadSamplePolicy.Fail ? TextWriter.Null : options.Warnings);
        Options = options;
        Workers = Buffers.Threads;
        ImageSize = 3 * transform.Size * transform.Size;
        _slots = Enumerable.Range(0, Buffers.Count).Select(_ => new Batch(options.BatchSize, ImageSize)).ToArray();
    }

    /// <summary>The bytes a loader with <paramref name="options"/> allocates for images of 3 x side x side (checked as the constructor checks them).</summary>
    public static long BufferBytes(DataLoaderOptions options, int side) => LoaderBuffers.Plan(options, side).TotalBytes;

    public DataLoaderOptions Options { get; }
    public LoaderBuffers Buffers { get; }
    public int Workers { get; }
    /// <summary>Bytes (and values) of one image: 3 x side x side.</summary>
    public int ImageSize { get; }
    /// <summary>The normalisation the backend applies to the pixels (the transform's).</summary>
    public Normalization Normalization => _transform.Normalization;
    public IImageDataset Dataset => _dataset;
    public int BatchesPerEpoch => Options.DropLast ? _dataset.Count / Options.BatchSize : (_dataset.Count + Options.BatchSize - 1) / Options.BatchSize;
    /// <summary>Distinct samples found unreadable over the loader's life (each reported once).</summary>
    public long SkippedSamples => _ledger.Count;
    /// <summary>Positions of the current (or last) epoch whose sample was unreadable: left out (Skip) or replaced (Replace). Counted as batches are delivered, so it is exact once the epoch is done.</summary>
    public int EpochSkippedSamples { get; private set; }
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
        EpochSkippedSamples = 0;
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
                EpochSkippedSamples += slot.Skipped;
                if (slot.Count > 0) yield return slot; // a batch of bad samples only, left out whole
                state.Release(b, b % ring);
            }
            if (images == 0 && batches > 0) throw NoneReadable();
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
        while (true)
        {
            int b = state.NextBatch();
            if (b >= batches || cancel.IsCancellationRequested) return;
            int slotIndex = b % _slots.Length;
            if (!state.WaitFree(b, slotIndex, cancel)) return;
            try
            {
                Fill(_slots[slotIndex], epoch, order, b, cancel);
                state.MarkReady(b, slotIndex);
            }
            catch (Exception e)
            {
                state.MarkReady(b, slotIndex, e); // the consumer rethrows it when it reaches batch b
                return;
            }
        }
    }

    private void Fill(Batch slot, int epoch, int[] order, int b, CancellationToken cancel)
    {
        int start = b * Options.BatchSize, count = Math.Min(Options.BatchSize, order.Length - start), kept = 0;
        slot.Index = b;
        slot.Skipped = 0;
        for (int i = 0; i < count; i++)
        {
            int position = start + i, index = order[position];
            if (TryLoad(index, epoch, position, slot, kept, out var bad)) { kept++; continue; }
            slot.Skipped++;
            if (Options.BadSamples == BadSamplePolicy.Fail) throw bad;
            if (Options.BadSamples == BadSamplePolicy.Skip) continue;
            for (int step = 1; ; step++)
            {
                cancel.ThrowIfCancellationRequested();
                if (step == _dataset.Count) throw NoneReadable();
                if (TryLoad((index + step) % _dataset.Count, epoch, position, slot, kept, out _)) break;
            }
            kept++;
        }
        slot.Count = kept;
    }

    /// <summary>Loads and transforms one sample into place <paramref name="at"/>, or says why it cannot (a known-bad sample is not decoded again).</summary>
    private bool TryLoad(int index, int epoch, int position, Batch slot, int at, out BadSampleException bad)
    {
        bad = _ledger.Known(index)!;
        if (bad is not null) return false;
        // A fresh generator per attempt: a replacement's augmentation must not depend on whether
        // the bad sample before it was decoded here or already known from another thread.
        var rng = new Random(Mix(Options.Seed, epoch, position));
        try
        {
            using var image = _dataset.Load(index);
            _transform.Apply(image, rng, slot.Pixels.AsSpan(at * ImageSize, ImageSize), _dataset.Describe(index));
            slot.Labels[at] = _dataset.Label(index);
            return true;
        }
        catch (BadSampleException e)
        {
            _ledger.Add(index, e);
            bad = e;
            return false;
        }
    }

    private InvalidDataException NoneReadable()
    {
        string where = _dataset is ImageFolderDataset folder ? $" of {folder.Root}" : "";
        var first = _ledger.First();
        return new InvalidDataException($"every one of the {_dataset.Count} images{where} is unreadable; first: {first?.Message}", first);
    }

    /// <summary>A seed for (seed, epoch, position): SplitMix64 of the three, folded to 31 bits.</summary>
    internal static int Mix(int seed, int epoch, long position)
    {
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)epoch * 0xC2B2AE3D27D4EB4FUL ^ (ulong)position * 0x165667B19E3779F9UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & 0x7FFFFFFF);
    }
}

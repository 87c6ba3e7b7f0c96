namespace GhostNet.Data;

/// <summary>What the loader does with a sample that cannot be read (<see cref="BadSampleException"/>).</summary>
public enum BadSamplePolicy
{
    /// <summary>Put the next readable sample (in data-set order) in its place: batches keep their size, for training.</summary>
    Replace,
    /// <summary>Leave it out: the batch comes out shorter, for evaluation, whose metrics duplicates would skew.</summary>
    Skip,
    /// <summary>Stop: the epoch throws the sample's <see cref="BadSampleException"/>.</summary>
    Fail,
}

/// <summary>The loader's settings, PyTorch DataLoader's in spirit.</summary>
public sealed record DataLoaderOptions(int BatchSize, bool Shuffle = true, bool DropLast = true, int Workers = 0, int Prefetch = 0, int Seed = 0)
{
    /// <summary>2 GiB of batch buffers unless told otherwise.</summary>
    public const long DefaultMaxBufferBytes = 2L << 30;

    public BadSamplePolicy BadSamples { get; init; } = BadSamplePolicy.Replace;

    /// <summary>The older switch: true is <see cref="BadSamplePolicy.Fail"/>; false leaves Replace or Skip as they are.</summary>
    public bool StrictBadSamples
    {
        get => BadSamples == BadSamplePolicy.Fail;
        init => BadSamples = value ? BadSamplePolicy.Fail : BadSamples == BadSamplePolicy.Fail ? BadSamplePolicy.Replace : BadSamples;
    }

    /// <summary>Where skipped-sample warnings go (one line per file); null for stderr.</summary>
    public TextWriter? Warnings { get; init; }

    /// <summary>The most bytes the prefetch buffers may take together; the default prefetch shrinks to fit, an explicit one that does not fit is refused.</summary>
    public long MaxBufferBytes { get; init; } = DefaultMaxBufferBytes;
}

/// <summary>
/// The loader's memory, planned before any of it is allocated: <see cref="Count"/> buffers of
/// <see cref="BytesEach"/> bytes (images as RGB bytes, plus labels) and the worker threads that fill them.
/// </summary>
public sealed record LoaderBuffers(int Count, long BytesEach, int Threads)
{
    public long TotalBytes => Count * BytesEach;

    /// <summary>
    /// Checks <paramref name="options"/> and plans buffers for images of 3 x side x side. Workers 0
    /// means one per core; prefetch 0 means two buffers per worker, as many of those as fit in
    /// <see cref="DataLoaderOptions.MaxBufferBytes"/>. Threads never outnumber buffers: a worker
    /// without a free buffer could only wait. Throws <see cref="ArgumentOutOfRangeException"/>
    /// naming the value that cannot work.
    /// </summary>
    public static LoaderBuffers Plan(DataLoaderOptions options, int side)
    {
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), $"batch size {options.BatchSize}: must be positive");
        if (options.Workers < 0) throw new ArgumentOutOfRangeException(nameof(options), $"workers {options.Workers}: must be 0 (one per core) or positive");
        if (options.Prefetch < 0) throw new ArgumentOutOfRangeException(nameof(options), $"prefetch {options.Prefetch}: must be 0 (two buffers per worker) or positive");
        if (options.MaxBufferBytes < 1) throw new ArgumentOutOfRangeException(nameof(options), $"buffer budget {options.MaxBufferBytes}: must be positive");
        if (side < 1) throw new ArgumentOutOfRangeException(nameof(side), $"image side {side}: must be positive");
        long each = options.BatchSize * (3L * side * side + sizeof(int));
        int workers = options.Workers > 0 ? options.Workers : Environment.ProcessorCount;
        string what = $"a buffer of {options.BatchSize} images of 3x{side}x{side} takes {each:N0} bytes";
        long count;
        if (options.Prefetch > 0)
        {
            count = options.Prefetch;
            if (count * each > options.MaxBufferBytes)
                throw new ArgumentOutOfRangeException(nameof(options),
                    $"prefetch {options.Prefetch}: {what}, {count * each:N0} in all, more than the budget of {options.MaxBufferBytes:N0} bytes");
        }
        else
        {
            count = Math.Min(2L * workers, options.MaxBufferBytes / each);
            if (count < 1) throw new ArgumentOutOfRangeException(nameof(options), $"batch size {options.BatchSize}: {what}, more than the budget of {options.MaxBufferBytes:N0} bytes");
        }
        if (options.BatchSize * 3L * side * side > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(options), $"{what}, more than one array can hold");
        return new LoaderBuffers((int)count, each, (int)Math.Min(workers, count));
    }
}

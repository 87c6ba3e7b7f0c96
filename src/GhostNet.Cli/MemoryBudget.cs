namespace GhostNet.Cli;

/// <summary>
/// Checks the memory a run will allocate against what the machine has free, before anything is
/// allocated: a batch size or an input size that cannot fit is a one-line error naming the
/// options, not an out-of-memory crash minutes later.
/// </summary>
internal static class MemoryBudget
{
    /// <summary>Host memory available to this process: Linux's MemAvailable, else what the GC may use.</summary>
    public static long AvailableHostBytes()
    {
        long gcLimit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes; // honours container limits
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal) &&
                    long.TryParse(line["MemAvailable:".Length..].Trim().Split(' ')[0], out long kb))
                    return Math.Min(kb * 1024, gcLimit);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // not Linux, or no /proc: the GC's figure is the best there is
        }
        return gcLimit;
    }

    /// <summary>What the loader's prefetch buffers may take: the library's 2 GiB, or a quarter of the free memory if that is more.</summary>
    public static long LoaderBudget() => Math.Max(Data.DataLoaderOptions.DefaultMaxBufferBytes, AvailableHostBytes() / 4);

    /// <summary>The loader's buffer bytes for <paramref name="options"/>; a batch no buffer can hold is an error naming the flags.</summary>
    public static long LoaderBytes(Data.DataLoaderOptions options, int size, string flags)
    {
        try
        {
            return Data.DataLoader.BufferBytes(options, size);
        }
        catch (ArgumentException e)
        {
            string message = e.ParamName is { } name ? e.Message.Replace($" (Parameter '{name}')", "") : e.Message;
            throw new ArgumentException($"{flags}: {message}", e);
        }
    }

    /// <summary>Throws when <paramref name="bytes"/> exceed the available host memory.</summary>
    public static void Require(long bytes, string options)
    {
        long available = AvailableHostBytes();
        if (bytes > available)
            throw new ArgumentException($"{options} needs {Format(bytes)} of memory, but {Format(available)} is available; lower them");
    }

    public static string Format(long bytes) => bytes switch
    {
        >= 1L << 40 => $"{bytes / (double)(1L << 40):F1} TiB",
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F1} GiB",
        _ => $"{bytes / (double)(1L << 20):F0} MiB",
    };
}

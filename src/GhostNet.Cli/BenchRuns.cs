using System.Text.Json;
using System.Text.Json.Serialization;
using GhostNet.IO;

namespace GhostNet.Cli;

/// <summary>One timed row of `ghostcuda bench`: a mode (train or inference) at a batch size.</summary>
internal sealed record BenchRow(string Mode, int Batch, double Ms, double ImagesPerSecond, double? HostWaitsPerStep, double? HostMsPerStep);

/// <summary>A `ghostcuda bench --json` run: where it ran, on what, and its rows.</summary>
internal sealed record BenchRun(string Device, float Width, int Size, string Precision, int Steps, int Warmup, IReadOnlyList<BenchRow> Rows)
{
    /// <summary>The registered model that ran (files before issue 14 lack it: GhostNet).</summary>
    public string Arch { get; init; } = "ghostnet_100";
}

/// <summary>A PyTorch baseline row of tools/gpu/pytorch_baseline.py (timm ghostnet_100); Ms is null where the configuration failed.</summary>
internal sealed record TorchRow(string Mode, int Batch, string Dtype, string Layout, bool Compiled, bool CudnnBenchmark, double? Ms, string? Error);

internal sealed record TorchRun(string? Torch, string? Timm, string? Device, IReadOnlyList<TorchRow> Rows);

/// <summary>The GPU check's results.json (tools/gpu/run.sh): our runs and PyTorch's, from one call on one GPU.</summary>
internal sealed record GpuResults(string? Date, string? Commit, string? Device, IReadOnlyList<BenchRun> Ghostcuda, TorchRun? Pytorch);

/// <summary>Reads and writes those files: snake_case JSON, written atomically.</summary>
internal static class BenchRuns
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public static void Write(string path, BenchRun run) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(run, Options) + "\n");

    /// <summary>A results.json, or an error about the file (not a stack trace) when it is not one.</summary>
    public static GpuResults ReadResults(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FileNotFoundException($"{path}: {e.Message}", path, e);
        }
        try
        {
            return JsonSerializer.Deserialize<GpuResults>(text, Options) ?? throw new InvalidDataException($"{path}: empty (null) results");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a GPU check's results.json: {e.Message}", e);
        }
    }
}

using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace GhostNet.Bench;

/// <summary>
/// In-process runs: the project carries libtorch (600 MB) for the comparison, which
/// BenchmarkDotNet's per-job child builds would copy again for every job. One launch, one warm-up,
/// five measured invocations of whole steps (each takes milliseconds to seconds).
/// </summary>
public sealed class InProcessConfig : ManualConfig
{
    public InProcessConfig() =>
        AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithStrategy(RunStrategy.Monitoring)
            .WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(5));
}

using BenchmarkDotNet.Running;
using GhostNet.Bench;

// dotnet run -c Release --project bench/GhostNet.Bench -- --filter '*GhostModule*'
var summaries = BenchmarkSwitcher.FromAssembly(typeof(GhostModuleBenchmarks).Assembly).Run(args);
foreach (var summary in summaries)
    if (summary.BenchmarksCases.Any(b => b.Descriptor.Type == typeof(GhostModuleBenchmarks)))
        GhostReport.Write(summary, Path.Combine(FindRepository(), "bench", "results"));

static string FindRepository()
{
    for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "GhostNet.Cuda.sln"))) return dir.FullName;
    return Directory.GetCurrentDirectory();
}

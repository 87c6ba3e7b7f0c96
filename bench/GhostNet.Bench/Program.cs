using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/GhostNet.Bench -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(GhostNet.Bench.CpuTrainingBenchmarks).Assembly).Run(args);

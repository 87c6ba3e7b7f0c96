using System.CommandLine;
using GhostNet.Cli;
using GhostNet.Cuda;

var root = new RootCommand("ghostcuda: build, train and inspect GhostNet (Han et al., CVPR 2020).");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(Devices.DevicesCommand());
root.Subcommands.Add(BenchCommand.Create());
try
{
    return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (e is ArgumentException or CudaException or InvalidDataException or IOException or NotSupportedException)
{
    // Bad input and unavailable devices get one clear line, not a stack trace.
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

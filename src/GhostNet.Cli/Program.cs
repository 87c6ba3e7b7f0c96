using System.CommandLine;
using GhostNet.Cli;
using GhostNet.Cuda;

var root = new RootCommand("ghostcuda: build, train, evaluate and run GhostNet (Han et al., CVPR 2020).");
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(EvalCommand.Eval());
root.Subcommands.Add(EvalCommand.Predict());
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(Devices.DevicesCommand());
root.Subcommands.Add(BenchCommand.Create());
try
{
    // Ctrl-C is the train command's own business (it saves a checkpoint first), so no forced exit.
    return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
}
catch (Exception e) when (e is ArgumentException or CudaException or InvalidDataException or IOException or NotSupportedException or UnauthorizedAccessException)
{
    // Bad input and unavailable devices get one clear line, not a stack trace.
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

using System.CommandLine;
using GhostNet.Cuda;

namespace GhostNet.Cli;

/// <summary>The ghostcuda command tree and its error policy, callable from tests as from Main.</summary>
internal static class Root
{
    public static RootCommand Create()
    {
        var root = new RootCommand("ghostcuda: build, train, evaluate and run GhostNet (Han et al., CVPR 2020).");
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(EvalCommand.Eval());
        root.Subcommands.Add(EvalCommand.Predict());
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(Devices.DevicesCommand());
        root.Subcommands.Add(BenchCommand.Create());
        return root;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        try
        {
            // Ctrl-C is the train command's own business (it saves a checkpoint first), so no forced exit.
            var config = new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null };
            if (output is not null) config.Output = output;
            if (error is not null) config.Error = error;
            return await Create().Parse(args).InvokeAsync(config);
        }
        catch (Exception e) when (e is ArgumentException or CudaException or InvalidDataException or IOException or NotSupportedException or UnauthorizedAccessException)
        {
            // Bad input and unavailable devices get one clear line, not a stack trace.
            (error ?? Console.Error).WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}

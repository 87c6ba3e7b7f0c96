using System.CommandLine;
using System.Reflection;
using GhostNet.Cuda;

using Spectre.Console;

namespace GhostNet.Cli;

/// <summary>
/// The ghostcuda command tree and its one error path, callable from tests as from Main. Every
/// failure reaches the user as one line: bad input (a flag, a file, a missing device) is
/// "error: ..." with exit 2, anything else is "internal error: ..." with exit 1. The stack trace
/// is printed only with --verbose.
/// </summary>
internal static class Root
{
    public const int BadInput = 2, InternalError = 1;

    /// <summary>Global: print stack traces of failures.</summary>
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Print the stack trace of an error", Recursive = true };

    public static RootCommand Create()
    {
        var root = new RootCommand("ghostcuda: build, train, evaluate and run GhostNet (Han et al., CVPR 2020).");
        root.Options.Add(Verbose);
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(EvalCommand.Eval());
        root.Subcommands.Add(EvalCommand.Predict());
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(ModelsCommand.Create());
        root.Subcommands.Add(Devices.DevicesCommand());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(CompareCommand.Create());
        root.Subcommands.Add(ReportCommand.Create());
        return root;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        error ??= Console.Error;
        if (args.Length == 0) args = ["--help"];
        var parse = Create().Parse(args);
        bool verbose = args.Contains("--verbose");
        if (parse.Errors.Count > 0)
        {
            // System.CommandLine would print every error and the help; one line names the flag.
            error.WriteLine($"error: {parse.Errors[0].Message} (see --help)");
            return BadInput;
        }
        try
        {
            // Signals are the train command's own business (it saves a checkpoint first), so no forced exit.
            var config = new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null };
            if (output is not null) config.Output = output;
            config.Error = error;
            if (output is null) return await parse.InvokeAsync(config);
            // The tables (info, models) go through Spectre's console: to the given writer too.
            var console = AnsiConsole.Console;
            AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors,
            });
            try
            {
                return await parse.InvokeAsync(config);
            }
            finally
            {
                AnsiConsole.Console = console;
            }
        }
        catch (Exception thrown)
        {
            var e = Unwrap(thrown);
            bool bad = IsBadInput(e);
            error.WriteLine(bad ? $"error: {Describe(e)}" : $"internal error: {e.GetType().Name}: {Describe(e)}{(verbose ? "" : " (--verbose prints the stack trace)")}");
            if (verbose) error.WriteLine(e.ToString());
            return bad ? BadInput : InternalError;
        }
    }

    /// <summary>Failures about the user's values, files or machine, as opposed to defects of ghostcuda.</summary>
    private static bool IsBadInput(Exception e) =>
        e is ArgumentException or CudaException or InvalidDataException or IOException or NotSupportedException
            or UnauthorizedAccessException or OutOfMemoryException;

    private static Exception Unwrap(Exception e)
    {
        while (true)
        {
            switch (e)
            {
                case AggregateException { InnerExceptions.Count: 1 } a: e = a.InnerExceptions[0]; continue;
                case TargetInvocationException { InnerException: { } inner }: e = inner; continue;
                case TypeInitializationException { InnerException: { } inner }: e = inner; continue;
                default: return e;
            }
        }
    }

    /// <summary>The message without .NET's "(Parameter 'x')" suffix, which names a C# parameter, not a flag.</summary>
    private static string Describe(Exception e)
    {
        string message = e.Message;
        if (e is OutOfMemoryException) return "out of memory; use a smaller --batch-size, --input-size or --workers";
        if (e is ArgumentException { ParamName: { } name })
        {
            string suffix = $" (Parameter '{name}')";
            int at = message.IndexOf(suffix, StringComparison.Ordinal);
            if (at >= 0) message = message.Remove(at, suffix.Length);
        }
        return message.ReplaceLineEndings(" ").Trim();
    }
}

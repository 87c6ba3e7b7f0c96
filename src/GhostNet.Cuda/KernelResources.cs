using System.Text.RegularExpressions;

namespace GhostNet.Cuda;

/// <summary>
/// What ptxas says one kernel needs per thread: registers (which, times the block size, must fit
/// the SM's 65,536, or the launch fails), and the stack frame and spills that put values in slow
/// local memory. Read from the log of an NVRTC compile with -Xptxas=-v.
/// </summary>
public sealed partial record KernelResources(string Kernel, int Registers, int StackBytes, int SpillStoreBytes, int SpillLoadBytes)
{
    /// <summary>The registers of one SM, shared by the threads of its resident blocks.</summary>
    public const int RegistersPerSm = 65536;

    /// <summary>Parses every "Compiling entry function" block of a ptxas -v log.</summary>
    public static List<KernelResources> Parse(string log)
    {
        var kernels = new List<KernelResources>();
        string? name = null;
        int stack = 0, stores = 0, loads = 0;
        foreach (var line in log.Split('\n'))
        {
            if (EntryPattern().Match(line) is { Success: true } entry) (name, stack, stores, loads) = (entry.Groups[1].Value, 0, 0, 0);
            else if (FramePattern().Match(line) is { Success: true } frame)
                (stack, stores, loads) = (int.Parse(frame.Groups[1].Value), int.Parse(frame.Groups[2].Value), int.Parse(frame.Groups[3].Value));
            else if (RegistersPattern().Match(line) is { Success: true } used && name is not null)
            {
                kernels.Add(new KernelResources(name, int.Parse(used.Groups[1].Value), stack, stores, loads));
                name = null;
            }
        }
        return kernels;
    }

    [GeneratedRegex(@"Compiling entry function '([^']+)'")]
    private static partial Regex EntryPattern();

    [GeneratedRegex(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")]
    private static partial Regex FramePattern();

    [GeneratedRegex(@"Used (\d+) registers")]
    private static partial Regex RegistersPattern();
}

using System.Runtime.InteropServices;

namespace GhostNet.Backends;

/// <summary>
/// A batch's loss sum and top-1/top-5 counts as <see cref="IBackend.SumBatch"/> writes them: the one
/// small read a training step makes.
/// </summary>
public readonly record struct BatchTotals(double LossSum, int Top1, int Top5)
{
    /// <summary>The words <see cref="IBackend.SumBatch"/> writes.</summary>
    public const int Words = 4;

    public static BatchTotals Read(ReadOnlySpan<int> words)
    {
        if (words.Length != Words) throw new ArgumentException($"{words.Length} words of batch totals; they are {Words}");
        return new(MemoryMarshal.Read<double>(MemoryMarshal.AsBytes(words)), words[2], words[3]);
    }
}

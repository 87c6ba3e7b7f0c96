using GhostNet.Cuda.Interop;

namespace GhostNet.Cuda;

/// <summary>A failed CUDA or NVRTC call, with what was being done, the call and the error's name.</summary>
public sealed class CudaException(string message, int result = 0) : Exception(message)
{
    public int Result { get; } = result;
    public bool IsOutOfMemory => Result == 2;

    internal static void Check(int result, string call, string? context = null)
    {
        if (result == Driver.Success) return;
        throw new CudaException($"{call} failed ({CuResultNames.Of(result)}){(context is null ? "" : " " + context)}", result);
    }
}

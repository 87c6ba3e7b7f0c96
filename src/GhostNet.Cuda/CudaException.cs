using GhostNet.Cuda.Interop;

namespace GhostNet.Cuda;

/// <summary>A failed CUDA or NVRTC call, with what was being done, the call and the error's name.</summary>
public sealed class CudaException(string message, int result = 0) : Exception(message)
{
    public int Result { get; } = result;
    public bool IsOutOfMemory => Result == 2;

    /// <summary>Throws unless <paramref name="result"/> is success; the context is only formatted then.</summary>
    internal static void Check(int result, string call, DeferredText context = default)
    {
        if (result == Driver.Success) return;
        throw new CudaException($"{call} failed ({CuResultNames.Of(result)}){(context.IsEmpty ? "" : " " + context.ToString())}", result);
    }
}

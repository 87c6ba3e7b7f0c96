using System.Runtime.InteropServices;

namespace GhostNet.Cuda.Interop;

/// <summary>
/// The CUDA driver API, bound by hand. Functions that changed in the 64-bit API are bound to
/// their _v2 entry points (the unsuffixed exports are the old 32-bit ones). Library-owned
/// strings come back as byte*. CUresult is an int; <see cref="CuResultNames"/> names it.
/// </summary>
internal static unsafe partial class Driver
{
    public const int Success = 0;

    [LibraryImport(NativeLibraries.Driver)] public static partial int cuInit(uint flags);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuDriverGetVersion(out int version);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuGetErrorName(int result, out byte* name);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuGetErrorString(int result, out byte* text);

    [LibraryImport(NativeLibraries.Driver)] public static partial int cuDeviceGetCount(out int count);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDeviceTotalMem_v2")] public static partial int cuDeviceTotalMem(out nuint bytes, int device);

    [LibraryImport(NativeLibraries.Driver)] public static partial int cuDevicePrimaryCtxRetain(out IntPtr context, int device);
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static partial int cuDevicePrimaryCtxRelease(int device);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuCtxSetCurrent(IntPtr context);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuCtxGetCurrent(out IntPtr context);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuCtxSynchronize();
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemGetInfo_v2")] public static partial int cuMemGetInfo(out nuint free, out nuint total);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemAlloc_v2")] public static partial int cuMemAlloc(out ulong pointer, nuint bytes);
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemFree_v2")] public static partial int cuMemFree(ulong pointer);
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemAllocHost_v2")] public static partial int cuMemAllocHost(out IntPtr pointer, nuint bytes);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuMemFreeHost(IntPtr pointer);
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemcpyHtoDAsync_v2")] public static partial int cuMemcpyHtoDAsync(ulong destination, void* source, nuint bytes, IntPtr stream);
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemcpyDtoHAsync_v2")] public static partial int cuMemcpyDtoHAsync(void* destination, ulong source, nuint bytes, IntPtr stream);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuMemsetD32Async(ulong destination, uint value, nuint count, IntPtr stream);

    [LibraryImport(NativeLibraries.Driver)] public static partial int cuStreamCreate(out IntPtr stream, uint flags);
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuStreamDestroy_v2")] public static partial int cuStreamDestroy(IntPtr stream);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuStreamSynchronize(IntPtr stream);

    [LibraryImport(NativeLibraries.Driver)] public static partial int cuEventCreate(out IntPtr evt, uint flags);
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuEventDestroy_v2")] public static partial int cuEventDestroy(IntPtr evt);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuEventRecord(IntPtr evt, IntPtr stream);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuEventSynchronize(IntPtr evt);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuEventQuery(IntPtr evt);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuStreamWaitEvent(IntPtr stream, IntPtr evt, uint flags);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuEventElapsedTime(out float milliseconds, IntPtr start, IntPtr end);

    [LibraryImport(NativeLibraries.Driver)] public static partial int cuModuleLoadData(out IntPtr module, void* image);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuModuleUnload(IntPtr module);
    [LibraryImport(NativeLibraries.Driver, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int cuModuleGetFunction(out IntPtr function, IntPtr module, string name);
    [LibraryImport(NativeLibraries.Driver)]
    public static partial int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedBytes, IntPtr stream, void** parameters, void** extra);

    // Graph capture of a whole training step (CudaGraph): mode 2 is CU_STREAM_CAPTURE_MODE_RELAXED.
    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuStreamBeginCapture_v2")] public static partial int cuStreamBeginCapture(IntPtr stream, int mode);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuStreamEndCapture(IntPtr stream, out IntPtr graph);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuGraphInstantiateWithFlags(out IntPtr exec, IntPtr graph, ulong flags);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuGraphLaunch(IntPtr exec, IntPtr stream);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuGraphExecDestroy(IntPtr exec);
    [LibraryImport(NativeLibraries.Driver)] public static partial int cuGraphDestroy(IntPtr graph);

    public const int AttributeMultiprocessorCount = 16;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;
}

/// <summary>Names of the CUresult values this project meets, for messages that work without a driver.</summary>
internal static class CuResultNames
{
    private static readonly Dictionary<int, string> Known = new()
    {
        [0] = "CUDA_SUCCESS", [1] = "CUDA_ERROR_INVALID_VALUE", [2] = "CUDA_ERROR_OUT_OF_MEMORY", [3] = "CUDA_ERROR_NOT_INITIALIZED",
        [4] = "CUDA_ERROR_DEINITIALIZED", [34] = "CUDA_ERROR_STUB_LIBRARY", [35] = "CUDA_ERROR_INSUFFICIENT_DRIVER",
        [100] = "CUDA_ERROR_NO_DEVICE", [101] = "CUDA_ERROR_INVALID_DEVICE", [200] = "CUDA_ERROR_INVALID_IMAGE",
        [201] = "CUDA_ERROR_INVALID_CONTEXT", [209] = "CUDA_ERROR_NO_BINARY_FOR_GPU", [218] = "CUDA_ERROR_INVALID_PTX",
        [222] = "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", [400] = "CUDA_ERROR_INVALID_HANDLE", [500] = "CUDA_ERROR_NOT_FOUND",
        [700] = "CUDA_ERROR_ILLEGAL_ADDRESS", [701] = "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", [702] = "CUDA_ERROR_LAUNCH_TIMEOUT",
        [716] = "CUDA_ERROR_MISALIGNED_ADDRESS", [719] = "CUDA_ERROR_LAUNCH_FAILED", [801] = "CUDA_ERROR_NOT_SUPPORTED",
        [900] = "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", [901] = "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", [999] = "CUDA_ERROR_UNKNOWN",
    };

    public static string Of(int result) => Known.TryGetValue(result, out var name) ? name : $"CUresult {result}";
}

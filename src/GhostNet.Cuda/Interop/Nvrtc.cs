using System.Runtime.InteropServices;

namespace GhostNet.Cuda.Interop;

/// <summary>NVRTC, bound by hand. Library-owned strings come back as byte*: a string return would make the marshaller free NVRTC's static memory.</summary>
internal static unsafe partial class Nvrtc
{
    public const int Success = 0;

    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcVersion(out int major, out int minor);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetNumSupportedArchs(out int count);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetSupportedArchs(int* archs);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial byte* nvrtcGetErrorString(int result);

    [LibraryImport(NativeLibraries.Nvrtc, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int nvrtcCreateProgram(out IntPtr program, string source, string name, int numHeaders, string[] headers, string[] includeNames);

    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcDestroyProgram(ref IntPtr program);

    [LibraryImport(NativeLibraries.Nvrtc, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int nvrtcCompileProgram(IntPtr program, int numOptions, string[] options);

    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetProgramLogSize(IntPtr program, out nuint size);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetProgramLog(IntPtr program, byte* log);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetPTXSize(IntPtr program, out nuint size);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetPTX(IntPtr program, byte* ptx);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetCUBINSize(IntPtr program, out nuint size);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial int nvrtcGetCUBIN(IntPtr program, byte* cubin);

    public static string ErrorString(int result) => Marshal.PtrToStringUTF8((IntPtr)nvrtcGetErrorString(result)) ?? $"NVRTC error {result}";
}

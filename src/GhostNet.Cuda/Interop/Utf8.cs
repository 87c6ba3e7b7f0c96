using System.Runtime.InteropServices;

namespace GhostNet.Cuda.Interop;

internal static unsafe class Utf8
{
    /// <summary>A NUL-terminated buffer to a string, dropping stray NULs (NVRTC logs can contain one).</summary>
    public static string FromBuffer(ReadOnlySpan<byte> bytes)
    {
        int end = bytes.IndexOf((byte)0);
        var text = System.Text.Encoding.UTF8.GetString(end < 0 ? bytes : bytes[..end]);
        return text.Replace("\0", "").TrimEnd();
    }

    public static string FromPointer(byte* p) => Marshal.PtrToStringUTF8((IntPtr)p) ?? "";
}

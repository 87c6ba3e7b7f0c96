using System.Runtime.InteropServices;

namespace GhostNet.IO;

/// <summary>
/// Every file a run writes goes through here: the bytes go to a temporary file in the same
/// folder, which is flushed to disk and renamed over the target, and then the folder itself is
/// flushed so that the rename survives a power cut. A crash at any moment leaves either the old
/// file or the new one under the real name, never a mixture. Temporary files are named
/// "&lt;name&gt;.&lt;pid&gt;.tmp" so that a later run can tell them apart and remove them.
/// </summary>
public static partial class AtomicFile
{
    public const string TempSuffix = ".tmp";

    /// <summary>Writes <paramref name="path"/> through <paramref name="write"/>, atomically.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(folder);
        string temp = TempPath(full);
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        FlushFolder(folder);
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }

    public static void WriteAllText(string path, string text) => WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>Copies a file to <paramref name="destination"/> atomically (a plain copy can be cut short by a crash).</summary>
    public static void Copy(string source, string destination) => Write(destination, s =>
    {
        using var input = File.OpenRead(source);
        input.CopyTo(s);
    });

    /// <summary>The temporary name used for <paramref name="path"/> by this process.</summary>
    public static string TempPath(string path) => $"{path}.{Environment.ProcessId}{TempSuffix}";

    /// <summary>
    /// Removes the temporary files that an earlier, crashed writer left for the files
    /// <paramref name="names"/> of <paramref name="folder"/> ("name.pid.tmp", and the older
    /// "name.tmp"). Returns their names. A writer that is still running (its pid alive) keeps its
    /// file, and other files are never touched, whatever they are called.
    /// </summary>
    public static List<string> RemoveStale(string folder, IReadOnlyCollection<string> names)
    {
        var removed = new List<string>();
        if (!Directory.Exists(folder)) return removed;
        foreach (var file in Directory.EnumerateFiles(folder, "*" + TempSuffix))
        {
            string stem = Path.GetFileName(file)[..^TempSuffix.Length];
            int dot = stem.LastIndexOf('.');
            int pid = 0;
            bool numbered = dot > 0 && int.TryParse(stem[(dot + 1)..], out pid);
            if (!names.Contains(numbered ? stem[..dot] : stem)) continue; // not a file of ours: not ours to delete
            if (numbered && (pid == Environment.ProcessId || IsAlive(pid))) continue; // ours, or a writer that is still running
            if (TryDelete(file)) removed.Add(Path.GetFileName(file));
        }
        return removed;
    }

    /// <summary>Whether the process that named a temporary file by its pid still runs.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static bool TryDelete(string file)
    {
        try
        {
            File.Delete(file);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>fsync of the folder: makes the rename durable (POSIX; a no-op elsewhere).</summary>
    private static void FlushFolder(string folder)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        try
        {
            int fd = Open(folder, 0 /* O_RDONLY */);
            if (fd < 0) return; // durability is best effort: the rename itself already happened
            try
            {
                _ = FSync(fd);
            }
            finally
            {
                _ = Close(fd);
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // An unusual libc: the file is written and renamed; only the rename's durability is lost.
        }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync")]
    private static partial int FSync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}

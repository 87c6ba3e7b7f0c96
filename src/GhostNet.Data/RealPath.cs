namespace GhostNet.Data;

/// <summary>
/// A path with every symbolic link in it resolved (POSIX realpath), which .NET does not offer:
/// Path.GetFullPath only tidies the text, and ResolveLinkTarget resolves the last component alone.
/// </summary>
internal static class RealPath
{
    private const int MaxLinks = 40; // as Linux's ELOOP limit

    /// <summary>The resolved path, or null when a component is missing or the links loop.</summary>
    public static string? Of(string path)
    {
        int links = 0;
        return Resolve(Path.GetFullPath(path), ref links);
    }

    private static string? Resolve(string full, ref int links)
    {
        string current = Path.GetPathRoot(full) ?? "/";
        foreach (var part in full[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(current, part);
            string? target = new FileInfo(next).LinkTarget; // null when not a link
            if (target is null)
            {
                if (!File.Exists(next) && !Directory.Exists(next)) return null;
                current = next;
                continue;
            }
            if (++links > MaxLinks) return null;
            var resolved = Resolve(Path.GetFullPath(target, current), ref links);
            if (resolved is null) return null;
            current = resolved;
        }
        return current;
    }

    /// <summary>Whether <paramref name="path"/> is <paramref name="folder"/> or lies inside it (both resolved).</summary>
    public static bool IsWithin(string path, string folder) =>
        path == folder || path.StartsWith(folder.EndsWith(Path.DirectorySeparatorChar) ? folder : folder + Path.DirectorySeparatorChar, StringComparison.Ordinal);
}

namespace GhostNet.Data;

/// <summary>
/// The image files under one class folder, walked without trusting symbolic links (torchvision
/// follows them, so a link to the folder itself or to the root yields its images ~40 times over,
/// other classes' under the wrong label). Rules, each broken one costing one warning:
/// a directory link below the class folder is never followed: its target is either outside the
/// class folder or already inside the walk (an ancestor, which loops, or a sibling, which would
/// count files twice). A file link is kept (link farms are how subsets of a data set are made)
/// with its resolved path, so <see cref="ImageFolderDataset"/> can count each real file once; a
/// dangling link is left out. The class folder itself may be a link to a folder outside the
/// root (the class lives elsewhere), not to the root, an ancestor of it or a folder inside it.
/// </summary>
internal sealed class ClassFolderScan(string rootReal, List<string> warnings)
{

    /// <summary>A found image: its path under the root, its resolved path, and whether the path is a link.</summary>
    public readonly record struct Found(string Path, string Real, bool IsLink);

    public List<Found> Scan(string classFolder)
    {
        var found = new List<Found>();
        string? classReal = RealPath.Of(classFolder);
        if (classReal is null) { warnings.Add($"{classFolder}: the class folder cannot be resolved (a dangling link or a loop)"); return found; }
        bool linked = new DirectoryInfo(classFolder).LinkTarget is not null;
        if (linked && RealPath.IsWithin(rootReal, classReal))
            warnings.Add($"{classFolder}: links to {classReal}, the root or a folder above it (a loop); not followed");
        else if (linked && RealPath.IsWithin(classReal, rootReal))
            warnings.Add($"{classFolder}: links to {classReal}, inside the root (its files would count twice); not followed");
        else
            Walk(classFolder, classReal, classReal, found);
        return found.OrderBy(f => f.Path, StringComparer.Ordinal).ToList();
    }

    private void Walk(string folder, string folderReal, string classReal, List<Found> found)
    {
        FileSystemInfo[] entries;
        try
        {
            entries = new DirectoryInfo(folder).GetFileSystemInfos();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            warnings.Add($"{folder}: cannot be listed ({e.Message}); left out");
            return;
        }
        foreach (var entry in entries.OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            bool image = ImageFolderDataset.IsImageFile(entry.Name);
            if (entry.LinkTarget is null)
            {
                if (entry is DirectoryInfo) Walk(entry.FullName, Path.Combine(folderReal, entry.Name), classReal, found);
                else if (image) found.Add(new Found(entry.FullName, Path.Combine(folderReal, entry.Name), false));
                continue;
            }
            string? real = RealPath.Of(entry.FullName);
            if (real is null)
            {
                if (image) warnings.Add($"{entry.FullName}: a dangling link (or a loop of links); left out");
            }
            else if (Directory.Exists(real)) warnings.Add($"{entry.FullName}: a link to the folder {real}, {Why(real, folderReal, classReal)}; not followed");
            else if (image) found.Add(new Found(entry.FullName, real, true));
        }
    }

    private static string Why(string target, string folderReal, string classReal) =>
        RealPath.IsWithin(folderReal, target) ? "which contains the link (a loop)"
        : RealPath.IsWithin(target, classReal) ? "inside the class folder (its files would count twice)"
        : "outside the class folder";
}

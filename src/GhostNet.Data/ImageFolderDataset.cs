using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Data;

/// <summary>
/// torchvision's ImageFolder: root/&lt;class&gt;/&lt;image&gt;, classes sorted by name (ordinal, as
/// Python sorts), files sorted within each class, .jpg/.jpeg/.png (any case). Other files are
/// ignored, as torchvision does. An empty class keeps its label (so labels match a model trained
/// with it) and is reported in <see cref="Warnings"/>. Unlike torchvision, symbolic links are not
/// trusted (<see cref="ClassFolderScan"/>), and every real file counts once: when several paths
/// lead to one file, the path that is not a link keeps it (so a link in another class folder
/// does not take it under the wrong label), else the first in order; the others are warned about.
/// </summary>
public sealed class ImageFolderDataset : IImageDataset
{
    private readonly List<(string Path, int Label)> _samples = [];
    private readonly SafeImageDecoder _decoder;
    private readonly HashSet<string> _realFiles = new(StringComparer.Ordinal);

    public ImageFolderDataset(string root, SafeImageDecoder? decoder = null)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"image folder {root} does not exist");
        _decoder = decoder ?? new SafeImageDecoder();
        Root = root;
        Classes = Directory.GetDirectories(root).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
        if (Classes.Count == 0) throw new InvalidDataException($"{root} has no class folders (expected root/<class>/<image>)");
        var warnings = new List<string>();
        string rootReal = RealPath.Of(root) ?? throw new DirectoryNotFoundException($"image folder {root} cannot be resolved");
        var scan = new ClassFolderScan(rootReal, warnings);
        var found = Enumerable.Range(0, Classes.Count).Select(label => scan.Scan(Path.Combine(root, Classes[label]))).ToList();
        // Who keeps a real file reached by several paths: the one that is not a link, else the first.
        var owner = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in found.SelectMany(files => files).OrderBy(f => f.IsLink))
            owner.TryAdd(f.Real, f.Path);
        for (int label = 0; label < Classes.Count; label++)
        {
            int before = _samples.Count;
            foreach (var f in found[label])
            {
                if (owner[f.Real] == f.Path)
                {
                    _samples.Add((f.Path, label));
                    _realFiles.Add(f.Real);
                }
                else warnings.Add($"{f.Path}: the same file as {owner[f.Real]}, counted once");
            }
            if (_samples.Count == before) warnings.Add($"class '{Classes[label]}' has no .jpg/.jpeg/.png files");
        }
        if (_samples.Count == 0) throw new InvalidDataException($"{root}: no .jpg/.jpeg/.png files in any class folder");
        Warnings = warnings;
    }

    public string Root { get; }
    public int Count => _samples.Count;
    public IReadOnlyList<string> Classes { get; }
    public IReadOnlyList<string> Warnings { get; }
    /// <summary>The resolved path of every sample: two data sets sharing one (through links) share an image.</summary>
    public IReadOnlySet<string> RealFiles => _realFiles;

    private static readonly HashSet<string> Extensions = new(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png" };

    /// <summary>Whether a file name is one of the images an ImageFolder holds (.jpg, .jpeg, .png in any case).</summary>
    public static bool IsImageFile(string name) => Extensions.Contains(Path.GetExtension(name));
    public int Label(int index) => _samples[index].Label;
    public string Describe(int index) => _samples[index].Path;
    public Image<Rgb24> Load(int index) => _decoder.Decode(_samples[index].Path);
}

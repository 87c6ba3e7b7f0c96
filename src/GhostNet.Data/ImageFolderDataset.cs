using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Data;

/// <summary>
/// torchvision's ImageFolder: root/&lt;class&gt;/&lt;image&gt;, classes sorted by name (ordinal, as
/// Python sorts), files sorted within each class, .jpg/.jpeg/.png (any case). Other files are
/// ignored, as torchvision does. An empty class keeps its label (so labels match a model trained
/// with it) and is reported in <see cref="Warnings"/>.
/// </summary>
public sealed class ImageFolderDataset : IImageDataset
{
    private static readonly HashSet<string> Extensions = new(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png" };
    private readonly List<(string Path, int Label)> _samples = [];
    private readonly SafeImageDecoder _decoder;

    public ImageFolderDataset(string root, SafeImageDecoder? decoder = null)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"image folder {root} does not exist");
        _decoder = decoder ?? new SafeImageDecoder();
        Root = root;
        Classes = Directory.GetDirectories(root).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
        if (Classes.Count == 0) throw new InvalidDataException($"{root} has no class folders (expected root/<class>/<image>)");
        var warnings = new List<string>();
        for (int label = 0; label < Classes.Count; label++)
        {
            var files = Directory.EnumerateFiles(Path.Combine(root, Classes[label]), "*", SearchOption.AllDirectories)
                .Where(f => Extensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0) warnings.Add($"class '{Classes[label]}' has no .jpg/.jpeg/.png files");
            _samples.AddRange(files.Select(f => (f, label)));
        }
        if (_samples.Count == 0) throw new InvalidDataException($"{root}: no .jpg/.jpeg/.png files in any class folder");
        Warnings = warnings;
    }

    public string Root { get; }
    public int Count => _samples.Count;
    public IReadOnlyList<string> Classes { get; }
    public IReadOnlyList<string> Warnings { get; }
    public int Label(int index) => _samples[index].Label;
    public string Describe(int index) => _samples[index].Path;
    public Image<Rgb24> Load(int index) => _decoder.Decode(_samples[index].Path);
}

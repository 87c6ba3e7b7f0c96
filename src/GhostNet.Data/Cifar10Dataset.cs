using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Data;

/// <summary>
/// CIFAR-10 in its binary format: data_batch_1..5.bin (train) or test_batch.bin, records of one
/// label byte and 3072 pixel bytes (1024 red, 1024 green, 1024 blue, rows of 32).
/// </summary>
public sealed class Cifar10Dataset : IImageDataset
{
    public const int Side = 32, RecordBytes = 1 + 3 * Side * Side;
    public static readonly IReadOnlyList<string> DefaultClasses =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    private readonly List<(string File, byte[] Bytes)> _files = [];
    private readonly List<(int File, int Record)> _index = [];

    public Cifar10Dataset(string folder, bool train)
    {
        var names = train ? Enumerable.Range(1, 5).Select(i => $"data_batch_{i}.bin") : ["test_batch.bin"];
        foreach (var name in names)
        {
            string path = Path.Combine(folder, name);
            if (!File.Exists(path)) throw new FileNotFoundException($"CIFAR-10 file {path} is missing", path);
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length == 0 || bytes.Length % RecordBytes != 0)
                throw new InvalidDataException($"{path}: {bytes.Length} bytes is not a whole number of {RecordBytes}-byte CIFAR-10 records");
            for (int r = 0; r < bytes.Length / RecordBytes; r++)
            {
                if (bytes[r * RecordBytes] >= 10) throw new InvalidDataException($"{path}: record {r} has label {bytes[r * RecordBytes]}, not 0..9");
                _index.Add((_files.Count, r));
            }
            _files.Add((path, bytes));
        }
        string meta = Path.Combine(folder, "batches.meta.txt");
        Classes = File.Exists(meta) ? File.ReadAllLines(meta).Where(l => l.Trim().Length > 0).Take(10).ToList() : DefaultClasses;
    }

    public int Count => _index.Count;
    public IReadOnlyList<string> Classes { get; }

    public int Label(int index)
    {
        var (f, r) = _index[index];
        return _files[f].Bytes[r * RecordBytes];
    }

    public string Describe(int index) => $"{_files[_index[index].File].File}[{_index[index].Record}]";

    public Image<Rgb24> Load(int index)
    {
        var (f, r) = _index[index];
        var record = _files[f].Bytes.AsMemory(r * RecordBytes + 1, RecordBytes - 1);
        var image = new Image<Rgb24>(Side, Side);
        image.ProcessPixelRows(rows =>
        {
            var planes = record.Span;
            for (int y = 0; y < Side; y++)
            {
                var row = rows.GetRowSpan(y);
                for (int x = 0; x < Side; x++)
                {
                    int p = y * Side + x;
                    row[x] = new Rgb24(planes[p], planes[1024 + p], planes[2048 + p]);
                }
            }
        });
        return image;
    }

    /// <summary>Writes records in the CIFAR-10 binary layout (for tests and demos: no copy of CIFAR-10 is reachable here).</summary>
    public static void WriteBatch(string path, IReadOnlyList<(byte Label, byte[] Chw)> records)
    {
        using var stream = File.Create(path);
        foreach (var (label, chw) in records)
        {
            if (chw.Length != RecordBytes - 1) throw new ArgumentException($"a CIFAR-10 record holds {RecordBytes - 1} pixel bytes, not {chw.Length}");
            stream.WriteByte(label);
            stream.Write(chw);
        }
    }
}

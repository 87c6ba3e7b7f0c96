using System.Buffers.Binary;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Data;

/// <summary>
/// MNIST-format data (IDX: big-endian magic 0x0803 + count, rows, cols for images; 0x0801 + count
/// for labels, then unsigned bytes), as MNIST and Fashion-MNIST ship. Both files are read whole
/// and checked against their headers; a wrong magic or size is an error that names the file.
/// Grey images decode to RGB with the grey value in every channel.
/// </summary>
public sealed class IdxDataset : IImageDataset
{
    private readonly byte[] _pixels, _labels;
    private readonly string _imagesPath;

    public IdxDataset(string imagesPath, string labelsPath, IReadOnlyList<string> classes)
    {
        _imagesPath = imagesPath;
        (_pixels, int count, Rows, Cols) = ReadImages(imagesPath);
        _labels = ReadLabels(labelsPath, count);
        Classes = classes;
        for (int i = 0; i < count; i++)
            if (_labels[i] >= classes.Count) throw new InvalidDataException($"{labelsPath}: label {_labels[i]} of item {i} is outside the {classes.Count} classes");
    }

    public static readonly IReadOnlyList<string> MnistClasses = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    public static readonly IReadOnlyList<string> FashionClasses =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>The standard file names in a folder: split "train" or "t10k".</summary>
    public static IdxDataset FromFolder(string folder, string split, IReadOnlyList<string> classes) =>
        new(Path.Combine(folder, $"{split}-images-idx3-ubyte"), Path.Combine(folder, $"{split}-labels-idx1-ubyte"), classes);

    public int Count => _labels.Length;
    public int Rows { get; }
    public int Cols { get; }
    public IReadOnlyList<string> Classes { get; }
    public int Label(int index) => _labels[index];
    public string Describe(int index) => $"{_imagesPath}[{index}]";

    public ReadOnlySpan<byte> Pixels(int index) => _pixels.AsSpan(index * Rows * Cols, Rows * Cols);

    public Image<Rgb24> Load(int index)
    {
        var image = new Image<Rgb24>(Cols, Rows);
        var pixels = _pixels.AsMemory(index * Rows * Cols, Rows * Cols);
        image.ProcessPixelRows(rows =>
        {
            var grey = pixels.Span;
            for (int y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (int x = 0; x < row.Length; x++) { byte v = grey[y * Cols + x]; row[x] = new Rgb24(v, v, v); }
            }
        });
        return image;
    }

    private static (byte[] Pixels, int Count, int Rows, int Cols) ReadImages(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 16) throw new InvalidDataException($"{path}: {bytes.Length} bytes is too short for an IDX image file");
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(bytes);
        if (magic != 0x803) throw new InvalidDataException($"{path}: magic 0x{magic:X8} is not an IDX image file's 0x00000803");
        int count = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4)), rows = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(8)),
            cols = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(12));
        long expected = 16 + (long)count * rows * cols;
        if (count < 0 || rows <= 0 || cols <= 0 || bytes.Length != expected)
            throw new InvalidDataException($"{path}: header says {count} images of {rows}x{cols} ({expected} bytes), the file has {bytes.Length} bytes");
        return (bytes[16..], count, rows, cols);
    }

    private static byte[] ReadLabels(string path, int expectedCount)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8) throw new InvalidDataException($"{path}: {bytes.Length} bytes is too short for an IDX label file");
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(bytes);
        if (magic != 0x801) throw new InvalidDataException($"{path}: magic 0x{magic:X8} is not an IDX label file's 0x00000801");
        int count = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
        if (count != expectedCount || bytes.Length != 8 + (long)count)
            throw new InvalidDataException($"{path}: header says {count} labels ({8 + (long)count} bytes), the file has {bytes.Length} bytes and the images number {expectedCount}");
        return bytes[8..];
    }
}

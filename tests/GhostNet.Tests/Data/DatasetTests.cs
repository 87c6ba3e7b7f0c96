using GhostNet.Data;
using NUnit.Framework;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Tests.Data;

public class DatasetTests : TempFolderTest
{


    [Test]
    public void Mnist_has_60000_and_10000_images_with_the_known_first_labels()
    {
        string folder = RepositoryData.Folder("mnist");
        var train = IdxDataset.FromFolder(folder, "train", IdxDataset.MnistClasses);
        var test = IdxDataset.FromFolder(folder, "t10k", IdxDataset.MnistClasses);
        Assert.That(train.Count, Is.EqualTo(60_000));
        Assert.That(test.Count, Is.EqualTo(10_000));
        Assert.That(Enumerable.Range(0, 10).Select(train.Label), Is.EqualTo(new[] { 5, 0, 4, 1, 9, 2, 1, 3, 1, 4 }));
        Assert.That(Enumerable.Range(0, 10).Select(test.Label), Is.EqualTo(new[] { 7, 2, 1, 0, 4, 1, 4, 9, 5, 9 }));
        Assert.That((train.Rows, train.Cols), Is.EqualTo((28, 28)));
        using var image = train.Load(0);
        Assert.That(image[14, 14].R, Is.EqualTo(train.Pixels(0)[14 * 28 + 14]), "grey replicated into RGB");
    }

    [Test]
    public void Fashion_mnist_split_is_6000_train_and_1000_test_per_class()
    {
        string folder = RepositoryData.Folder("fashion-mnist");
        var train = IdxDataset.FromFolder(folder, "train", IdxDataset.FashionClasses);
        var test = IdxDataset.FromFolder(folder, "t10k", IdxDataset.FashionClasses);
        Assert.That(train.Count, Is.EqualTo(60_000));
        Assert.That(test.Count, Is.EqualTo(10_000));
        Assert.That(Enumerable.Range(0, train.Count).GroupBy(train.Label).Select(g => g.Count()), Is.All.EqualTo(6000));
        Assert.That(Enumerable.Range(0, test.Count).GroupBy(test.Label).Select(g => g.Count()), Is.All.EqualTo(1000));
    }

    [Test]
    public void Idx_files_with_a_wrong_magic_or_size_are_rejected_by_name()
    {
        string images = Path.Combine(Folder, "train-images-idx3-ubyte"), labels = Path.Combine(Folder, "train-labels-idx1-ubyte");
        WriteIdxImages(images, 2, 3, 3, extraBytes: 0);
        WriteIdxLabels(labels, [1, 2]);
        Assert.That(new IdxDataset(images, labels, IdxDataset.MnistClasses).Count, Is.EqualTo(2));

        WriteIdxImages(images, 2, 3, 3, extraBytes: -1);
        var ex = Assert.Throws<InvalidDataException>(() => _ = new IdxDataset(images, labels, IdxDataset.MnistClasses));
        Assert.That(ex!.Message, Does.Contain(images).And.Contain("header says 2 images of 3x3"));

        WriteIdxImages(images, 2, 3, 3, extraBytes: 0);
        var bytes = File.ReadAllBytes(labels);
        bytes[3] = 0x03;
        File.WriteAllBytes(labels, bytes);
        ex = Assert.Throws<InvalidDataException>(() => _ = new IdxDataset(images, labels, IdxDataset.MnistClasses));
        Assert.That(ex!.Message, Does.Contain("magic 0x00000803 is not an IDX label file"));

        WriteIdxLabels(labels, [1, 2, 3]);
        ex = Assert.Throws<InvalidDataException>(() => _ = new IdxDataset(images, labels, IdxDataset.MnistClasses));
        Assert.That(ex!.Message, Does.Contain("images number 2"));
    }

    [Test]
    public void Cifar10_binary_batches_round_trip()
    {
        var rng = new Random(4);
        var records = Enumerable.Range(0, 7).Select(i => ((byte)(i % 10), Enumerable.Range(0, 3072).Select(_ => (byte)rng.Next(256)).ToArray())).ToList();
        for (int b = 1; b <= 5; b++) Cifar10Dataset.WriteBatch(Path.Combine(Folder, $"data_batch_{b}.bin"), records);
        Cifar10Dataset.WriteBatch(Path.Combine(Folder, "test_batch.bin"), records.Take(3).ToList());
        var train = new Cifar10Dataset(Folder, train: true);
        var test = new Cifar10Dataset(Folder, train: false);
        Assert.That(train.Count, Is.EqualTo(35));
        Assert.That(test.Count, Is.EqualTo(3));
        Assert.That(train.Label(8), Is.EqualTo(1));
        using var image = train.Load(9); // batch 2, record 2
        var chw = records[2].Item2;
        Assert.That(image[5, 3], Is.EqualTo(new Rgb24(chw[3 * 32 + 5], chw[1024 + 3 * 32 + 5], chw[2048 + 3 * 32 + 5])), "pixel (x 5, y 3)");
        Assert.That(train.Classes[9], Is.EqualTo("truck"));
        File.WriteAllBytes(Path.Combine(Folder, "test_batch.bin"), new byte[3073 * 2 + 5]);
        var ex = Assert.Throws<InvalidDataException>(() => _ = new Cifar10Dataset(Folder, train: false));
        Assert.That(ex!.Message, Does.Contain("not a whole number of 3073-byte"));
    }

    [Test]
    public void Image_folder_sorts_classes_and_files_like_torchvision_and_reports_empty_classes()
    {
        SyntheticImageFolder.Write(Folder, classes: 3, perClass: 2, width: 40, height: 30, seed: 1);
        Directory.CreateDirectory(Path.Combine(Folder, "Zebra"));        // upper case sorts first, ordinally
        Directory.CreateDirectory(Path.Combine(Folder, "aardvark"));     // empty class
        File.WriteAllText(Path.Combine(Folder, "disc", "notes.txt"), "not an image, not listed");
        using (var png = new Image<Rgb24>(5, 5)) png.SaveAsPng(Path.Combine(Folder, "Zebra", "b.PNG"));
        using (var png = new Image<Rgb24>(5, 5)) png.SaveAsPng(Path.Combine(Folder, "Zebra", "a.png"));
        var ds = new ImageFolderDataset(Folder);
        Assert.That(ds.Classes, Is.EqualTo(new[] { "Zebra", "aardvark", "disc", "hbars", "vbars" }));
        Assert.That(ds.Count, Is.EqualTo(8));
        Assert.That(Enumerable.Range(0, ds.Count).Select(ds.Label), Is.EqualTo(new[] { 0, 0, 2, 2, 3, 3, 4, 4 }));
        Assert.That(Path.GetFileName(ds.Describe(0)), Is.EqualTo("a.png"));
        Assert.That(ds.Warnings, Has.One.Contains("'aardvark' has no"));
        using var image = ds.Load(2);
        Assert.That((image.Width, image.Height), Is.EqualTo((40, 30)));
    }

    private static void WriteIdxImages(string path, int count, int rows, int cols, int extraBytes)
    {
        var bytes = new byte[16 + count * rows * cols + extraBytes];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes, 0x803);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), rows);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), cols);
        File.WriteAllBytes(path, bytes);
    }

    private static void WriteIdxLabels(string path, byte[] labels)
    {
        var bytes = new byte[8 + labels.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes, 0x801);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), labels.Length);
        labels.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
    }
}

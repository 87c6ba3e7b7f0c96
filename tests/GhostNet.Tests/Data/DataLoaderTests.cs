using GhostNet.Backends;
using GhostNet.Data;
using GhostNet.Data.Transforms;
using NUnit.Framework;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Tests.Data;

public class DataLoaderTests : TempFolderTest
{
    /// <summary>Sample i is an 8x8 image whose red channel is i % 256 and green i / 256.</summary>
    private sealed class Numbered(int count) : IImageDataset
    {
        public int Count => count;
        public IReadOnlyList<string> Classes { get; } = Enumerable.Range(0, 10).Select(i => i.ToString()).ToList();
        public int Label(int index) => index % 10;
        public string Describe(int index) => $"numbered[{index}]";
        public Image<Rgb24> Load(int index)
        {
            var image = new Image<Rgb24>(8, 8);
            for (int x = 0; x < 8; x++) for (int y = 0; y < 8; y++) image[x, y] = new Rgb24((byte)(index % 256), (byte)(index / 256), 0);
            return image;
        }
    }

    private static readonly Normalization Identity = new([0, 0, 0], [1, 1, 1]);

    private static List<int> Indices(DataLoader loader, int epoch) =>
        loader.Epoch(epoch).SelectMany(b => Enumerable.Range(0, b.Count).Select(i =>
        {
            int at = i * loader.ImageSize;
            return b.Pixels[at] + 256 * b.Pixels[at + 1]; // red and green of the first pixel (HWC)
        })).ToList();

    [Test]
    public void An_epoch_with_four_workers_delivers_every_sample_exactly_once_in_the_shuffled_order()
    {
        var loader = new DataLoader(new Numbered(1003), new EvalTransform(8, Identity, 1.0),
            new DataLoaderOptions(BatchSize: 7, Shuffle: true, DropLast: false, Workers: 4, Prefetch: 3, Seed: 12));
        var seen = Indices(loader, 0);
        Assert.That(seen, Has.Count.EqualTo(1003));
        Assert.That(seen.Order(), Is.EqualTo(Enumerable.Range(0, 1003)), "no sample lost or duplicated");
        Assert.That(seen, Is.EqualTo(loader.Order(0)), "batches arrive in the epoch's order");
        Assert.That(seen, Is.Not.EqualTo(Enumerable.Range(0, 1003)), "shuffled");
    }

    [Test]
    public void Drop_last_leaves_out_the_partial_batch()
    {
        var loader = new DataLoader(new Numbered(20), new EvalTransform(8, Identity, 1.0), new DataLoaderOptions(BatchSize: 6, Workers: 3));
        Assert.That(loader.BatchesPerEpoch, Is.EqualTo(3));
        Assert.That(loader.Epoch(0).Select(b => b.Count), Is.EqualTo(new[] { 6, 6, 6 }));
    }

    [Test]
    public void The_same_seed_gives_the_same_batches_and_another_epoch_another_order()
    {
        SyntheticImageFolder.Write(Folder, classes: 3, perClass: 8, width: 64, height: 48, seed: 5);
        var dataset = new ImageFolderDataset(Folder);
        List<int[]> Run(int epoch, int workers) =>
            new DataLoader(dataset, new TrainTransform(24, Normalization.ImageNet), new DataLoaderOptions(BatchSize: 5, Workers: workers, Seed: 99))
                .Epoch(epoch).Select(b => b.PixelSpan.ToArray().Select(v => (int)v).Concat(b.LabelSpan.ToArray()).ToArray()).ToList();
        var a = Run(0, 4);
        var b = Run(0, 1);
        Assert.That(b, Has.Count.EqualTo(a.Count));
        for (int i = 0; i < a.Count; i++) Assert.That(b[i], Is.EqualTo(a[i]), $"batch {i}: augmentation does not depend on thread timing");
        Assert.That(Run(1, 4)[0], Is.Not.EqualTo(a[0]), "epoch 1 differs");
    }

    [Test]
    public void Cancellation_stops_an_epoch()
    {
        var loader = new DataLoader(new Numbered(500), new EvalTransform(8, Identity, 1.0), new DataLoaderOptions(BatchSize: 10, Workers: 2));
        using var cancel = new CancellationTokenSource();
        int batches = 0;
        Assert.Throws<OperationCanceledException>(() =>
        {
            foreach (var _ in loader.Epoch(0, cancel.Token))
                if (++batches == 3) cancel.Cancel();
        });
        Assert.That(batches, Is.EqualTo(3));
    }
}

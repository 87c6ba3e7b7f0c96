using GhostNet.Data;
using NUnit.Framework;

namespace GhostNet.Tests.Data;

public class SyntheticPatternsTests
{
    [Test]
    public void Same_seed_same_images_and_every_class_present()
    {
        var a = SyntheticPatterns.Generate(200, 5, 32, seed: 9);
        var b = SyntheticPatterns.Generate(200, 5, 32, seed: 9);
        var ia = new float[2 * a.ImageSize]; var la = new int[2];
        var ib = new float[2 * b.ImageSize]; var lb = new int[2];
        a.CopyBatch([3, 150], ia, la);
        b.CopyBatch([3, 150], ib, lb);
        Assert.That(ia, Is.EqualTo(ib));
        Assert.That(la, Is.EqualTo(lb));
        var all = new int[200];
        a.CopyBatch(Enumerable.Range(0, 200).ToArray(), new float[200 * a.ImageSize], all);
        Assert.That(all.Distinct().Order(), Is.EqualTo(Enumerable.Range(0, 5)));
    }

    [Test]
    public void A_dataset_whose_sizes_disagree_is_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => _ = new InMemoryDataset(new float[10], [0, 1], 1, 2, 2, ["a", "b"]));
        Assert.That(ex!.Message, Does.Contain("10 pixel values for 2 images"));
    }
}

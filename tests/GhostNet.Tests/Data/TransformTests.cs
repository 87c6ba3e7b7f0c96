using GhostNet.Backends;
using GhostNet.Data.Transforms;
using NUnit.Framework;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Tests.Data;

public class TransformTests
{
    /// <summary>A generator that replays scripted draws, so crop boxes can be computed by hand.</summary>
    private sealed class Scripted(double[] doubles, int[] ints) : Random
    {
        private int _d, _i;
        public override double NextDouble() => doubles[_d++];
        public override int Next(int minValue, int maxValue)
        {
            int v = ints[_i++];
            Assert.That(v, Is.InRange(minValue, maxValue - 1), "scripted integer outside the asked range");
            return v;
        }
    }

    [Test]
    public void Random_resized_crop_box_follows_torchvision_by_hand()
    {
        // 200 x 300 image (H x W), area 60000. Draw 1: scale u=0.5 -> fraction 0.08 + 0.46 = 0.54 -> 32400;
        // ratio u=0.5 -> exp(0) = 1 -> w = h = round(180) = 180: fits. Top in [0, 20], left in [0, 120].
        var box = RandomResizedCropBox.Sample(200, 300, new Scripted([0.5, 0.5], [7, 100]));
        Assert.That(box, Is.EqualTo(new CropBox(7, 100, 180, 180)));
        // Draw 1 too large (fraction 1, ratio 4/3: w = round(sqrt(60000 * 4/3)) = 283 > ... h = round(sqrt(45000)) = 212 > 200),
        // draw 2: fraction 0.08 + 0.92 * 0.25 = 0.31 -> 18600, ratio u=0 -> 3/4: w = round(sqrt(13950)) = 118, h = round(sqrt(24800)) = 157.
        box = RandomResizedCropBox.Sample(200, 300, new Scripted([1.0, 1.0, 0.25, 0.0], [40, 0]));
        Assert.That(box, Is.EqualTo(new CropBox(40, 0, 157, 118)));
    }

    [Test]
    public void Random_resized_crop_falls_back_to_the_clamped_central_crop()
    {
        // Ten draws that never fit (full area at ratio 4/3 is 212 rows > 200): a 200 x 300 image has
        // ratio 1.5 > 4/3, so h = 200, w = round(200 * 4/3) = 267, centred: left (300 - 267) / 2 = 16.
        var draws = Enumerable.Repeat(1.0, 20).ToArray();
        Assert.That(RandomResizedCropBox.Sample(200, 300, new Scripted(draws, [])), Is.EqualTo(new CropBox(0, 16, 200, 267)));
        // A tall 300 x 100 image (ratio 1/3 < 3/4): w = 100, h = round(100 / 0.75) = 133, top (300 - 133) / 2 = 83.
        Assert.That(RandomResizedCropBox.Sample(300, 100, new Scripted(draws, [])), Is.EqualTo(new CropBox(83, 0, 133, 100)));
    }

    [Test]
    public void Resize_and_center_crop_arithmetic_follows_torchvision()
    {
        Assert.That(RandomResizedCropBox.ShorterSide(375, 500, 256), Is.EqualTo((256, 341)));   // int(256 * 500 / 375) = 341
        Assert.That(RandomResizedCropBox.ShorterSide(500, 333, 256), Is.EqualTo((384, 256)));   // int(256 * 500 / 333) = 384
        Assert.That(RandomResizedCropBox.Center(256, 341, 224, 224), Is.EqualTo(new CropBox(16, 58, 224, 224))); // round(58.5) = 58 (half to even)
        Assert.That(RandomResizedCropBox.Center(257, 341, 224, 224), Is.EqualTo(new CropBox(16, 58, 224, 224))); // round(16.5) = 16
        Assert.That(new EvalTransform(224, Normalization.ImageNet).ResizeTo, Is.EqualTo(256));
    }

    [Test]
    public void Normalization_writes_chw_with_imagenet_statistics()
    {
        var chw = new float[6];
        Normalization.ImageNet.Normalize([255, 0, 128, 0, 255, 0], chw, height: 1, width: 2); // HWC: pixel 0, pixel 1
        Assert.That(chw[0], Is.EqualTo((1 - 0.485f) / 0.229f).Within(1e-5));      // R of pixel 0
        Assert.That(chw[1], Is.EqualTo((0 - 0.485f) / 0.229f).Within(1e-5));      // R of pixel 1
        Assert.That(chw[3], Is.EqualTo((1 - 0.456f) / 0.224f).Within(1e-5));      // G of pixel 1
        Assert.That(chw[4], Is.EqualTo((128 / 255f - 0.406f) / 0.225f).Within(1e-5)); // B of pixel 0
    }

    [Test]
    public void Train_transform_flips_by_its_draw_and_is_deterministic_under_a_seed()
    {
        using var source = new Image<Rgb24>(64, 64);
        for (int x = 0; x < 64; x++) for (int y = 0; y < 64; y++) source[x, y] = x < 32 ? new Rgb24(255, 255, 255) : new Rgb24(0, 0, 0);
        var full = new TrainTransform(16, Normalization.ImageNet, scaleMin: 1, scaleMax: 1, ratioMin: 1, ratioMax: 1, flipProbability: 0.5);
        float Left(bool flip)
        {
            using var image = source.Clone();
            var chw = new float[3 * 16 * 16];
            // scale and ratio draws, then top/left (0), then the flip draw: < 0.5 flips.
            full.ApplyNormalized(image, new Scripted([0.3, 0.3, flip ? 0.1 : 0.9], [0, 0]), chw);
            return chw[8 * 16 + 0]; // red, row 8, column 0
        }
        Assert.That(Left(flip: false), Is.GreaterThan(2f), "left half white without a flip");
        Assert.That(Left(flip: true), Is.LessThan(-2f), "left half black after a flip");

        var t = new TrainTransform(32, Normalization.ImageNet);
        float[] Run(int seed)
        {
            using var image = source.Clone();
            var chw = new float[3 * 32 * 32];
            t.ApplyNormalized(image, new Random(seed), chw);
            return chw;
        }
        Assert.That(Run(5), Is.EqualTo(Run(5)));
        Assert.That(Run(5), Is.Not.EqualTo(Run(6)));
    }

    [Test]
    public void The_transforms_bytes_normalised_are_the_floats_of_apply_normalized()
    {
        using var source = new Image<Rgb24>(40, 30);
        var rng = new Random(3);
        for (int x = 0; x < 40; x++) for (int y = 0; y < 30; y++) source[x, y] = new Rgb24((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256));
        IImageTransform t = new TrainTransform(16, Normalization.Cifar10);
        using (var image = source.Clone())
        {
            var hwc = new byte[3 * 16 * 16];
            t.Apply(image, new Random(9), hwc);
            var chw = new float[hwc.Length];
            using var again = source.Clone();
            t.ApplyNormalized(again, new Random(9), chw);
            var expected = new float[hwc.Length];
            Normalization.Cifar10.Normalize(hwc, expected, 16, 16);
            Assert.That(chw, Is.EqualTo(expected));
            Assert.That(hwc.Distinct().Count(), Is.GreaterThan(50), "the crop holds the random pixels");
        }
    }

    [Test]
    public void Eval_transform_keeps_a_constant_image_constant_at_the_requested_size()
    {
        using var image = new Image<Rgb24>(50, 40);
        for (int x = 0; x < 50; x++) for (int y = 0; y < 40; y++) image[x, y] = new Rgb24(10, 200, 30);
        var chw = new float[3 * 32 * 32];
        new EvalTransform(32, Normalization.ImageNet).ApplyNormalized(image, new Random(0), chw);
        Assert.That(chw.Take(1024), Is.All.EqualTo((10 / 255f - 0.485f) / 0.229f).Within(1e-4));
        Assert.That(chw.Skip(1024).Take(1024), Is.All.EqualTo((200 / 255f - 0.456f) / 0.224f).Within(1e-4));
    }
}

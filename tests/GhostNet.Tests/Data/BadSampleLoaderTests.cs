using GhostNet.Backends;
using GhostNet.Data;
using GhostNet.Data.Transforms;
using NUnit.Framework;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Tests.Data;

/// <summary>The loader's bad-sample policies, its cost on many bad files, and the options it refuses.</summary>
public class BadSampleLoaderTests
{
    /// <summary>Sample i is an 8x8 image whose red channel is i; the samples in <paramref name="bad"/> throw. Loads are counted.</summary>
    private sealed class Flaky(int count, ISet<int> bad) : IImageDataset
    {
        private int _badLoads;
        public int BadLoads => _badLoads;
        public int Count => count;
        public IReadOnlyList<string> Classes { get; } = ["a", "b"];
        public int Label(int index) => index % 2;
        public string Describe(int index) => $"flaky[{index}]";
        public Image<Rgb24> Load(int index)
        {
            if (bad.Contains(index))
            {
                Interlocked.Increment(ref _badLoads);
                throw new BadSampleException(Describe(index), "not a JPEG or PNG image");
            }
            var image = new Image<Rgb24>(8, 8);
            image.ProcessPixelRows(rows => { for (int y = 0; y < 8; y++) rows.GetRowSpan(y).Fill(new Rgb24((byte)index, 0, 0)); });
            return image;
        }
    }

    private static readonly EvalTransform Identity = new(8, new Normalization([0, 0, 0], [1, 1, 1]), 1.0);

    private static DataLoader Loader(IImageDataset data, int batch, int workers, BadSamplePolicy policy) =>
        new(data, Identity, new DataLoaderOptions(batch, Shuffle: false, DropLast: false, Workers: workers) { BadSamples = policy, Warnings = TextWriter.Null });

    private static List<int[]> Batches(DataLoader loader, int epoch = 0) =>
        loader.Epoch(epoch).Select(b => Enumerable.Range(0, b.Count).Select(i => (int)b.Pixels[i * loader.ImageSize]).ToArray()).ToList();

    [Test]
    public void Replacing_300_bad_files_decodes_each_once_and_gives_the_same_batches_on_any_thread_count()
    {
        var bad = Enumerable.Range(0, 300).ToHashSet();
        var one = new Flaky(320, bad);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var expected = Batches(Loader(one, 10, 1, BadSamplePolicy.Replace));
        Assert.That(one.BadLoads, Is.EqualTo(300), "each bad file decoded once, not once per earlier bad position (was 45,150)");
        Assert.That(expected.SelectMany(b => b).Take(300), Is.All.EqualTo(44), "bad samples 0..299 are each replaced by the next readable, sample 300 (red 300 % 256)");
        var four = new Flaky(320, bad);
        var loader = Loader(four, 10, 4, BadSamplePolicy.Replace);
        Assert.That(Batches(loader), Is.EqualTo(expected), "batches do not depend on thread timing");
        Assert.That(four.BadLoads, Is.LessThanOrEqualTo(300 * 4), "at most one decode per bad file per racing worker");
        Assert.That(loader.EpochSkippedSamples, Is.EqualTo(300));
        Assert.That(clock.Elapsed.TotalSeconds, Is.LessThan(5));
    }

    [Test]
    public void Skip_leaves_bad_samples_out_of_shorter_batches_and_counts_them_every_epoch()
    {
        var data = new Flaky(25, new HashSet<int> { 3, 7, 8, 15, 20, 21, 22, 23, 24 });
        int[][] expected = [[0, 1, 2, 4], [5, 6, 9], [10, 11, 12, 13, 14], [16, 17, 18, 19]]; // batch 20..24 is all bad: left out
        foreach (int workers in new[] { 1, 3 })
        {
            var loader = Loader(data, 5, workers, BadSamplePolicy.Skip);
            for (int epoch = 0; epoch < 2; epoch++)
            {
                Assert.That(Batches(loader, epoch), Is.EqualTo(expected), $"{workers} workers, epoch {epoch}");
                Assert.That(loader.EpochSkippedSamples, Is.EqualTo(9), $"{workers} workers, epoch {epoch}: skipped in the epoch");
            }
            Assert.That(loader.SkippedSamples, Is.EqualTo(9), "distinct unreadable samples over the loader's life");
        }
    }

    [Test]
    public void Fail_delivers_the_batches_before_the_bad_sample_then_throws_it_unwrapped()
    {
        var loader = Loader(new Flaky(40, new HashSet<int> { 12 }), 5, 4, BadSamplePolicy.Fail);
        var seen = new List<int>();
        var e = Assert.Throws<BadSampleException>(() => { foreach (var b in loader.Epoch(0)) seen.Add(b.Index); });
        Assert.That(seen, Is.EqualTo(new[] { 0, 1 }));
        Assert.That(e!.Sample, Is.EqualTo("flaky[12]"));
        Assert.That(e, Is.InstanceOf<IOException>(), "the CLI's one-line error covers it");
        Assert.That(new DataLoaderOptions(5) { StrictBadSamples = true }.BadSamples, Is.EqualTo(BadSamplePolicy.Fail), "the older switch");
    }

    [Test]
    public void A_data_set_with_no_readable_sample_ends_in_one_clear_exception_under_every_policy()
    {
        var all = Enumerable.Range(0, 20).ToHashSet();
        Assert.Multiple(() =>
        {
            foreach (var policy in Enum.GetValues<BadSamplePolicy>())
                foreach (int workers in new[] { 1, 4 })
                {
                    var loader = Loader(new Flaky(20, all), 6, workers, policy);
                    var run = Task.Run(() => { foreach (var _ in loader.Epoch(0)) { } });
                    var done = Task.WhenAny(run, Task.Delay(20_000)).Result;
                    string name = $"{policy}, {workers} workers";
                    Assert.That(done, Is.SameAs(run), $"{name}: returned, no hang");
                    var e = run.Exception?.InnerException;
                    if (policy == BadSamplePolicy.Fail)
                        Assert.That(e, Is.TypeOf<BadSampleException>().With.Message.EqualTo("flaky[0]: not a JPEG or PNG image"), name);
                    else
                        Assert.That(e, Is.TypeOf<InvalidDataException>().With.Message.EqualTo(
                            "every one of the 20 images is unreadable; first: flaky[0]: not a JPEG or PNG image"), name);
                }
        });
    }

    [Test]
    public void Options_that_cannot_work_are_refused_naming_the_value_and_buffers_stay_in_their_budget()
    {
        var data = new Flaky(10, new HashSet<int>());
        (string Name, DataLoaderOptions Options, string Message)[] refused =
        [
            ("negative workers", new DataLoaderOptions(8, Workers: -1), "workers -1: must be 0 (one per core) or positive"),
            ("negative prefetch", new DataLoaderOptions(8, Prefetch: -3), "prefetch -3: must be 0"),
            ("zero batch", new DataLoaderOptions(0), "batch size 0: must be positive"),
            ("prefetch 2000 of 256 at 224", new DataLoaderOptions(256, Workers: 1000, Prefetch: 2000), "prefetch 2000: a buffer of 256 images of 3x224x224 takes 38,536,192 bytes"),
            ("one buffer over the budget", new DataLoaderOptions(256) { MaxBufferBytes = 1 << 20 }, "batch size 256: a buffer of 256 images"),
        ];
        Assert.Multiple(() =>
        {
            foreach (var (name, options, message) in refused)
            {
                var e = Assert.Catch<ArgumentException>(() => DataLoader.BufferBytes(options, 224), name);
                Assert.That(e?.Message, Does.Contain(message).And.Not.Contain("\n"), name);
            }
        });
        var many = new DataLoaderOptions(256, Workers: 1000);
        var plan = LoaderBuffers.Plan(many, 224);
        Assert.That(plan.TotalBytes, Is.LessThanOrEqualTo(DataLoaderOptions.DefaultMaxBufferBytes), "-j 1000: the default prefetch shrinks to the budget");
        Assert.That(plan.Count, Is.EqualTo(55));
        Assert.That(plan.Threads, Is.EqualTo(55), "no more threads than buffers");
        var loader = new DataLoader(data, Identity, new DataLoaderOptions(4, Workers: 3));
        Assert.That(DataLoader.BufferBytes(loader.Options, 8), Is.EqualTo(6 * 4 * (3 * 8 * 8 + 4)), "RGB bytes and an int label per image");
        Assert.That(loader.Buffers.TotalBytes, Is.EqualTo(DataLoader.BufferBytes(loader.Options, 8)));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new DataLoader(data, Identity, new DataLoaderOptions(4, Workers: -2)));
    }
}

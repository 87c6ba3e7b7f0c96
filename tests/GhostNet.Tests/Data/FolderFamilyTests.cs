using GhostNet.Backends;
using GhostNet.Data;
using GhostNet.Data.Transforms;
using NUnit.Framework;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GhostNet.Tests.Data;

/// <summary>
/// Hostile image folders, one generated tree per case: every case states the exact samples
/// (path under the root, class) and the warnings. Each tree starts as a/x.png, a/sub/y.png,
/// b/z.png, with outside/ (next to the root) holding o.png and more/w.png.
/// </summary>
public class FolderFamilyTests : TempFolderTest
{
    private sealed record Case(string Name, Action<string, string> Build, string[] Samples, string[] Warnings);

    private static void Link(string at, string target) => File.CreateSymbolicLink(at, target);
    private static void DirLink(string at, string target) => Directory.CreateSymbolicLink(at, target);

    private static readonly string[] Base = ["a/sub/y.png", "a/x.png", "b/z.png"];

    private static readonly Case[] Cases =
    [
        new("plain", (r, o) => { }, Base, []),
        new("directory link to its own folder", (r, o) => DirLink(Path.Combine(r, "a/sub/again"), Path.Combine(r, "a/sub")), Base, ["a/sub/again: a link to the folder", "(a loop)"]),
        new("directory link to the class folder (parent)", (r, o) => DirLink(Path.Combine(r, "a/sub/up"), ".."), Base, ["a/sub/up: a link to the folder", "(a loop)"]),
        new("directory link to the root", (r, o) => DirLink(Path.Combine(r, "a/sub/top"), r), Base, ["a/sub/top: a link to the folder", "(a loop)"]),
        new("directory link to another class", (r, o) => DirLink(Path.Combine(r, "a/other"), Path.Combine(r, "b")), Base, ["a/other: a link to the folder", "outside the class folder"]),
        new("directory link out of the tree", (r, o) => DirLink(Path.Combine(r, "a/out"), o), Base, ["a/out: a link to the folder", "outside the class folder"]),
        new("directory link to a sibling inside the class", (r, o) => { Directory.CreateDirectory(Path.Combine(r, "a/t")); DirLink(Path.Combine(r, "a/t/s"), Path.Combine(r, "a/sub")); }, Base, ["a/t/s: a link to the folder", "inside the class folder"]),
        new("file link to an image of its own class", (r, o) => Link(Path.Combine(r, "a/copy.png"), Path.Combine(r, "a/x.png")), Base, ["a/copy.png: the same file as", "a/x.png, counted once"]),
        new("file link to another class's image", (r, o) => Link(Path.Combine(r, "a/stolen.png"), "../b/z.png"), Base, ["a/stolen.png: the same file as", "b/z.png, counted once"]),
        new("file link out of the tree (a link farm)", (r, o) => Link(Path.Combine(r, "b/farm.png"), Path.Combine(o, "o.png")), [.. Base, "b/farm.png"], []),
        new("two links to one outside file", (r, o) => { Link(Path.Combine(r, "b/d1.png"), Path.Combine(o, "o.png")); Link(Path.Combine(r, "b/d2.png"), Path.Combine(o, "o.png")); },
            [.. Base, "b/d1.png"], ["b/d2.png: the same file as", "b/d1.png, counted once"]),
        new("dangling file link", (r, o) => Link(Path.Combine(r, "b/gone.png"), Path.Combine(o, "missing.png")), Base, ["b/gone.png: a dangling link"]),
        new("file links in a loop", (r, o) => { Link(Path.Combine(r, "b/l1.png"), Path.Combine(r, "b/l2.png")); Link(Path.Combine(r, "b/l2.png"), Path.Combine(r, "b/l1.png")); },
            Base, ["b/l1.png: a dangling link (or a loop of links)", "b/l2.png: a dangling link (or a loop of links)"]),
        new("class folder linked from outside the root", (r, o) => DirLink(Path.Combine(r, "c"), Path.Combine(o, "more")), [.. Base, "c/w.png"], []),
        new("class folder linked to the root", (r, o) => DirLink(Path.Combine(r, "c"), r), Base, ["c: links to", "(a loop); not followed", "class 'c' has no"]),
        new("class folder linked to another class", (r, o) => DirLink(Path.Combine(r, "c"), Path.Combine(r, "b")), Base, ["c: links to", "inside the root", "class 'c' has no"]),
        new("empty class folder", (r, o) => Directory.CreateDirectory(Path.Combine(r, "c")), Base, ["class 'c' has no .jpg/.jpeg/.png files"]),
        new("a directory named like an image and other files", (r, o) => { Directory.CreateDirectory(Path.Combine(r, "b/dir.png")); File.WriteAllText(Path.Combine(r, "b/notes.txt"), "x"); }, Base, []),
    ];

    private void Tree(string root, string outside)
    {
        var png = ImageSamples.Encode("t.png", 8, 6, new SixLabors.ImageSharp.Formats.Png.PngEncoder()).Bytes;
        foreach (var f in Base) { Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(root, f))!); File.WriteAllBytes(Path.Combine(root, f), png); }
        Directory.CreateDirectory(Path.Combine(outside, "more"));
        File.WriteAllBytes(Path.Combine(outside, "o.png"), png);
        File.WriteAllBytes(Path.Combine(outside, "more/w.png"), png);
    }

    [Test]
    public void Every_real_file_counts_once_under_its_own_class_and_links_that_loop_or_leave_are_warned_about()
    {
        Assert.Multiple(() =>
        {
            for (int i = 0; i < Cases.Length; i++)
            {
                var c = Cases[i];
                string root = Path.Combine(Folder, $"case{i}", "root"), outside = Path.Combine(Folder, $"case{i}", "outside");
                Tree(root, outside);
                c.Build(root, outside);
                var data = new ImageFolderDataset(root);
                var samples = Enumerable.Range(0, data.Count).Select(k => Path.GetRelativePath(root, data.Describe(k)) + $" ({data.Classes[data.Label(k)]})");
                var expected = c.Samples.Order(StringComparer.Ordinal).Select(s => $"{s} ({s[..1]})");
                Assert.That(samples, Is.EqualTo(expected), $"{c.Name}: samples");
                string warnings = string.Join("\n", data.Warnings);
                Assert.That(data.Warnings, Has.Count.EqualTo(c.Warnings.Length == 0 ? 0 : c.Warnings.Count(w => w.Contains(':') || w.StartsWith("class"))),
                    $"{c.Name}: one warning each, got:\n{warnings}");
                foreach (var w in c.Warnings) Assert.That(warnings, Does.Contain(w), $"{c.Name}: warnings");
                foreach (int k in Enumerable.Range(0, data.Count)) Assert.DoesNotThrow(() => data.Load(k).Dispose(), $"{c.Name}: {data.Describe(k)} loads");
            }
        });
    }

    [Test]
    public void Empty_roots_folders_of_bad_images_and_files_that_vanish_give_clear_errors()
    {
        string empty = Path.Combine(Folder, "empty");
        Directory.CreateDirectory(empty);
        Assert.That(Assert.Throws<InvalidDataException>(() => _ = new ImageFolderDataset(empty))!.Message, Does.Contain("has no class folders"));
        Directory.CreateDirectory(Path.Combine(empty, "a"));
        Assert.That(Assert.Throws<InvalidDataException>(() => _ = new ImageFolderDataset(empty))!.Message, Does.Contain("no .jpg/.jpeg/.png files in any class folder"));

        string bad = Path.Combine(Folder, "bad");
        for (int i = 0; i < 6; i++)
        {
            Directory.CreateDirectory(Path.Combine(bad, $"c{i % 2}"));
            File.WriteAllText(Path.Combine(bad, $"c{i % 2}", $"{i}.jpg"), "corrupt");
        }
        var transform = new EvalTransform(32, Normalization.ImageNet, 1.0);
        foreach (var policy in new[] { BadSamplePolicy.Replace, BadSamplePolicy.Skip })
        {
            var loader = new DataLoader(new ImageFolderDataset(bad), transform, new DataLoaderOptions(4, Workers: 2) { BadSamples = policy, Warnings = TextWriter.Null });
            var e = Assert.Throws<InvalidDataException>(() => { foreach (var _ in loader.Epoch(0)) { } }, policy.ToString());
            Assert.That(e!.Message, Is.EqualTo($"every one of the 6 images of {bad} is unreadable; first: {Path.Combine(bad, "c0", "0.jpg")}: not a JPEG or PNG image"), policy.ToString());
        }

        // A file that vanishes after the scan stands for an unreadable one (the tests run as root, so chmod 000 would not stop reading).
        string vanish = Path.Combine(Folder, "vanish");
        SyntheticImageFolder.Write(vanish, classes: 2, perClass: 3, width: 16, height: 16, seed: 1);
        var data = new ImageFolderDataset(vanish);
        File.Delete(data.Describe(1));
        var warnings = new StringWriter();
        var replace = new DataLoader(data, transform, new DataLoaderOptions(3, Shuffle: false, Workers: 1) { Warnings = warnings });
        Assert.That(replace.Epoch(0).Sum(b => b.Count), Is.EqualTo(6));
        Assert.That(warnings.ToString(), Does.Contain($"image skipped: {data.Describe(1)}: file not found"));
    }
}

using GhostNet.Backends;
using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>Launch and copy contexts are formatted only on failure, and then read as the interpolation would.</summary>
public class DeferredTextTests
{
    private static string Format(DeferredText text) => text.ToString();

    [Test]
    public void Reads_like_the_interpolated_string()
    {
        var storage = new Storage("act", 2 * 3 * 4 * 5);
        var x = new Tensor(storage, 0, 2, 3, 4, 5);
        var g = new ConvGeometry(3, 2, 1);
        int m = 64;
        nuint bytes = 4096;
        Assert.That(Format($"{x} -> {x.Channels(1, 2)} {g} (M={m}, {bytes} bytes)"),
            Is.EqualTo($"{x} -> {x.Channels(1, 2)} {g} (M={m}, {bytes} bytes)"));
        Assert.That(Format("plain"), Is.EqualTo("plain"));
        Assert.That(((DeferredText)"").IsEmpty, Is.False);
        Assert.That(default(DeferredText).IsEmpty, Is.True);
    }

    [Test]
    public void An_optional_addend_reads_as_plus_it_or_nothing()
    {
        var x = new Tensor(new Storage("act", 8), 0, 1, 2, 2, 2);
        Assert.That(Format($"{x}{x:+} -> {x}"), Is.EqualTo($"{x} + {x} -> {x}"));
        Assert.That(Format($"{x}{default(Tensor):+} -> {x}"), Is.EqualTo($"{x} -> {x}"));
    }

    [Test]
    public void Keeps_twelve_parts_and_marks_the_cut()
    {
        Assert.That(Format($"{1}{2}{3}{4}{5}{6}{7}{8}{9}{0}{1}{2}"), Is.EqualTo("123456789012"));
        Assert.That(Format($"{1}{2}{3}{4}{5}{6}{7}{8}{9}{0}{1}{2}{3}"), Is.EqualTo("123456789012 ..."));
    }
}

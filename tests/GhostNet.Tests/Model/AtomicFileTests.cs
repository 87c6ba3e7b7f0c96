using GhostNet.Graph;
using GhostNet.IO;
using NUnit.Framework;

namespace GhostNet.Tests.Model;

/// <summary>A write cut short leaves the old file whole; stale temporary files of dead writers are swept.</summary>
public class AtomicFileTests : TempFolderTest
{
    [Test]
    public void A_write_that_fails_midway_leaves_the_old_file_byte_identical_and_no_temporary()
    {
        string path = Path.Combine(Folder, "x.safetensors");
        Safetensors.Write(path, [SafetensorsTensor.Floats("w", [3], [1f, 2f, 3f])]);
        var old = File.ReadAllBytes(path);

        Assert.Throws<IOException>(() => AtomicFile.Write(path, s =>
        {
            s.Write(new byte[4096]);
            s.Flush();
            throw new IOException("disk full (test)");
        }));
        Assert.Throws<InvalidOperationException>(() => Safetensors.Write(path, Throwing()));
        Assert.Throws<ArgumentException>(() => Safetensors.Write(path, [SafetensorsTensor.Floats("w", [3], [1f]), SafetensorsTensor.Floats("v", [1], [1f])]));

        Assert.That(File.ReadAllBytes(path), Is.EqualTo(old));
        Assert.That(Directory.GetFiles(Folder).Select(Path.GetFileName), Is.EqualTo(new[] { "x.safetensors" }));
    }

    [Test]
    public void Tensors_the_format_cannot_hold_are_refused_on_write()
    {
        string path = Path.Combine(Folder, "x.safetensors");
        Assert.Throws<ArgumentException>(() => Safetensors.Write(path, [SafetensorsTensor.Floats("__metadata__", [1], [1f])]));
        Assert.Throws<ArgumentException>(() => Safetensors.Write(path, [new SafetensorsTensor("w", "F32", [-1, -1], new byte[4])]));
        Assert.Throws<ArgumentException>(() => Safetensors.Write(path, [new SafetensorsTensor("w", "f32", [1], new byte[4])]));
        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public void Stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept()
    {
        const int deadPid = 999_999_999; // above any pid_max
        string[] stale = [$"x.safetensors.{deadPid}.tmp", "x.safetensors.tmp"];
        string[] kept = ["x.safetensors.1.tmp" /* pid 1 is always alive */, $"x.safetensors.{Environment.ProcessId}.tmp", "x.safetensors", "notes.txt", "y.tmp" /* not a name ghostcuda writes */];
        foreach (var name in stale.Concat(kept)) File.WriteAllText(Path.Combine(Folder, name), name);

        var removed = AtomicFile.RemoveStale(Folder, ["x.safetensors"]);

        Assert.That(removed, Is.EquivalentTo(stale));
        Assert.That(Directory.GetFiles(Folder).Select(Path.GetFileName), Is.EquivalentTo(kept));
        Assert.That(AtomicFile.RemoveStale(Path.Combine(Folder, "absent"), ["x.safetensors"]), Is.Empty);
    }

    [Test]
    public void The_temporary_name_carries_the_pid_beside_the_target()
    {
        string path = Path.Combine(Folder, "c.safetensors");
        Assert.That(AtomicFile.TempPath(path), Is.EqualTo($"{path}.{Environment.ProcessId}.tmp"));
    }

    private static IEnumerable<SafetensorsTensor> Throwing()
    {
        yield return SafetensorsTensor.Floats("a", [1], [1f]);
        throw new InvalidOperationException("the writer crashed (test)");
    }
}

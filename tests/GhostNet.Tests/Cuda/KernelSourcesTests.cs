using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>GHOSTNET_KERNEL_DIR's folder of kernel sources (tools/cuda-emulator/mutate.sh runs the tests over edited copies).</summary>
public class KernelSourcesTests : TempFolderTest
{
    [Test]
    public void A_kernel_folder_replaces_the_embedded_sources()
    {
        var embedded = KernelSources.Load(null);
        foreach (var (name, text) in embedded) File.WriteAllText(Path.Combine(Folder, name), name == "gemm.cu" ? text + "// edited\n" : text);
        File.WriteAllText(Path.Combine(Folder, "notes.txt"), "not a kernel");
        var loaded = KernelSources.Load(Folder);
        Assert.That(loaded.Keys, Is.EquivalentTo(embedded.Keys), "the .cu and .cuh files, nothing else");
        Assert.That(loaded["gemm.cu"], Does.EndWith("// edited\n"));
        Assert.That(loaded["common.cuh"], Is.EqualTo(embedded["common.cuh"]));
    }

    [Test]
    public void A_kernel_folder_that_is_missing_or_holds_no_kernel_is_an_error()
    {
        Assert.Throws<DirectoryNotFoundException>(() => KernelSources.Load(Path.Combine(Folder, "missing")));
        File.WriteAllText(Path.Combine(Folder, "common.cuh"), "");
        Assert.Throws<FileNotFoundException>(() => KernelSources.Load(Folder));
    }
}

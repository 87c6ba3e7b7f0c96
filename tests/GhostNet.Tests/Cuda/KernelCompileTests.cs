using GhostNet.Backends;
using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// Every kernel file compiles with NVRTC to sm_75, sm_80 and sm_90 cubin, so ptxas checks it on
/// every submission without a GPU (sm_75: the tensor-core kernels compile to traps there, and the
/// rest must still load on a Turing GPU). In CI (CI=true) a missing NVRTC is a failure, elsewhere a skip.
/// </summary>
public class KernelCompileTests
{
    public static IEnumerable<TestCaseData> Cases() =>
        from type in new[] { ElementType.Float32, ElementType.BFloat16 }
        from file in KernelSources.FilesFor(type)
        from arch in new[] { "sm_75", "sm_80", "sm_90" }
        select new TestCaseData(file, arch, type).SetName($"Kernel_compiles_to_cubin({file}, {arch}, {type.Name()})");

    internal static void RequireNvrtc()
    {
        if (RuntimeCompiler.IsAvailable) return;
        if (Environment.GetEnvironmentVariable("CI") == "true")
            Assert.Fail("NVRTC is missing in CI: tools/install-nvrtc.sh should have installed libnvrtc11.2");
        Assert.Ignore("NVRTC not installed (tools/install-nvrtc.sh installs it); kernels not compiled");
    }

    [Test]
    public void Every_op_family_has_a_kernel_file() =>
        Assert.That(KernelSources.Files, Is.SupersetOf(new[]
        {
            "batch_norm.cu", "cross_entropy.cu", "dense_conv.cu", "depthwise_conv.cu", "dropout.cu", "elementwise.cu", "gemm.cu", "sgd.cu",
        }));

    [TestCaseSource(nameof(Cases))]
    public void Kernel_compiles_to_cubin(string file, string arch, ElementType activations)
    {
        RequireNvrtc();
        var cubin = RuntimeCompiler.Compile(file, KernelSources.Source(file), KernelSources.Headers, arch, KernelSources.Defines(activations));
        Assert.That(cubin.AsSpan(0, 4).ToArray(), Is.EqualTo(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }), "a cubin is an ELF image");
    }

    /// <summary>
    /// kernels/mma.cuh is a header no kernel file uses yet: its inline PTX (mma.sync, ldmatrix,
    /// cp.async, cvt.rna.tf32, cvt.rn.bf16x2) is checked through WarpMatrixTests' kernels, which
    /// use every function of it. ptxas must accept it for sm_80 and sm_90.
    /// </summary>
    [TestCase("sm_80")]
    [TestCase("sm_90")]
    public void The_tensor_core_header_compiles_to_cubin(string arch)
    {
        RequireNvrtc();
        var cubin = RuntimeCompiler.Compile("warp_matrix.cu", WarpMatrixTests.Source, KernelSources.Headers, arch);
        Assert.That(cubin.AsSpan(0, 4).ToArray(), Is.EqualTo(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }), "a cubin is an ELF image");
    }

    [Test]
    public void The_tensor_core_header_emits_the_instructions_it_names()
    {
        RequireNvrtc();
        string ptx = System.Text.Encoding.ASCII.GetString(RuntimeCompiler.Compile("warp_matrix.cu", WarpMatrixTests.Source, KernelSources.Headers, "compute_80"));
        Assert.That(ptx, Does.Contain("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32")
            .And.Contain("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32")
            .And.Contain("ldmatrix.sync.aligned.m8n8.x1.shared.b16").And.Contain("ldmatrix.sync.aligned.m8n8.x2.shared.b16")
            .And.Contain("ldmatrix.sync.aligned.m8n8.x4.shared.b16").And.Contain("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16")
            .And.Contain("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16").And.Contain("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16")
            .And.Contain("cp.async.ca.shared.global").And.Contain("cp.async.cg.shared.global").And.Contain("cp.async.commit_group")
            .And.Contain("cp.async.wait_group").And.Contain("cp.async.wait_all")
            .And.Contain("cvt.rna.tf32.f32").And.Contain("cvt.rn.bf16x2.f32"), "PTX of the test kernels");
        Assert.That(ptx, Does.Match(@"ld\.global(\.nc)?\.v4\.").And.Match(@"st\.global\.v4\."), "load_float4 / store_float4 as one 16-byte access");
    }

    [Test]
    public void A_compile_error_reports_the_file_and_the_log()
    {
        RequireNvrtc();
        var ex = Assert.Throws<CudaException>(() => RuntimeCompiler.Compile("broken.cu", "extern \"C\" __global__ void k() { undefined_thing(); }",
            new Dictionary<string, string>(), "sm_80"));
        Assert.That(ex!.Message, Does.Contain("broken.cu").And.Contain("undefined_thing"));
    }

    [Test]
    public void The_cache_compiles_once_and_rebuilds_a_corrupt_entry()
    {
        RequireNvrtc();
        string dir = Path.Combine(Path.GetTempPath(), "ghostnet-kc-" + Guid.NewGuid().ToString("N"));
        try
        {
            var first = new KernelCache(dir);
            var code = first.GetOrCompile("sgd.cu", "sm_80");
            Assert.That(first.Compilations, Is.EqualTo(1));
            var second = new KernelCache(dir);
            Assert.That(second.GetOrCompile("sgd.cu", "sm_80"), Is.EqualTo(code));
            Assert.That(second.Compilations, Is.Zero, "a second start compiles nothing");
            var entry = Directory.GetFiles(dir).Single();
            var bytes = File.ReadAllBytes(entry);
            File.WriteAllBytes(entry, bytes[..(bytes.Length / 2)]);
            var third = new KernelCache(dir);
            Assert.That(third.GetOrCompile("sgd.cu", "sm_80"), Is.EqualTo(code));
            Assert.That(third.Compilations, Is.EqualTo(1), "a truncated entry is rebuilt");
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}

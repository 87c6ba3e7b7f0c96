using System.Globalization;
using GhostNet.Backends;
using GhostNet.Cuda;
using GhostNet.Tests.Data;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// The CI gate on what ptxas gives each kernel (NVRTC -Xptxas=-v, sm_80 and sm_90): registers
/// per thread, stack frame and spill bytes may not exceed the committed budget in
/// kernel-resources.txt, every kernel needs a row, and no row may name a kernel that is gone.
/// A kernel that regresses (a new spill, an accumulator array moved to local memory, registers
/// that halve its blocks per SM) fails here, on every submission, without a GPU.
/// </summary>
public class KernelResourceTests
{
    private const int BlockThreads = 256; // every launch of the CUDA backend (CudaBackend.Threads)

    private sealed record Budget(int Registers, int Stack, int SpillStores, int SpillLoads);

    private static Dictionary<(string Arch, string Kernel), Budget> Budgets()
    {
        var budgets = new Dictionary<(string, string), Budget>();
        foreach (var line in File.ReadLines(Path.Combine(RepositoryData.Repository(), "tests", "GhostNet.Tests", "Cuda", "kernel-resources.txt")))
        {
            if (line.StartsWith('#') || line.Trim().Length == 0) continue;
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            int At(int i) => int.Parse(f[i], CultureInfo.InvariantCulture);
            budgets.Add((f[0], f[1]), new Budget(At(2), At(3), At(4), At(5)));
        }
        return budgets;
    }

    [TestCase("sm_80")]
    [TestCase("sm_90")]
    public void Every_kernel_stays_within_its_register_stack_and_spill_budget(string arch)
    {
        KernelCompileTests.RequireNvrtc();
        var budgets = Budgets();
        var failures = new List<string>();
        var seen = new HashSet<string>();
        foreach (var type in new[] { ElementType.Float32, ElementType.BFloat16 })
        foreach (var file in KernelSources.FilesFor(type))
        foreach (var k in RuntimeCompiler.CompileWithResources(file, KernelSources.Source(file), KernelSources.Headers, arch, KernelSources.Defines(type)).Kernels)
        {
            string kernel = type == ElementType.Float32 ? k.Kernel : $"{k.Kernel}@{type.Name()}"; // a bf16 variant has a row of its own
            seen.Add(kernel);
            string now = $"{arch} {kernel} {k.Registers} {k.StackBytes} {k.SpillStoreBytes} {k.SpillLoadBytes}";
            TestContext.Out.WriteLine($"{now}  ({KernelResources.RegistersPerSm / (k.Registers * BlockThreads)} blocks of {BlockThreads} per SM by registers)");
            if (k.Registers * BlockThreads > KernelResources.RegistersPerSm) failures.Add($"{now}: {BlockThreads} threads need more than an SM's registers");
            if (!budgets.TryGetValue((arch, kernel), out var b)) failures.Add($"{now}: no budget row (add this line to kernel-resources.txt)");
            else if (k.Registers > b.Registers || k.StackBytes > b.Stack || k.SpillStoreBytes > b.SpillStores || k.SpillLoadBytes > b.SpillLoads)
                failures.Add($"{now}: over its budget {b.Registers} {b.Stack} {b.SpillStores} {b.SpillLoads}");
        }
        foreach (var (key, _) in budgets.Where(b => b.Key.Arch == arch && !seen.Contains(b.Key.Kernel)))
            failures.Add($"{key.Arch} {key.Kernel}: a budget row for a kernel that no longer exists");
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    /// <summary>
    /// The one-warp GEMM tiles of WarpMatrixTests (cp.async + ldmatrix + mma, the building block
    /// of the tensor-core GEMM) keep their fragments and accumulators in registers: no stack frame,
    /// no spills, as the kernels built from them must.
    /// </summary>
    [TestCase("sm_80")]
    [TestCase("sm_90")]
    public void The_tensor_core_tiles_keep_their_fragments_in_registers(string arch)
    {
        KernelCompileTests.RequireNvrtc();
        var kernels = RuntimeCompiler.CompileWithResources("warp_matrix.cu", WarpMatrixTests.Source, KernelSources.Headers, arch).Kernels;
        foreach (var name in new[] { "gemm_tf32_tile", "gemm_bf16_tile", "mma_tf32", "mma_bf16", "ldmatrix_rows" })
        {
            var k = kernels.Single(r => r.Kernel == name);
            TestContext.Out.WriteLine($"{arch} {k.Kernel} {k.Registers} {k.StackBytes} {k.SpillStoreBytes} {k.SpillLoadBytes}");
            Assert.That((k.StackBytes, k.SpillStoreBytes, k.SpillLoadBytes), Is.EqualTo((0, 0, 0)), $"{name}: stack frame and spills");
        }
    }

    [Test]
    public void The_ptxas_report_is_read_per_kernel()
    {
        const string log = """
            ptxas info    : 0 bytes gmem
            ptxas info    : Compiling entry function 'gemm_f32' for 'sm_90'
            ptxas info    : Function properties for gemm_f32
            ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Used 168 registers, 384 bytes cmem[0]
            ptxas info    : Compiling entry function 'depthwise_conv_bwd_weight' for 'sm_90'
            ptxas info    : Function properties for depthwise_conv_bwd_weight
            ptxas         .     104 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
            ptxas info    : Used 40 registers, 424 bytes cmem[0]
            """;
        Assert.That(KernelResources.Parse(log), Is.EqualTo(new[]
        {
            new KernelResources("gemm_f32", 168, 0, 0, 0), new KernelResources("depthwise_conv_bwd_weight", 40, 104, 8, 12),
        }));
    }
}

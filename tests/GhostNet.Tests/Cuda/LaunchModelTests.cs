using GhostNet.Backends;
using GhostNet.Cuda;
using GhostNet.Models;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// The launch model without a GPU: a <see cref="CudaBackend.ForModel"/> backend runs the CUDA
/// backend's host code, records every launch with its modelled cost and issues nothing. The
/// emulator checks that it records what a real backend launches (LaunchRecorderGpuTests).
/// </summary>
public class LaunchModelTests
{
    private static readonly CudaDeviceInfo H200 = GpuFigures.H200.AsDevice();

    private static Tensor New(IBackend backend, int n, int c, int h, int w)
    {
        var s = new Storage($"t{n}x{c}x{h}x{w}", (long)n * c * h * w).WithGradient();
        s.Bind(backend);
        return new Tensor(s, 0, n, c, h, w);
    }

    private static BatchNormTensors Norm(IBackend backend, int c) =>
        new(New(backend, 1, c, 1, 1), New(backend, 1, c, 1, 1), New(backend, 1, c, 1, 1), New(backend, 1, c, 1, 1), New(backend, 1, c, 1, 1), New(backend, 1, c, 1, 1));

    private static string[] Kernels(LaunchRecorder r) => r.Launches.Select(l => l.Kernel).ToArray();

    [Test]
    public void Tensor_core_precisions_are_refused_before_sm_80()
    {
        using var turing = CudaBackend.ForModel(new CudaDeviceInfo(0, "Tesla T4", 7, 5, 40, 16L << 30));
        Assert.That(() => turing.Precision = GemmPrecision.Tf32, Throws.ArgumentException.With.Message.Contains("compute capability 8.0"));
        Assert.That(() => turing.Precision = GemmPrecision.Tf32x3, Throws.ArgumentException);
        turing.Precision = GemmPrecision.Fp32;
        using var hopper = CudaBackend.ForModel(H200);
        hopper.Precision = GemmPrecision.Tf32;
        Assert.That(hopper.Precision, Is.EqualTo(GemmPrecision.Tf32));
    }

    [Test]
    public void A_pointwise_conv_is_one_gemm_of_2MNK_flops_that_reads_each_operand_once()
    {
        using var gpu = CudaBackend.ForModel(H200);
        int n = 3, cin = 16, cout = 24, p = 10 * 10;
        Tensor x = New(gpu, n, cin, 10, 10), w = New(gpu, cout, cin, 1, 1), y = New(gpu, n, cout, 10, 10);
        gpu.Recorder!.Reset();
        gpu.PointwiseConvForward(x, w, y);
        var l = gpu.Recorder.Launches.Single();
        Assert.That(l.Kernel, Is.EqualTo("gemm_f32_32x128"), "the tile that pads 24 x 100 least");
        Assert.That(l.Family, Is.EqualTo(OpFamily.PointwiseConvForward));
        Assert.That((l.GridX, l.GridY, l.GridZ), Is.EqualTo((1u, 1u, 3u)), "one 32x128 tile of the 24 x 100 output, one matrix per image");
        Assert.That(l.Cost.Flops, Is.EqualTo(2L * cout * p * cin * n), "2 M N K per image");
        Assert.That(l.Cost.Bytes, Is.EqualTo(4L * (cout * cin + (long)cin * p * n + (long)cout * p * n)), "W once for the batch, X and Y once");
        Assert.That(l.Cost.Precision, Is.EqualTo(Precision.Fp32));

        // Backward: dX = W^T dY and dW = sum_n dY X^T, each 2 M N K in all, however dW is split.
        gpu.Recorder.Reset();
        gpu.PointwiseConvBackward(x, w, y.Grad, x.Grad, false, w.Grad);
        long gemmFlops = gpu.Recorder.Launches.Where(r => r.Kernel.StartsWith("gemm_f32")).Sum(r => r.Cost.Flops);
        Assert.That(gemmFlops, Is.EqualTo(2 * (2L * cout * p * cin * n)));
        Assert.That(gpu.Recorder.Launches.Select(r => r.Family), Is.All.EqualTo(OpFamily.PointwiseConvBackward));
    }

    [Test]
    public void A_linear_layer_is_a_gemm_of_2MNK_flops_with_its_bias_read_once()
    {
        using var gpu = CudaBackend.ForModel(H200);
        int n = 5, k = 40, m = 7;
        Tensor x = New(gpu, n, k, 1, 1), w = New(gpu, m, k, 1, 1), b = New(gpu, 1, m, 1, 1), y = New(gpu, n, m, 1, 1);
        gpu.Recorder!.Reset();
        gpu.LinearForward(x, w, b, y);
        var l = gpu.Recorder.Launches.Single();
        Assert.That(l.Cost.Flops, Is.EqualTo(2L * n * m * k));
        Assert.That(l.Cost.Bytes, Is.EqualTo(4L * (n * k + k * m + m + n * m)));
        Assert.That(l.Family, Is.EqualTo(OpFamily.Linear));
    }

    [Test]
    public void Known_ops_launch_the_kernels_their_design_gives_them()
    {
        using var gpu = CudaBackend.ForModel(H200);
        // Batch norm: with fewer channels than 2 x 132 SMs the statistics are split, and each
        // channel's last block combines the parts (no finish kernel since v2).
        Tensor x = New(gpu, 4, 8, 64, 64), y = New(gpu, 4, 8, 64, 64);
        gpu.Recorder!.Reset();
        gpu.BatchNormTrainForward(x, y, Norm(gpu, 8), new BatchNormOptions());
        Assert.That(Kernels(gpu.Recorder), Is.EqualTo(new[] { "batch_norm_stats", "batch_norm_apply" }));
        Assert.That(gpu.Recorder.Launches[0].GridY, Is.GreaterThan(1u), "split into chunks");
        Assert.That(gpu.Recorder.Launches[0].Cost.Bytes, Is.EqualTo(4 * (x.Count + 6 * 8) + 2 * 8L * 3 * 8 * gpu.Recorder.Launches[0].GridY),
            "x read once, four statistics written and two read, three double parts per chunk of each channel written and read back");
        Tensor wide = New(gpu, 2, 300, 2, 2), wideY = New(gpu, 2, 300, 2, 2);
        gpu.Recorder.Reset();
        gpu.BatchNormTrainForward(wide, wideY, Norm(gpu, 300), new BatchNormOptions());
        Assert.That(Kernels(gpu.Recorder), Is.EqualTo(new[] { "batch_norm_stats", "batch_norm_apply" }), "300 channels fill the device unsplit");

        // Dense conv: im2col + GEMM per chunk of images that fits the workspace (2 of 5 images here: 3 chunks).
        Tensor cx = New(gpu, 5, 3, 8, 8), cw = New(gpu, 4, 3, 3, 3), cy = New(gpu, 5, 4, 8, 8);
        gpu.ConvWorkspaceBytes = 2 * 27 * 64 * 4;
        gpu.Recorder.Reset();
        gpu.ConvForward(cx, cw, cy, new ConvGeometry(3, 1, 1));
        Assert.That(Kernels(gpu.Recorder), Is.EqualTo(new[] { "im2col", "gemm_f32_16x16", "im2col", "gemm_f32_16x16", "im2col", "gemm_f32_16x16" }));
        var im2col = gpu.Recorder.Launches[0];
        Assert.That(im2col.Cost.Bytes, Is.EqualTo(4L * (2 * 3 * 64 + 2 * 27 * 64)), "the chunk's input read, its columns written");
        var gemm = gpu.Recorder.Launches[1];
        Assert.That(gemm.Cost.Bytes, Is.EqualTo(4L * (4 * 27 + 2 * 27 * 64 + 2 * 4 * 64)), "the GEMM reads the columns again");
        Assert.That(gpu.Recorder.Launches.Where(l => l.Kernel.StartsWith("gemm_f32")).Sum(l => l.Cost.Flops), Is.EqualTo(2L * 4 * 64 * 27 * 5));
    }

    [Test]
    public void A_roofline_time_is_the_larger_of_bytes_over_bandwidth_and_flops_over_the_peak_of_its_precision()
    {
        var f = GpuFigures.H200;
        LaunchRecord L(string kernel, string family, long bytes, long flops, Precision p) => new(kernel, family, 1, 1, 1, 256, new LaunchCost(bytes, flops, p));
        var launches = new[]
        {
            L("a", OpFamily.Elementwise, 4_300_000_000, 1_000, Precision.Fp32), // 1 ms of DRAM
            L("b", OpFamily.PointwiseConvForward, 1_000, 67_000_000_000, Precision.Fp32), // 1 ms of fp32
            L("b", OpFamily.PointwiseConvForward, 430_000_000, 495_000_000_000, Precision.Tf32), // 0.1 ms DRAM, 1 ms tf32
            L("c", OpFamily.PointwiseConvBackward, 2_150_000_000, 495_000_000_000, Precision.Bf16), // 0.5 ms DRAM, 0.5 ms bf16
        };
        Assert.That(CostSummary.Roofline(launches[0].Cost, f), Is.EqualTo(1e-3).Within(1e-12));
        Assert.That(CostSummary.Roofline(launches[1].Cost, f), Is.EqualTo(1e-3).Within(1e-12));
        Assert.That(CostSummary.Roofline(launches[2].Cost, f), Is.EqualTo(1e-3).Within(1e-12));
        Assert.That(CostSummary.Roofline(launches[3].Cost, f), Is.EqualTo(0.5e-3).Within(1e-12));
        var s = new CostSummary(launches, f);
        Assert.That(s.Total.Launches, Is.EqualTo(4));
        Assert.That(s.Total.RooflineSeconds, Is.EqualTo(3.5e-3).Within(1e-12));
        Assert.That(s.Total.DramSeconds, Is.EqualTo(1.6e-3).Within(1e-9));
        Assert.That(s.Total.MathSeconds, Is.EqualTo(2.5e-3).Within(1e-9));
        Assert.That(s.OverheadSeconds(s.Total), Is.EqualTo(4 * f.LaunchOverheadSeconds));
        var pointwise = s.Families.Single(r => r.Name == OpFamily.PointwiseConvForward);
        Assert.That((pointwise.Launches, pointwise.RooflineSeconds), Is.EqualTo((2L, 2e-3)).Using<(long, double)>((a, b) => a.Item1 == b.Item1 && Math.Abs(a.Item2 - b.Item2) < 1e-12));
        Assert.That(s.Families.Select(r => r.Name), Is.EqualTo(new[] { OpFamily.PointwiseConvForward, OpFamily.PointwiseConvBackward, OpFamily.Elementwise }),
            "families in OpFamily.All's order");
    }

    [Test]
    public void The_device_table_picks_figures_by_the_drivers_device_name()
    {
        Assert.That(GpuFigures.ForDevice("NVIDIA H200")!.Key, Is.EqualTo("H200"));
        Assert.That(GpuFigures.ForDevice("NVIDIA H100 80GB HBM3")!.Key, Is.EqualTo("H100"));
        Assert.That(GpuFigures.ForDevice("NVIDIA H100 PCIe")!.Key, Is.EqualTo("H100-PCIe"));
        Assert.That(GpuFigures.ForDevice("NVIDIA A100-SXM4-80GB")!.Key, Is.EqualTo("A100"));
        Assert.That(GpuFigures.ForDevice("NVIDIA A100-PCIE-40GB")!.Key, Is.EqualTo("A100-40GB"));
        Assert.That(GpuFigures.ForDevice("GhostNet CUDA emulator (host CPU)"), Is.Null, "the emulator is not a GPU: the caller falls back to H200");
        Assert.That(GpuFigures.Named("h100-pcie").Multiprocessors, Is.EqualTo(114));
        Assert.That(() => GpuFigures.Named("V100"), Throws.ArgumentException.With.Message.Contains("H200, H100"));
        var h200 = GpuFigures.H200;
        Assert.That((h200.DramBytesPerSecond, h200.Fp32FlopsPerSecond, h200.Tf32FlopsPerSecond, h200.Bf16FlopsPerSecond),
            Is.EqualTo((4.3e12, 67e12, 495e12, 990e12)), "the issue's H200 figures");
    }

    [Test]
    public void The_totals_of_a_training_step_are_the_sums_of_its_families_and_of_its_kernels()
    {
        var recorder = TrainingStepModel.Record(new GhostNetConfig(Width: 0.5f, NumClasses: 10), 4, 64, H200);
        var s = new CostSummary(recorder.Launches, GpuFigures.H200);
        Assert.That(s.Total.Launches, Is.EqualTo(recorder.Launches.Count).And.GreaterThan(300));
        foreach (var rows in new[] { s.Families, s.Kernels })
        {
            Assert.That(rows.Sum(r => r.Launches), Is.EqualTo(s.Total.Launches));
            Assert.That(rows.Sum(r => r.Bytes), Is.EqualTo(s.Total.Bytes));
            Assert.That(rows.Sum(r => r.Flops), Is.EqualTo(s.Total.Flops));
            Assert.That(rows.Sum(r => r.RooflineSeconds), Is.EqualTo(s.Total.RooflineSeconds).Within(1e-9 * s.Total.RooflineSeconds));
            Assert.That(rows.Sum(r => r.DramSeconds), Is.EqualTo(s.Total.DramSeconds).Within(1e-9 * s.Total.DramSeconds));
        }
        Assert.That(s.Families.Select(r => r.Name), Is.SubsetOf(OpFamily.All), "every launch belongs to an op family");
        Assert.That(s.Total.RooflineSeconds, Is.GreaterThanOrEqualTo(Math.Max(s.Total.DramSeconds, s.Total.MathSeconds)));
        Assert.That(s.Total.RooflineSeconds, Is.LessThanOrEqualTo(s.Total.DramSeconds + s.Total.MathSeconds));
        // Forward FLOPs alone: 2 x the multiply-adds the layer table counts (each a GEMM or a stencil), so the step is over 2x that.
        Assert.That(s.Total.Flops, Is.GreaterThan(2 * 2 * 4 * GhostNetModel.Describe(new GhostNetConfig(Width: 0.5f, NumClasses: 10), 64, 64).Sum(l => l.MultiplyAdds)));
    }

    // What the v2.5-v2.10 fusions leave of a GhostNet 1.0x step (ForModel, no device): every
    // depthwise conv sums its batch norm's statistics and computes that batch norm's input
    // gradient in its own backward, so does each pointwise conv (v2.9, v2.10: batch_norm_stats and
    // batch_norm_bwd_data are left to the stem's batch norm), split-K pieces are summed in the GEMM
    // (v2.8), the only copies left are the identity shortcuts' (the sum shares its gradient
    // with ghost2 and a projecting shortcut), and each Ghost module's cheap operation applies the
    // primary batch norm as it reads its input (v2.11) and reduces its gradient as it writes it (v2.12), both in one pass over the cheap operation's gradients (v2.13);
    // no sum has a launch of its own (v2.16), nor has an activation's backward (v2.17).
    [Test]
    public void A_ghostnet_step_fuses_each_depthwise_and_pointwise_conv_with_its_batch_norm_and_copies_only_for_identity_shortcuts()
    {
        var config = new GhostNetConfig(Width: 1f, NumClasses: 1000);
        var recorder = TrainingStepModel.Record(config, 2, 224, H200);
        int Count(string kernel) => recorder.Launches.Count(l => l.Kernel == kernel);
        int Prefixed(string prefix) => recorder.Launches.Count(l => l.Kernel.StartsWith(prefix));
        var layers = GhostNetModel.Describe(config, 224, 224);
        int depthwise = layers.Count(l => l.Kind.StartsWith("depthwise conv")), batchNorms = layers.Count(l => l.Kind.StartsWith("batch norm"));
        Assert.That(depthwise, Is.EqualTo(41));
        Assert.That(Prefixed("depthwise_conv_fwd_stats"), Is.EqualTo(depthwise), "every depthwise forward sums its batch norm's statistics");
        Assert.That(Prefixed("depthwise_conv_fwd") - Prefixed("depthwise_conv_fwd_stats"), Is.Zero, "no unfused depthwise forward");
        int ghostModules = layers.Count(l => l.Name.EndsWith(".cheap_operation.0"));
        Assert.That(ghostModules, Is.EqualTo(32));
        Assert.That(Prefixed("depthwise_conv_fwd_stats_apply"), Is.EqualTo(ghostModules), "each cheap operation applies the primary batch norm");
        Assert.That(Count("batch_norm_apply"), Is.EqualTo(batchNorms - ghostModules), "a batch_norm_apply for every batch norm but the primary ones");
        // The cheap operations and the shortcut of the stride-1 bottleneck that changes width.
        int stride1 = layers.Count(l => l.Kind.StartsWith("depthwise conv") && l.Kind.Contains(" s1 "));
        Assert.That(stride1, Is.EqualTo(ghostModules + 1));
        Assert.That(Prefixed("depthwise_conv_bwd_both_bn"), Is.EqualTo(stride1), "each stride-1 depthwise backward is one pass (v2.13), the cheap operations' reducing the primary batch norm");
        Assert.That(Count("batch_norm_bwd_reduce"), Is.EqualTo(batchNorms - ghostModules), "a batch_norm_bwd_reduce for every batch norm but the primary ones");
        // 32 Ghost modules' primary convs, 5 projecting shortcuts' 1x1s and blocks.9: every pointwise conv has a batch norm.
        int pointwise = layers.Count(l => l.Kind.StartsWith("pointwise conv"));
        Assert.That(pointwise, Is.EqualTo(38));
        Assert.That(Count("batch_norm_bwd_data"), Is.EqualTo(batchNorms - depthwise - pointwise),
            "the depthwise and pointwise backwards compute their batch norm's input gradient themselves (only the stem's is written)");
        Assert.That(Count("batch_norm_stats"), Is.EqualTo(batchNorms - depthwise - pointwise), "the depthwise and pointwise convs compute their batch norm's statistics (v2.5, v2.10)");
        Assert.That(Prefixed("gemm_f32_bn_"), Is.EqualTo(2 * pointwise), "each pointwise conv's data and weight gradient GEMMs");
        Assert.That(Prefixed("gemm_f32_stats_"), Is.EqualTo(pointwise), "each pointwise conv's forward GEMM");
        Assert.That(Count("split_sum"), Is.Zero, "split-K pieces are summed in the GEMM (v2.8)");
        Assert.That((Prefixed("depthwise_conv_bwd_data_bn"), Prefixed("depthwise_conv_bwd_weight_bn")), Is.EqualTo((depthwise - stride1, depthwise - stride1)),
            "the other depthwise convs (stride 2) run the data and weight kernels");
        Assert.That(Prefixed("depthwise_conv_bwd") - 2 * depthwise + stride1, Is.Zero, "no unfused depthwise backward");
        int bottlenecks = layers.Count(l => l.Kind == "ghost bottleneck (sum)"), projecting = layers.Count(l => l.Name.EndsWith(".shortcut.3"));
        Assert.That((bottlenecks, projecting), Is.EqualTo((16, 5)));
        Assert.That(Count("copy_or_accumulate"), Is.EqualTo(bottlenecks - projecting), "one copy per identity shortcut, none into ghost2 or a projection");
        Assert.That(Count("add_views"), Is.Zero, "each bottleneck's sum is written in place of its last output (v2.16)");
        Assert.That((Count("relu_fwd"), Count("hard_sigmoid_fwd")), Is.EqualTo((0, 0)), "the linear layers' GEMMs apply the ReLUs and the gates (v2.14)");
        Assert.That((Count("relu_bwd"), Count("hard_sigmoid_bwd")), Is.EqualTo((0, 0)), "the bias gradients' column sums differentiate the ReLUs and the gates (v2.17)");
        int se = layers.Count(l => l.Name.EndsWith(".se.conv_reduce"));
        Assert.That(se, Is.EqualTo(7));
        Assert.That((Count("channel_scale_pool_bwd"), Count("channel_scale"), Count("broadcast_plane")), Is.EqualTo((se, 0, 1)),
            "squeeze-excite's input gradient in one pass (v2.15), its gate in ghost2's GEMMs (v2.18): broadcast_plane only for the head's pool");
        Assert.That((Prefixed("gemm_f32_stats_gate_"), Prefixed("gemm_f32_bn_gate_")), Is.EqualTo((se, se)), "ghost2's forward and weight-gradient GEMMs scale squeeze-excite's input (v2.18)");
    }

    [Test]
    public void Each_launch_is_counted_under_the_family_the_profiling_backend_times_its_call_under()
    {
        using var gpu = CudaBackend.ForModel(H200);
        using var profiled = new ProfilingBackend(gpu, ownsInner: false);
        using var model = new GhostNetModel(new GhostNetConfig(Width: 0.25f, NumClasses: 10), profiled, seed: 0);
        using var plan = model.Compile(2, 32, 32);
        var sgd = new SgdOptimizer(model.Parameters, profiled, new SgdOptions());
        gpu.Recorder!.Reset();
        profiled.Reset();
        plan.SetBatch(new float[2 * 3 * 32 * 32], [1, 2]);
        TrainingStepModel.Step(plan, sgd);
        plan.CountCorrect();
        var calls = gpu.Recorder.Calls;
        foreach (var (family, (count, _)) in profiled.Times)
            Assert.That(calls.GetValueOrDefault(family), Is.EqualTo(count), $"calls of {family}");
        Assert.That(calls.Keys, Is.EquivalentTo(profiled.Times.Keys));
        Assert.That(gpu.Recorder.Launches.Select(l => l.Family).Distinct(), Is.SubsetOf(calls.Keys));
        Assert.That(calls.Keys, Does.Contain(OpFamily.Upload).And.Contain(OpFamily.Download).And.Contain(OpFamily.Head));
    }

    [Test]
    public void A_model_only_backend_issues_nothing_backs_nothing_and_models_a_17_GB_step()
    {
        using var gpu = CudaBackend.ForModel(H200);
        Assert.That(gpu.IsModelOnly && !gpu.IssueLaunches);
        Assert.That(() => gpu.IssueLaunches = true, Throws.InvalidOperationException);
        var t = New(gpu, 1, 4, 1, 1);
        gpu.Upload([1f, 2f, 3f, 4f], t);
        var back = new float[4];
        gpu.Download(t, back);
        Assert.That(back, Is.All.NaN, "nothing was computed, so nothing comes back");
        Assert.That(gpu.IssuedLaunches, Is.Zero);

        // GhostNet 1.0x at 224, batch 256: a plan of ~17 GB that neither the emulator (16 GiB) nor this machine could hold.
        var config = new GhostNetConfig();
        Assert.That(GhostNetModel.PlanBytes(config, 256, 224, 224, withGradients: true), Is.GreaterThan(16_000_000_000L));
        long before = GC.GetTotalMemory(false);
        var recorder = TrainingStepModel.Record(config, 256, 224, H200);
        Assert.That(recorder.Launches.Count, Is.InRange(300, 3000));
        Assert.That(GC.GetTotalMemory(false) - before, Is.LessThan(1L << 30), "host memory stays small");
        var s = new CostSummary(recorder.Launches, GpuFigures.H200);
        TestContext.Out.WriteLine($"1.0x at 224, batch 256: {s.Total.Launches} launches, {s.Total.Bytes / 1e6 / 256:F1} MB per image, " +
                                  $"{s.Total.Flops / 1e9:F1} GFLOP, roofline {s.Total.RooflineSeconds * 1e3:F2} ms");
    }
}

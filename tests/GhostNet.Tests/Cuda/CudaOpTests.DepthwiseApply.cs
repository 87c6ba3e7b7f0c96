using GhostNet.Backends;
using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

public partial class CudaOpTests
{
    // depthwise_conv_fwd_stats_apply (v2.11) applies the batch norm of its input (the Ghost
    // module's primary one) to every tap it reads and writes that batch norm's output from the
    // centre taps. It must equal the unfused launches (batch_norm_apply, then
    // depthwise_conv_fwd_stats) exactly: the input batch norm's output (a channel window of a
    // wider buffer, the concat, whose other channels stay untouched), z, y and the statistics;
    // and match the CPU. Cases: k3s1, k5s1, the generic kernel (k 1, k 7), channel multiplier 2 and
    // 3 (the first of an input's output channels writes it), ReLU on the input's and the output's
    // batch norms or not, split statistics (2-3 chunks on the emulator's 4 SMs) and unsplit; at
    // stride 2 (and at k 4, whose padding is not "same") the input's output is not every centre
    // tap, so the unfused launches run.
    [TestCase(4, 3, 64, 64, 3, 1, 1, Activation.Relu, Activation.Relu)]
    [TestCase(2, 24, 14, 13, 3, 1, 1, Activation.Relu, Activation.None)]
    [TestCase(3, 8, 15, 15, 5, 1, 1, Activation.None, Activation.Relu)]
    [TestCase(8, 3, 40, 40, 5, 1, 2, Activation.Relu, Activation.None)]
    [TestCase(2, 5, 9, 9, 1, 1, 1, Activation.None, Activation.None)]
    [TestCase(1, 4, 11, 10, 7, 1, 3, Activation.Relu, Activation.Relu)]
    [TestCase(2, 6, 16, 11, 5, 2, 1, Activation.Relu, Activation.None)]
    [TestCase(2, 5, 9, 9, 4, 1, 1, Activation.Relu, Activation.None)]
    public void Depthwise_conv_applying_its_input_batch_norm_equals_the_unfused_launches(int n, int cin, int h, int w, int k, int stride, int multiplier, Activation inputAct, Activation act)
    {
        using var t = GpuHarness.Create();
        int cout = cin * multiplier;
        var g = new ConvGeometry(k, stride, (k - 1) / 2);
        int ho = g.OutputSize(h), wo = g.OutputSize(w);
        bool fusible = stride == 1 && k % 2 == 1;
        // The input batch norm: its input, saved statistics as its training forward left them,
        // and its output, a window of the concat as in the Ghost module.
        var x = t.Random(n, cin, h, w, 2f, 0.5f);
        var input = BatchNormTwins.Saved(t, cin);
        var io = new BatchNormOptions(Activation: inputAct);
        var filters = t.Random(cout, 1, k, k);
        var gamma = t.Random(cout, 1, 1, 1, 0.5f, 1f);
        var beta = t.Random(cout, 1, 1, 1);
        float[] runningMean = t.Values(cout), runningVar = t.Values(cout, 0.5f, 1f);
        var o = new BatchNormOptions(Activation: act);
        float[] concatBefore = t.Values(n * (cin + 2) * h * w);
        var (fused, unfused) = (Path(), Path());
        (GpuHarness.Twin Concat, GpuHarness.Twin Z, GpuHarness.Twin Y, GpuHarness.Twin[] Stats, BatchNormTensors Gpu, BatchNormTensors Cpu) Path()
        {
            var stats = new[] { t.New(cout, 1, 1, 1), t.New(cout, 1, 1, 1), t.New(cout, 1, 1, 1), t.New(cout, 1, 1, 1) };
            t.Set(stats[2], runningMean);
            t.Set(stats[3], runningVar);
            return (t.New(n, cin + 2, h, w), t.New(n, cout, ho, wo), t.New(n, cout, ho, wo), stats,
                new(gamma.G, beta.G, stats[2].G, stats[3].G, stats[0].G, stats[1].G),
                new(gamma.C, beta.C, stats[2].C, stats[3].C, stats[0].C, stats[1].C));
        }
        t.Gpu.Recorder = new LaunchRecorder();
        foreach (var (path, apply) in new[] { (fused, true), (unfused, false) })
        {
            t.Gpu.ApplyBatchNormInDepthwise = apply;
            t.Set(path.Concat, concatBefore);
            t.Poison(path.Concat.Channels(1, cin));
            t.Poison(path.Z);
            t.Poison(path.Y);
            var y0 = path.Concat.Channels(1, cin);
            t.Gpu.DepthwiseConvBatchNormForward(new NormalizedInput(x.G, y0.G, input.Gpu, io), filters.G, path.Z.G, g, path.Y.G, path.Gpu, o);
            t.Cpu.DepthwiseConvBatchNormForward(new NormalizedInput(x.C, y0.C, input.Cpu, io), filters.C, path.Z.C, g, path.Y.C, path.Cpu, o);
        }
        t.Gpu.ApplyBatchNormInDepthwise = true;
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).Where(k => k != "fill_view").ToArray(); // less the poisoning
        t.Gpu.Recorder = null;
        int variant = CudaBackend.DepthwiseVariant(g);
        string[] unfusedKernels = ["batch_norm_apply", CudaBackend.DepthwiseKernels[3][variant], "batch_norm_apply"];
        string[] fusedKernels = fusible ? [CudaBackend.DepthwiseKernels[6][variant], "batch_norm_apply"] : unfusedKernels;
        Assert.That(kernels, Is.EqualTo(fusedKernels.Concat(unfusedKernels)));

        float[] Read(in GpuHarness.Twin v) => GpuHarness.Get(t.Gpu, v.G);
        Assert.That(Read(fused.Concat), Is.EqualTo(Read(unfused.Concat)), "the input batch norm's output, and the concat's other channels");
        Assert.That(Read(fused.Z), Is.EqualTo(Read(unfused.Z)), "z");
        Assert.That(Read(fused.Y), Is.EqualTo(Read(unfused.Y)), "y");
        string[] names = ["saved mean", "saved invstd", "running mean", "running var"];
        for (int i = 0; i < 4; i++) Assert.That(Read(fused.Stats[i]), Is.EqualTo(Read(unfused.Stats[i])), names[i]);
        t.Compare("the input batch norm's output (in the concat)", fused.Concat);
        t.Compare("z", fused.Z);
        t.Compare("y", fused.Y);
        for (int i = 0; i < 4; i++) t.Compare(names[i], fused.Stats[i]);
    }
}

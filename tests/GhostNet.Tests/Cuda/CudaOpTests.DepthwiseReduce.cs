using GhostNet.Backends;
using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

public partial class CudaOpTests
{
    // depthwise_conv_bwd_data_reduce (v2.12) is the data gradient through the cheap operation's
    // batch norm that also reduces the parameter gradients of the batch norm whose output it read
    // (the primary one), from the input gradient as it adds to it. Everything must equal the
    // unfused launches (the _bn data gradient, then batch_norm_bwd_reduce on the finished input
    // gradient) exactly: the input gradient (a channel window of the concat's gradient, added to,
    // its other channels untouched), dW, both batch norms' dgamma and dbeta; and match the CPU.
    // So must the one-pass backward (v2.13) where it applies (stride 1, same padding, multiplier 1),
    // which reduces the input batch norm too. Cases: k3s1, k5s1, the generic kernel (k 4; stride
    // 2; the one-pass generic kernel at k 1, whose dW is compared between the GPU paths only: see
    // the v2.7 test), channel multiplier 2, ReLU on either batch norm, split reductions (2-3
    // chunks on the emulator's 4 SMs) and unsplit.
    [TestCase(4, 3, 64, 64, 3, 1, 1, Activation.Relu, Activation.Relu)]
    [TestCase(2, 24, 14, 13, 3, 1, 1, Activation.None, Activation.Relu)]
    [TestCase(3, 8, 15, 15, 5, 1, 1, Activation.Relu, Activation.None)]
    [TestCase(8, 3, 40, 40, 5, 1, 2, Activation.Relu, Activation.Relu)]
    [TestCase(2, 6, 16, 11, 5, 2, 1, Activation.Relu, Activation.None)]
    [TestCase(2, 5, 9, 9, 4, 1, 1, Activation.None, Activation.None)]
    [TestCase(3, 4, 40, 40, 1, 1, 1, Activation.Relu, Activation.Relu)]
    public void Depthwise_conv_backward_reducing_its_input_batch_norm_equals_the_unfused_launches(int n, int cin, int h, int w, int k, int stride, int multiplier, Activation inputAct, Activation act)
    {
        using var t = GpuHarness.Create();
        int cout = cin * multiplier;
        var g = new ConvGeometry(k, stride, (k - 1) / 2);
        int ho = g.OutputSize(h), wo = g.OutputSize(w);
        // The input batch norm (its input z0, saved statistics, its output in a concat window), and
        // the conv's own pair, run forward on each device.
        var z0 = t.Random(n, cin, h, w, 2f, 0.5f);
        var input = BatchNormTwins.Saved(t, cin);
        var io = new BatchNormOptions(Activation: inputAct);
        var concat = t.New(n, cin + 2, h, w);
        var x = concat.Channels(1, cin);
        var filters = t.Random(cout, 1, k, k);
        var z = t.New(n, cout, ho, wo);
        var y = t.New(n, cout, ho, wo);
        var bn = BatchNormTwins.Create(t, cout);
        var o = new BatchNormOptions(Activation: act);
        NormalizedInput Input(bool gpu) => new(gpu ? z0.G : z0.C, gpu ? x.G : x.C, input.On(gpu), io);
        t.Gpu.DepthwiseConvBatchNormForward(Input(true), filters.G, z.G, g, y.G, bn.Gpu, o);
        t.Cpu.DepthwiseConvBatchNormForward(Input(false), filters.C, z.C, g, y.C, bn.Cpu, o);
        t.Set(y.Grad, t.Values(y.C.Count));
        float[] earlier = t.Values(n * (cin + 2) * h * w); // the concat's gradient from the layer after
        float[] Read(in GpuHarness.Twin v) => GpuHarness.Get(t.Gpu, v.G);
        var grads = new[] { filters.Grad, bn.Gamma.Grad, bn.Beta.Grad, input.Gamma.Grad, input.Beta.Grad };
        var results = new List<float[][]>();
        t.Gpu.Recorder = new LaunchRecorder();
        // Reduced in the one-pass backward (v2.13, where it fits), in the data gradient, after it.
        foreach (var (fuse, onePass) in new[] { (true, true), (true, false), (false, false) })
        {
            t.Gpu.ReduceBatchNormInDepthwise = fuse;
            t.Gpu.DepthwiseBackwardInOnePass = onePass;
            t.Set(concat.Grad, earlier);
            foreach (var v in grads) t.Poison(v);
            t.Gpu.DepthwiseConvBatchNormBackward(Input(true), filters.G, z.G, g, y.Grad.G, x.Grad.G, true, filters.Grad.G, bn.Gpu, o);
            results.Add([Read(concat.Grad), .. grads.Select(v => Read(v))]);
        }
        t.Gpu.ReduceBatchNormInDepthwise = t.Gpu.DepthwiseBackwardInOnePass = true;
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).Where(k => k != "fill_view").ToArray(); // less the poisoning
        t.Gpu.Recorder = null;
        string Variant(int op) => CudaBackend.DepthwiseKernels[op][CudaBackend.DepthwiseVariant(g)];
        bool onePassFits = stride == 1 && k % 2 == 1 && multiplier == 1;
        string[] reducing = ["batch_norm_bwd_reduce", Variant(7), Variant(5)];
        Assert.That(kernels, Is.EqualTo((onePassFits ? ["batch_norm_bwd_reduce", Variant(8)] : reducing)
            .Concat(reducing).Concat(["batch_norm_bwd_reduce", Variant(4), Variant(5), "batch_norm_bwd_reduce"])));
        string[] names = ["the concat's gradient", "dW", "dgamma", "dbeta", "the input batch norm's dgamma", "its dbeta"];
        for (int run = 1; run < 3; run++)
            for (int i = 0; i < names.Length; i++) Assert.That(results[0][i], Is.EqualTo(results[run][i]), $"{names[i]}, run {run}");

        // Against the CPU from the same forward state (the devices' statistics differ in the last
        // bits, which moves a ReLU decision near zero now and then).
        foreach (var v in new[] { concat, z, bn.Mean, bn.InvStd }) t.Mirror(v);
        t.Set(concat.Grad, earlier);
        t.Gpu.DepthwiseConvBatchNormBackward(Input(true), filters.G, z.G, g, y.Grad.G, x.Grad.G, true, filters.Grad.G, bn.Gpu, o);
        t.Cpu.DepthwiseConvBatchNormBackward(Input(false), filters.C, z.C, g, y.Grad.C, x.Grad.C, true, filters.Grad.C, bn.Cpu, o);
        t.Compare("the concat's gradient", concat.Grad);
        if (k > 1) t.Compare("dW", filters.Grad, WeightGradTolerance);
        t.Compare("dgamma", bn.Gamma.Grad, WeightGradTolerance);
        t.Compare("dbeta", bn.Beta.Grad, WeightGradTolerance);
        t.Compare("the input batch norm's dgamma", input.Gamma.Grad, WeightGradTolerance);
        t.Compare("the input batch norm's dbeta", input.Beta.Grad, WeightGradTolerance);
        Assert.That(() => t.Gpu.DepthwiseConvBatchNormBackward(Input(true), filters.G, z.G, g, y.Grad.G, default, true, filters.Grad.G, bn.Gpu, o),
            Throws.ArgumentException.With.Message.Contains("dx is needed"));
    }
}

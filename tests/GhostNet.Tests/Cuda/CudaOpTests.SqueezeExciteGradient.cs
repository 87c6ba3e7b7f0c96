using GhostNet.Backends;
using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

public partial class CudaOpTests
{
    // channel_scale_pool_bwd (v2.15) adds squeeze-excite's input gradient through the scale and
    // through the pool in one pass. It must equal channel_scale then broadcast_plane exactly,
    // written or added to a channel window (the bottleneck's input gradient), and match the CPU.
    // Shapes: SE's 72 x 28x28 and 960 x 7x7 at batch 8, an odd one.
    [TestCase(8, 72, 28, 28, false)]
    [TestCase(8, 960, 7, 7, true)]
    [TestCase(3, 5, 9, 7, true)]
    public void Squeeze_excite_input_gradient_in_one_pass_equals_the_two_launches(int n, int c, int h, int w, bool accumulate)
    {
        using var t = GpuHarness.Create();
        var gate = t.Random(n, c, 1, 1, 0.5f, 0.5f);
        var dy = t.Random(n, c, h, w);
        var dPooled = t.Random(n, c, 1, 1, 5f);
        var buffer = t.New(n, c + 3, h, w);
        var dx = buffer.Channels(1, c);
        float[] earlier = t.Values(buffer.C.Count);
        var results = new List<float[]>();
        t.Gpu.Recorder = new LaunchRecorder();
        foreach (bool fuse in new[] { true, false })
        {
            t.Gpu.FuseSqueezeExciteGradient = fuse;
            t.Set(buffer, earlier);
            t.Gpu.ChannelScaleAndPoolBackward(gate.G, dy.G, dPooled.G, dx.G, accumulate);
            results.Add(GpuHarness.Get(t.Gpu, buffer.G));
        }
        t.Gpu.FuseSqueezeExciteGradient = true;
        var kernels = t.Gpu.Recorder.Launches.Select(l => l.Kernel).ToArray();
        t.Gpu.Recorder = null;
        Assert.That(kernels, Is.EqualTo(new[] { "channel_scale_pool_bwd", "channel_scale", "broadcast_plane" }));
        Assert.That(results[0], Is.EqualTo(results[1]), "dx (the window written or added to, the rest untouched)");
        t.Cpu.ChannelScaleAndPoolBackward(gate.C, dy.C, dPooled.C, dx.C, accumulate);
        t.Compare("dx", buffer);
    }
}

using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Cuda;

/// <summary>
/// The launches of one GhostNet training step (forward with the loss, backward, SGD: what
/// `ghostcuda bench` times) recorded on a <see cref="CudaBackend.ForModel"/> backend: no device,
/// no memory, no kernel runs, so a 1.0x step at 224 and batch 256 (a 17 GB plan) is modelled in
/// well under a second on any machine.
/// </summary>
public static class TrainingStepModel
{
    /// <summary>The bench's training step: forward in training mode, backward, one SGD update.</summary>
    public static void Step(Plan plan, SgdOptimizer sgd)
    {
        plan.Forward(training: true);
        plan.Backward();
        sgd.Step(1e-4f);
    }

    /// <summary>
    /// Records the second of two steps (the first could differ by one-time work; it does not
    /// today) of <paramref name="config"/> at <paramref name="batch"/> x <paramref name="size"/>^2
    /// on a device like <paramref name="device"/> (its SM count shapes the split reductions), with
    /// the GEMMs in <paramref name="precision"/>.
    /// </summary>
    public static LaunchRecorder Record(GhostNetConfig config, int batch, int size, CudaDeviceInfo device, GemmPrecision precision = GemmPrecision.Fp32)
    {
        var recorder = new LaunchRecorder();
        using var backend = CudaBackend.ForModel(device, recorder);
        backend.Precision = precision;
        using var model = new GhostNetModel(config, backend, seed: 0);
        using var plan = model.Compile(batch, size, size, withGradients: true);
        var sgd = new SgdOptimizer(model.Parameters, backend, new SgdOptions());
        Step(plan, sgd);
        recorder.Reset();
        Step(plan, sgd);
        return recorder;
    }
}

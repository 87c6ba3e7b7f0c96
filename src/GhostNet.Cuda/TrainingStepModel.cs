using GhostNet.Backends;
using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Cuda;

/// <summary>
/// The launches of one GhostNet training step (forward with the loss, ranks and totals, backward, SGD: what
/// `ghostcuda bench` times) recorded on a <see cref="CudaBackend.ForModel"/> backend: no device,
/// no memory, no kernel runs, so a 1.0x step at 224 and batch 256 (a 17 GB plan) is modelled in
/// well under a second on any machine.
/// </summary>
public static class TrainingStepModel
{
    /// <summary>A trainer's step, made call by call: the step's values written, forward with the loss, ranks and totals, backward, one SGD update.</summary>
    public static void Step(Plan plan, SgdOptimizer sgd)
    {
        plan.BeginTrainingStep(1e-4f);
        Trainer.StepCalls(plan, sgd, 1e-4f);
    }

    /// <summary>
    /// Records the second of two steps (the first could differ by one-time work; it does not
    /// today) of <paramref name="config"/> at <paramref name="batch"/> x <paramref name="size"/>^2
    /// on a device like <paramref name="device"/> (its SM count shapes the split reductions), with
    /// the GEMMs in <paramref name="precision"/> and activations of <paramref name="activations"/>.
    /// </summary>
    public static LaunchRecorder Record(IModelConfig config, int batch, int size, CudaDeviceInfo device, GemmPrecision precision = GemmPrecision.Fp32,
        ElementType activations = ElementType.Float32)
    {
        var recorder = new LaunchRecorder();
        using var backend = CudaBackend.ForModel(device, recorder);
        backend.Precision = precision;
        backend.ActivationType = activations;
        using var model = new GhostNetModel(config, backend, seed: 0);
        using var plan = model.Compile(batch, size, size, withGradients: true);
        var sgd = new SgdOptimizer(model.Parameters, backend, new SgdOptions());
        // The batch as the loader gives it (bytes, normalised on the device): its launch is the step's too.
        var pixels = new byte[(long)batch * 3 * size * size];
        var labels = new int[batch];
        plan.SetBatch(pixels, labels, Normalization.ImageNet);
        Step(plan, sgd);
        recorder.Reset();
        plan.SetBatch(pixels, labels, Normalization.ImageNet);
        Step(plan, sgd);
        return recorder;
    }
}

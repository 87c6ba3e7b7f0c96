using GhostNet.Backends;
using GhostNet.Cuda;
using GhostNet.Cuda.Interop;
using GhostNet.Models;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// The library inside a host application's GPU work (issue 13): the backend runs on the
/// application's context and stream, reads the application's pixel buffer where it lies
/// (<see cref="CudaBackend.Borrow"/>, <see cref="Plan.SetInput"/>), and the application reads
/// the logits from the plan's memory on its own stream (<see cref="CudaBackend.DevicePointer"/>).
/// Nothing goes through the host between them, and the application's stream and buffer outlive the backend.
/// </summary>
[Category("Gpu")]
public unsafe class CudaEmbeddingTests
{
    private const int Batch = 2, Size = 32, Classes = 10;
    private static readonly GhostNetConfig Config = new(0.25f, Classes, 0.2f);

    private static void Check(int result, string call) => Assert.That(result, Is.Zero, call);

    [Test]
    public void Inference_runs_on_the_applications_stream_from_its_device_buffer_without_a_copy()
    {
        GpuHarness.RequireGpu();
        var pixels = new byte[Batch * 3 * Size * Size];
        new Random(12).NextBytes(pixels);

        // The reference: the same model fed the same bytes from the host.
        float[] expected = new float[Batch * Classes];
        using (var own = new CudaBackend(0))
        using (var model = new GhostNetModel(Config, own, 8))
        using (var plan = model.Compile(Batch, Size, Size, withGradients: false))
        {
            plan.SetBatch(pixels, new int[Batch], Normalization.ImageNet);
            plan.Forward(training: false);
            own.Download(plan.Logits, expected);
        }

        // The application: the primary context (the CUDA runtime's), a stream and a buffer of its own.
        Check(Driver.cuDeviceGet(out int device, 0), "cuDeviceGet");
        Check(Driver.cuDevicePrimaryCtxRetain(out IntPtr context, device), "cuDevicePrimaryCtxRetain");
        Check(Driver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
        Check(Driver.cuStreamCreate(out IntPtr stream, 1), "cuStreamCreate");
        Check(Driver.cuMemAlloc(out ulong buffer, (nuint)pixels.Length), "cuMemAlloc");
        try
        {
            fixed (byte* p = pixels) Check(Driver.cuMemcpyHtoDAsync(buffer, p, (nuint)pixels.Length, stream), "cuMemcpyHtoDAsync");
            var logits = new float[Batch * Classes];
            using (var gpu = new CudaBackend(context, stream))
            using (var model = new GhostNetModel(Config, gpu, 8))
            using (var plan = model.Compile(Batch, Size, Size, withGradients: false))
            {
                Assert.That(gpu.Stream, Is.EqualTo(stream));
                var borrowed = gpu.Borrow(buffer, (pixels.Length + 3) / 4, "application pixels");
                for (int i = 0; i < 3; i++) // call by call, captured, replayed
                {
                    plan.SetInput(borrowed, Normalization.ImageNet);
                    plan.Forward(training: false);
                }
                Assert.That(plan.ForwardGraphLaunches, Is.GreaterThan(0), "the forward replayed on the application's stream");
                fixed (float* z = logits)
                    Check(Driver.cuMemcpyDtoHAsync(z, gpu.DevicePointer(plan.Logits), (nuint)logits.Length * 4, stream), "cuMemcpyDtoHAsync");
                Check(Driver.cuStreamSynchronize(stream), "cuStreamSynchronize");
                borrowed.Storage.Release(); // leaves the buffer to the application
                Assert.Throws<ArgumentException>(() => gpu.Borrow(buffer + 2, 4), "an unaligned pointer");
            }
            Assert.That(logits, Is.EqualTo(expected), "the logits, bit for bit as from host bytes");

            // The backend is gone; the application's stream and buffer are not, and the pixels are untouched.
            Check(Driver.cuStreamSynchronize(stream), "cuStreamSynchronize after the backend");
            var back = new byte[pixels.Length];
            fixed (byte* b = back) Check(Driver.cuMemcpyDtoHAsync(b, buffer, (nuint)back.Length, stream), "cuMemcpyDtoHAsync of the pixels");
            Assert.That(back, Is.EqualTo(pixels));
        }
        finally
        {
            Check(Driver.cuMemFree(buffer), "cuMemFree: the buffer was still the application's");
            Check(Driver.cuStreamDestroy(stream), "cuStreamDestroy");
            Driver.cuDevicePrimaryCtxRelease(device);
        }
    }

    [Test]
    public void A_borrowed_buffer_too_small_for_the_batch_is_refused()
    {
        GpuHarness.RequireGpu();
        using var gpu = new CudaBackend(0);
        using var model = new GhostNetModel(Config, gpu, 8);
        using var plan = model.Compile(Batch, Size, Size, withGradients: false);
        Check(Driver.cuMemAlloc(out ulong buffer, 1024), "cuMemAlloc");
        try
        {
            var small = gpu.Borrow(buffer, 256);
            Assert.That(() => plan.SetInput(small, Normalization.ImageNet), Throws.ArgumentException.With.Message.Contains("fewer than"));
        }
        finally
        {
            Check(Driver.cuMemFree(buffer), "cuMemFree");
        }
    }
}

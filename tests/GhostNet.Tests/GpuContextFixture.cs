using GhostNet.Cuda;
using GhostNet.Cuda.Interop;
using NUnit.Framework;

namespace GhostNet.Tests;

/// <summary>
/// Holds each device's primary context for the whole test run. Every Gpu test makes its own
/// backend, which retains the primary context and releases it when disposed; with no other hold
/// the driver destroys the context at each release and creates it again for the next test, a
/// fraction of a second each on a real GPU (issue 13: the GPU check's tests run in one context).
/// </summary>
[SetUpFixture]
public class GpuContextFixture
{
    private readonly List<int> _held = [];

    [OneTimeSetUp]
    public void HoldContexts()
    {
        var status = CudaProbe.Status;
        if (!status.Available) return;
        for (int ordinal = 0; ordinal < status.Devices.Count; ordinal++)
            if (Driver.cuDeviceGet(out int device, ordinal) == 0 && Driver.cuDevicePrimaryCtxRetain(out _, device) == 0)
                _held.Add(device);
    }

    [OneTimeTearDown]
    public void ReleaseContexts()
    {
        foreach (int device in _held) Driver.cuDevicePrimaryCtxRelease(device);
        _held.Clear();
    }
}

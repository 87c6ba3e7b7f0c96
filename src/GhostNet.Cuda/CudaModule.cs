using GhostNet.Cuda.Interop;

namespace GhostNet.Cuda;

/// <summary>A loaded cubin and the kernels (extern "C" entry points) looked up in it.</summary>
internal sealed unsafe class CudaModule : IDisposable
{
    private IntPtr _module;

    public CudaModule(string file, byte[] image)
    {
        File = file;
        fixed (byte* p = image) CudaException.Check(Driver.cuModuleLoadData(out _module, p), "cuModuleLoadData", $"for {file}");
    }

    public string File { get; }

    public IntPtr Function(string name)
    {
        CudaException.Check(Driver.cuModuleGetFunction(out var f, _module, name), "cuModuleGetFunction", $"{name} in {File}");
        return f;
    }

    public void Dispose()
    {
        if (_module == IntPtr.Zero) return;
        Driver.cuModuleUnload(_module);
        _module = IntPtr.Zero;
    }
}

using System.Runtime.InteropServices;
using GhostNet.Backends;
using GhostNet.Cuda.Interop;

namespace GhostNet.Cuda;

/// <summary>
/// The CUDA backend: the kernels of kernels/*.cu, compiled by NVRTC for the device's own sm_XX
/// (cached on disk), launched through the driver API on one stream. Activations are NCHW views
/// like the CPU backend's, which is every kernel's reference. Launches are checked as they are
/// made; errors inside kernels surface at the next synchronisation (a download, or
/// <see cref="Synchronize"/>) with the call that found them. Op families live in the partial
/// files beside this one.
/// </summary>
public sealed unsafe partial class CudaBackend : IBackend
{
    private const int Threads = 256;
    private readonly IntPtr _context, _stream;
    private readonly bool _ownsContext, _ownsStream;
    private readonly int _deviceOrdinal;
    private readonly List<CudaModule> _modules = [];
    private readonly Dictionary<string, (IntPtr Function, string File)> _kernels = [];
    private CudaBuffer? _workspace, _partials;

    /// <summary>Uses the primary context of device <paramref name="ordinal"/> and a stream of its own.</summary>
    public CudaBackend(int ordinal = 0, KernelCache? cache = null)
    {
        var status = CudaProbe.Status;
        if (!status.Available) throw new CudaException($"CUDA is not available: {status.Reason}");
        if (ordinal < 0 || ordinal >= status.Devices.Count) throw new CudaException($"no device cuda:{ordinal}; found {status.Devices.Count}");
        Device = status.Devices[ordinal];
        _deviceOrdinal = ordinal;
        CudaException.Check(Driver.cuDeviceGet(out int device, ordinal), "cuDeviceGet");
        CudaException.Check(Driver.cuDevicePrimaryCtxRetain(out _context, device), "cuDevicePrimaryCtxRetain");
        _ownsContext = true;
        MakeCurrent();
        CudaException.Check(Driver.cuStreamCreate(out _stream, 1 /* non-blocking */), "cuStreamCreate");
        _ownsStream = true;
        LoadKernels(cache ?? new KernelCache(KernelCache.DefaultDirectory));
    }

    /// <summary>Embeds in a host application: runs on its context and stream, which it keeps owning.</summary>
    public CudaBackend(IntPtr context, IntPtr stream, int ordinal = 0, KernelCache? cache = null)
    {
        var status = CudaProbe.Status;
        if (!status.Available) throw new CudaException($"CUDA is not available: {status.Reason}");
        Device = status.Devices[ordinal];
        _deviceOrdinal = ordinal;
        _context = context;
        _stream = stream;
        MakeCurrent();
        LoadKernels(cache ?? new KernelCache(KernelCache.DefaultDirectory));
    }

    public CudaDeviceInfo Device { get; }
    public string Name => Device.ToString();
    public IntPtr Stream => _stream;

    /// <summary>Binds this backend's context to the calling thread (the driver API's current context is per thread).</summary>
    public void MakeCurrent() => CudaException.Check(Driver.cuCtxSetCurrent(_context), "cuCtxSetCurrent");

    private void LoadKernels(KernelCache cache)
    {
        string arch = Device.Architecture;
        foreach (var file in KernelSources.Files)
        {
            CudaModule module;
            try
            {
                module = new CudaModule(file, cache.GetOrCompile(file, arch));
            }
            catch (CudaException e) when (e.Result != 0)
            {
                cache.Evict(file, arch); // a cached image the driver rejects is rebuilt once
                module = new CudaModule(file, cache.GetOrCompile(file, arch));
            }
            _modules.Add(module);
            foreach (var name in KernelNames(KernelSources.Source(file)))
                _kernels[name] = (module.Function(name), file);
        }
    }

    /// <summary>The extern "C" entry points of a source file (every KERNEL void name(...)).</summary>
    internal static IEnumerable<string> KernelNames(string source) =>
        System.Text.RegularExpressions.Regex.Matches(source, @"^KERNEL\s+void\s+(\w+)\s*\(", System.Text.RegularExpressions.RegexOptions.Multiline)
            .Select(m => m.Groups[1].Value);

    public DeviceBuffer Allocate(long elements) => new CudaBuffer(elements, _stream);

    public void Upload(ReadOnlySpan<float> source, in Tensor destination)
    {
        destination.RequireContiguous("upload");
        if (source.Length != destination.Count) throw new ArgumentException($"upload of {source.Length} values into {destination}");
        fixed (float* p = source)
        {
            CudaException.Check(Driver.cuMemcpyHtoDAsync(Ptr(destination), p, (nuint)source.Length * 4, _stream), "cuMemcpyHtoDAsync", $"into {destination}");
            Sync("upload");
        }
    }

    public void Download(in Tensor source, Span<float> destination)
    {
        source.RequireContiguous("download");
        if (destination.Length != source.Count) throw new ArgumentException($"download of {source} into {destination.Length} values");
        fixed (float* p = destination)
        {
            CudaException.Check(Driver.cuMemcpyDtoHAsync(p, Ptr(source), (nuint)destination.Length * 4, _stream), "cuMemcpyDtoHAsync", $"from {source}");
            Sync("download");
        }
    }

    public void UploadInts(ReadOnlySpan<int> source, in Tensor destination) => Upload(MemoryMarshal.Cast<int, float>(source), destination);

    public void DownloadInts(in Tensor source, Span<int> destination) => Download(source, MemoryMarshal.Cast<int, float>(destination));

    public void Synchronize() => Sync("synchronize");

    private void Sync(string after) =>
        CudaException.Check(Driver.cuStreamSynchronize(_stream), "cuStreamSynchronize", $"after {after} (an earlier kernel may have failed)");

    /// <summary>Device address of element (0, C0, 0, 0) of a view.</summary>
    internal static ulong Ptr(in Tensor t)
    {
        var buffer = t.Storage.Buffer as CudaBuffer ?? throw new InvalidOperationException($"{t.Storage.Name} is not bound to GPU memory");
        return buffer.Pointer + (ulong)(t.Offset + (long)t.C0 * t.Plane) * 4;
    }

    /// <summary>Elements between consecutive images of a view.</summary>
    internal static long Stride(in Tensor t) => (long)t.CTotal * t.Plane;

    /// <summary>Scratch device memory (im2col columns) that grows to the largest request and stays.</summary>
    private ulong Workspace(long elements) => Grow(ref _workspace, elements);

    /// <summary>Scratch for split-K partial products, apart from the columns they are computed from.</summary>
    private ulong Partials(long elements) => Grow(ref _partials, elements);

    private ulong Grow(ref CudaBuffer? buffer, long elements)
    {
        if (buffer is null || buffer.Length < elements)
        {
            buffer?.Dispose();
            buffer = new CudaBuffer(elements, _stream);
        }
        return buffer.Pointer;
    }

    /// <summary>
    /// How the values of each of <paramref name="channels"/> per-channel reductions are split
    /// across blocks: enough chunks for about two blocks per SM when there are few channels, none
    /// under 4,096 values (16 per thread). The parts are combined in chunk order (deterministic).
    /// </summary>
    private (int Chunks, long Chunk) ChannelChunks(int channels, long values)
    {
        int chunks = (int)Math.Clamp((2L * Device.Multiprocessors + channels - 1) / channels, 1, Math.Max(1, values / 4096));
        long chunk = (values + chunks - 1) / chunks;
        return ((int)((values + chunk - 1) / chunk), chunk);
    }

    /// <summary>Grid of a grid-stride elementwise kernel: enough blocks to fill the device, no more than the work.</summary>
    private uint Blocks(long total) => (uint)Math.Max(1, Math.Min((total + Threads - 1) / Threads, (long)Device.Multiprocessors * 32));

    private void Launch(string kernel, uint gridX, uint gridY, uint gridZ, uint block, DeferredText context, params ReadOnlySpan<KernelArg> args)
    {
        if (!_kernels.TryGetValue(kernel, out var k)) throw new InvalidOperationException($"no kernel named {kernel}");
        if (gridX == 0 || gridY == 0 || gridZ == 0) return; // empty tensor
        ulong* values = stackalloc ulong[args.Length];
        void** pointers = stackalloc void*[args.Length];
        for (int i = 0; i < args.Length; i++)
        {
            values[i] = args[i].Bits;
            pointers[i] = values + i;
        }
        int result = Driver.cuLaunchKernel(k.Function, gridX, gridY, gridZ, block, 1, 1, 0, _stream, pointers, null);
        if (result != Driver.Success)
            throw new CudaException($"{kernel} launch failed ({CuResultNames.Of(result)}) for {context.ToString()} (grid {gridX}x{gridY}x{gridZ}, block {block})", result);
    }

    private void Launch1D(string kernel, long total, DeferredText context, params ReadOnlySpan<KernelArg> args) =>
        Launch(kernel, Blocks(total), 1, 1, Threads, context, args);

    public void Dispose()
    {
        _workspace?.Dispose();
        _partials?.Dispose();
        foreach (var m in _modules) m.Dispose();
        _modules.Clear();
        if (_ownsStream) Driver.cuStreamDestroy(_stream);
        if (_ownsContext)
        {
            Driver.cuDeviceGet(out int device, _deviceOrdinal);
            Driver.cuDevicePrimaryCtxRelease(device);
        }
    }
}

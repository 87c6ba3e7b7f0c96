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
/// Every launch goes through <see cref="Launch"/> with its modelled cost (<see cref="LaunchCost"/>,
/// written next to each launch call); with a <see cref="Recorder"/> each launch is recorded under
/// the op family of the call that made it (<see cref="OpFamily"/>), and with
/// <see cref="IssueLaunches"/> off launches are recorded but not issued. <see cref="ForModel"/>
/// makes a backend with no device at all, for modelling a step of any size anywhere.
/// </summary>
public sealed unsafe partial class CudaBackend : IBackend
{
    private const int Threads = 256;
    private readonly IntPtr _context, _stream;
    private readonly bool _ownsContext, _ownsStream;
    private readonly int _deviceOrdinal;
    private readonly List<CudaModule> _modules = [];
    private Dictionary<string, (IntPtr Function, string File)> _kernels = []; // of _activations: one of _kernelSets
    private readonly Dictionary<ElementType, Dictionary<string, (IntPtr Function, string File)>> _kernelSets = [];
    private readonly KernelCache? _cache;
    private ElementType _activations = ElementType.Float32;
    private CudaBuffer? _workspace, _partials, _counters;
    private readonly bool _unbacked; // ForModel: no context, no memory, no launches
    private ulong _nextAddress = 1UL << 40;
    private bool _issue = true;
    private string _family = "(no op)";

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
        _cache = cache ?? new KernelCache(KernelCache.DefaultDirectory);
        _kernels = LoadKernels(ElementType.Float32);
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
        _cache = cache ?? new KernelCache(KernelCache.DefaultDirectory);
        _kernels = LoadKernels(ElementType.Float32);
    }

    /// <summary>
    /// A backend without a device that behaves as one with <paramref name="device"/>'s SM count:
    /// allocations are address ranges that no memory backs, copies and synchronisation do
    /// nothing (downloads give NaN), and launches are recorded in <see cref="Recorder"/> and never
    /// issued. It runs the same host code as a real backend, so it records the launches a real one
    /// would make. Needs neither a driver nor NVRTC: the kernel names come from the embedded sources.
    /// </summary>
    public static CudaBackend ForModel(CudaDeviceInfo device, LaunchRecorder? recorder = null) => new(device, recorder ?? new LaunchRecorder());

    private CudaBackend(CudaDeviceInfo device, LaunchRecorder recorder)
    {
        Device = device;
        _unbacked = true;
        _issue = false;
        Recorder = recorder;
        _kernels = LoadKernels(ElementType.Float32);
    }

    /// <summary>
    /// How this backend holds activations and their gradients: fp32 (the default), or bf16
    /// (<c>--precision bf16</c>), where every kernel reads and writes them as bf16 and computes in
    /// fp32 (parameters, statistics and reductions stay fp32). Plans made after a change hold the
    /// new type; a plan of the other type is refused at its first launch (<see cref="Act"/>).
    /// Setting bf16 compiles (or loads from the cache) the kernels' bf16 variants once.
    /// </summary>
    public ElementType ActivationType
    {
        get => _activations;
        set
        {
            if (value == _activations) return;
            RefuseInCapture($"a change of the activation type to {value.Name()}");
            _kernels = _kernelSets.TryGetValue(value, out var set) ? set : LoadKernels(value);
            _activations = value;
        }
    }

    public CudaDeviceInfo Device { get; }

    /// <summary>True for a <see cref="ForModel"/> backend: no device behind it.</summary>
    public bool IsModelOnly => _unbacked;

    /// <summary>Where launches are recorded (with their cost and op family), or null: not recorded.</summary>
    public LaunchRecorder? Recorder { get; set; }

    /// <summary>
    /// Whether launches reach the device. Off, a launch is checked and recorded but not issued, so
    /// its outputs keep whatever they held. Always off for a <see cref="ForModel"/> backend.
    /// </summary>
    public bool IssueLaunches
    {
        get => _issue;
        set => _issue = !value || !_unbacked ? value : throw new InvalidOperationException("a model-only backend has no device to launch on");
    }

    /// <summary>Launches this backend has issued to the device (cuLaunchKernel returned success).</summary>
    public long IssuedLaunches { get; private set; }

    public string Name => Device.ToString();
    public IntPtr Stream => _stream;

    /// <summary>
    /// Makes this backend's context current on the calling thread where it is not. The driver's
    /// current context is per thread, and a host application may call from any thread (or have
    /// made its own context current there), so every call of this backend that reaches the driver
    /// makes it first; it stays current after the call, as a cudaSetDevice would leave it. A
    /// cuCtxGetCurrent is a read of the thread's state, cheaper than a set.
    /// </summary>
    public void MakeCurrent()
    {
        if (_unbacked) return;
        CudaException.Check(Driver.cuCtxGetCurrent(out IntPtr current), "cuCtxGetCurrent");
        if (current != _context) CudaException.Check(Driver.cuCtxSetCurrent(_context), "cuCtxSetCurrent");
    }

    /// <summary>
    /// <see cref="MakeCurrent"/> for disposal, which must not throw: where the context is gone (an
    /// application destroyed it first) the frees after it fail quietly, as they would anyway.
    /// </summary>
    internal void TryMakeCurrent()
    {
        if (_unbacked) return;
        if (Driver.cuCtxGetCurrent(out IntPtr current) == Driver.Success && current != _context) Driver.cuCtxSetCurrent(_context);
    }

    /// <summary>The kernels of every file compiled for activations of <paramref name="type"/> (names only, for a model-only backend).</summary>
    private Dictionary<string, (IntPtr Function, string File)> LoadKernels(ElementType type)
    {
        var kernels = new Dictionary<string, (IntPtr Function, string File)>();
        string arch = Device.Architecture;
        foreach (var file in KernelSources.FilesFor(type))
        {
            if (_unbacked)
            {
                foreach (var name in KernelNames(KernelSources.Source(file))) kernels[name] = (IntPtr.Zero, file);
                continue;
            }
            MakeCurrent();
            CudaModule module;
            try
            {
                module = new CudaModule(file, _cache!.GetOrCompile(file, arch, type));
            }
            catch (CudaException e) when (e.Result != 0)
            {
                _cache!.Evict(file, arch, type); // a cached image the driver rejects is rebuilt once
                module = new CudaModule(file, _cache.GetOrCompile(file, arch, type));
            }
            _modules.Add(module);
            foreach (var name in KernelNames(KernelSources.Source(file)))
                kernels[name] = (module.Function(name), file);
        }
        _kernelSets[type] = kernels;
        return kernels;
    }

    /// <summary>The extern "C" entry points of a source file (every KERNEL void name(...)).</summary>
    internal static IEnumerable<string> KernelNames(string source) =>
        System.Text.RegularExpressions.Regex.Matches(source, @"^KERNEL\s+void\s+(\w+)\s*\(", System.Text.RegularExpressions.RegexOptions.Multiline)
            .Select(m => m.Groups[1].Value);

    public DeviceBuffer Allocate(long elements) => Allocate(elements, ElementType.Float32);

    public DeviceBuffer Allocate(long elements, ElementType type)
    {
        RefuseInCapture($"an allocation of {elements} elements");
        if (!_unbacked) return new CudaBuffer(elements, this, type);
        ulong address = _nextAddress;
        _nextAddress += (checked((ulong)elements * (ulong)type.Bytes()) + 255) / 256 * 256 + 256;
        return new CudaBuffer(elements, address, type: type);
    }

    /// <summary>
    /// Device memory a host application owns (from cuMemAlloc or cudaMalloc, in this backend's
    /// context), as a tensor of <paramref name="elements"/> 4-byte words that this backend's calls
    /// read and write where it is: nothing is copied (e.g. <see cref="GhostNet.Models.Plan.SetInput"/>
    /// normalises an application's pixel bytes in place of an upload). Releasing its storage
    /// leaves the memory to its owner. The application orders its own work on it with this
    /// backend's <see cref="Stream"/> (its own, with the embedding constructor).
    /// </summary>
    public Tensor Borrow(ulong pointer, long elements, string name = "borrowed")
    {
        if (pointer == 0) throw new ArgumentException("a null device pointer", nameof(pointer));
        if (pointer % 4 != 0) throw new ArgumentException($"device pointer 0x{pointer:x} is not 4-byte aligned", nameof(pointer));
        if (elements < 1 || elements > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(elements), $"{elements} words: 1..{int.MaxValue}");
        var storage = new Storage(name, elements);
        storage.Bind(new CudaBuffer(elements, pointer, borrowed: true));
        return new Tensor(storage, 0, 1, 1, 1, (int)elements);
    }

    /// <summary>
    /// The device address of a contiguous tensor of this backend: a host application's kernels may
    /// write a plan's <see cref="GhostNet.Models.Plan.Input"/> or read its <see cref="GhostNet.Models.Plan.Logits"/> there,
    /// on <see cref="Stream"/>, without a copy through the host.
    /// </summary>
    public ulong DevicePointer(in Tensor t)
    {
        t.RequireContiguous("a device pointer");
        return Address(t);
    }

    /// <summary>Names the op family of the calls that follow (and counts the call), for the launch recorder.</summary>
    private void Op(string family)
    {
        if (_composite) return; // inside a call made of other calls: they belong to its family, counted once
        _family = family;
        Recorder?.Call(family);
    }

    private bool _composite;

    /// <summary>
    /// Counts one call of <paramref name="family"/> and records the calls made until the scope is
    /// disposed under it: an unfused path of a fused call (ProfilingBackend times that call as one).
    /// </summary>
    private CompositeCall Composite(string family)
    {
        Op(family);
        var call = new CompositeCall(this, _composite);
        _composite = true;
        return call;
    }

    /// <summary>Restores the flag it found, so a composite call may run inside another.</summary>
    private readonly ref struct CompositeCall(CudaBackend backend, bool outer)
    {
        public void Dispose() => backend._composite = outer;
    }

    public void Upload(ReadOnlySpan<float> source, in Tensor destination)
    {
        Op(OpFamily.Upload);
        RefuseInCapture($"an upload into {destination}");
        destination.RequireContiguous("upload");
        if (source.Length != destination.Count) throw new ArgumentException($"upload of {source.Length} values into {destination}");
        if (_unbacked) return;
        MakeCurrent();
        if (destination.Storage.Type == ElementType.BFloat16)
        {
            var halves = new ushort[source.Length]; // a test's or a tool's call: a training step uploads through stagings
            BFloat16.FromFloats(source, halves);
            fixed (ushort* p = halves)
            {
                CudaException.Check(Driver.cuMemcpyHtoDAsync(Address(destination), p, (nuint)source.Length * 2, _stream), "cuMemcpyHtoDAsync", $"into {destination}");
                Sync("upload");
            }
            return;
        }
        fixed (float* p = source)
        {
            CudaException.Check(Driver.cuMemcpyHtoDAsync(Ptr(destination), p, (nuint)source.Length * 4, _stream), "cuMemcpyHtoDAsync", $"into {destination}");
            Sync("upload");
        }
    }

    public void Download(in Tensor source, Span<float> destination)
    {
        Op(OpFamily.Download);
        RefuseInCapture($"a download from {source}");
        source.RequireContiguous("download");
        if (destination.Length != source.Count) throw new ArgumentException($"download of {source} into {destination.Length} values");
        if (_unbacked)
        {
            destination.Fill(float.NaN); // nothing was computed
            return;
        }
        MakeCurrent();
        if (source.Storage.Type == ElementType.BFloat16)
        {
            var halves = new ushort[destination.Length];
            fixed (ushort* p = halves)
            {
                CudaException.Check(Driver.cuMemcpyDtoHAsync(p, Address(source), (nuint)destination.Length * 2, _stream), "cuMemcpyDtoHAsync", $"from {source}");
                Sync("download");
            }
            BFloat16.ToFloats(halves, destination);
            return;
        }
        fixed (float* p = destination)
        {
            CudaException.Check(Driver.cuMemcpyDtoHAsync(p, Ptr(source), (nuint)destination.Length * 4, _stream), "cuMemcpyDtoHAsync", $"from {source}");
            Sync("download");
        }
    }

    public void UploadInts(ReadOnlySpan<int> source, in Tensor destination) => Upload(MemoryMarshal.Cast<int, float>(source), destination);

    public void DownloadInts(in Tensor source, Span<int> destination) => Download(source, MemoryMarshal.Cast<int, float>(destination));

    public void Synchronize() => Sync("synchronize");

    private void Sync(string after)
    {
        RefuseInCapture($"a synchronisation (after {after})");
        if (_unbacked) return;
        MakeCurrent();
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        CudaException.Check(Driver.cuStreamSynchronize(_stream), "cuStreamSynchronize", $"after {after} (an earlier kernel may have failed)");
        CountWait(start);
    }

    /// <summary>
    /// Times the host has waited for the device (a synchronisation, a synchronous copy, or a
    /// <see cref="HostReadback.Wait"/>): what `ghostcuda bench` reports per step.
    /// </summary>
    public long HostWaits { get; private set; }

    /// <summary>Seconds the host has spent in those waits.</summary>
    public double HostWaitSeconds { get; private set; }

    private void CountWait(long startTimestamp)
    {
        HostWaits++;
        HostWaitSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds;
    }

    /// <summary>
    /// Device address of element (0, C0, 0, 0) of an fp32 view: a parameter, its gradient, a
    /// statistic, a label. A kernel's float* argument; <see cref="Act"/> gives an activation's.
    /// </summary>
    internal static ulong Ptr(in Tensor t)
    {
        if (t.Storage.Type != ElementType.Float32) throw new InvalidOperationException($"{t} holds {t.Storage.Type.Name()}, where the kernel reads fp32");
        return Address(t);
    }

    /// <summary>
    /// Device address of an activation view (a kernel's act* argument: float, or bf16 in a bf16
    /// backend's kernels). A view of the other type is refused, so an argument classed wrongly in
    /// a launcher fails at its launch instead of reading halves as floats.
    /// </summary>
    internal ulong Act(in Tensor t)
    {
        if (t.Storage.Type != ActivationType) throw new InvalidOperationException($"{t} holds {t.Storage.Type.Name()}, where this backend's kernels read {ActivationType.Name()} activations");
        return Address(t);
    }

    /// <summary>Device address of element (0, C0, 0, 0) of a view of either type.</summary>
    internal static ulong Address(in Tensor t)
    {
        var buffer = t.Storage.Buffer as CudaBuffer ?? throw new InvalidOperationException($"{t.Storage.Name} is not bound to GPU memory");
        return buffer.Pointer + (ulong)(t.Offset + (long)t.C0 * t.Plane) * (ulong)t.Storage.Type.Bytes();
    }

    /// <summary>Bytes of one element of <paramref name="t"/>: for pointer arithmetic past a view's start.</summary>
    internal static ulong ElementBytes(in Tensor t) => (ulong)t.Storage.Type.Bytes();

    /// <summary>Elements between consecutive images of a view.</summary>
    internal static long Stride(in Tensor t) => (long)t.CTotal * t.Plane;

    /// <summary>Whether the address ranges of two views (first to last element, windows' gaps included) meet.</summary>
    internal static bool Overlap(in Tensor a, in Tensor b)
    {
        static (ulong Lo, ulong Hi) Range(in Tensor t) => (Address(t), Address(t) + (ulong)((long)(t.N - 1) * Stride(t) + (long)t.C * t.Plane) * ElementBytes(t));
        var (ra, rb) = (Range(a), Range(b));
        return ra.Lo < rb.Hi && rb.Lo < ra.Hi;
    }

    /// <summary>Scratch device memory (im2col columns) that grows to the largest request and stays.</summary>
    private ulong Workspace(long elements) => Grow(ref _workspace, elements);

    /// <summary>Scratch for split-K partial products, apart from the columns they are computed from.</summary>
    private ulong Partials(long elements) => Grow(ref _partials, elements);

    /// <summary>
    /// Arrival counters, one per channel, for reductions whose last block finishes the job
    /// (common.cuh's last_to_arrive). Every allocation starts zeroed (CudaBuffer), and that
    /// block sets its counter back to 0, so they are zero between launches.
    /// </summary>
    private ulong Counters(int count) => Grow(ref _counters, count);

    private ulong Grow(ref CudaBuffer? buffer, long elements)
    {
        if (buffer is null || buffer.Length < elements)
        {
            RefuseInCapture($"a workspace growing to {elements} elements");
            if (buffer is not null) _memoryMoves++;
            buffer?.Dispose();
            buffer = (CudaBuffer)Allocate(elements);
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

    /// <summary>
    /// The one place every kernel launch goes through. <paramref name="cost"/> is the launch's
    /// modelled DRAM bytes and FLOPs (docs/kernels.md, "Modelled cost per training step"),
    /// computed at the call from the same shapes as the grid: change it with the kernel.
    /// </summary>
    private void Launch(string kernel, uint gridX, uint gridY, uint gridZ, uint block, in LaunchCost cost, DeferredText context, params ReadOnlySpan<KernelArg> args)
    {
        if (!_kernels.TryGetValue(kernel, out var k))
            throw _activations != ElementType.Float32 && _kernelSets[ElementType.Float32].ContainsKey(kernel)
                ? new NotSupportedException($"{kernel} has no {_activations.Name()} variant yet ({_kernelSets[ElementType.Float32][kernel].File} is not among KernelSources.Bf16Files)")
                : new InvalidOperationException($"no kernel named {kernel}");
        if (gridX == 0 || gridY == 0 || gridZ == 0) return; // empty tensor
        Recorder?.Add(new LaunchRecord(kernel, _family, gridX, gridY, gridZ, block, cost));
        if (!_issue) return;
        MakeCurrent();
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
        IssuedLaunches++;
    }

    private void Launch1D(string kernel, long total, in LaunchCost cost, DeferredText context, params ReadOnlySpan<KernelArg> args) =>
        Launch(kernel, Blocks(total), 1, 1, Threads, cost, context, args);

    public void Dispose()
    {
        TryMakeCurrent(); // a host application may dispose from another thread than it made the backend on
        _workspace?.Dispose();
        _partials?.Dispose();
        _counters?.Dispose();
        foreach (var m in _modules) m.Dispose();
        _modules.Clear();
        if (_unbacked) return;
        if (_copyStream != IntPtr.Zero) Driver.cuStreamDestroy(_copyStream); // its copies are finished first, as any destroyed stream's
        if (_ownsStream) Driver.cuStreamDestroy(_stream);
        if (_ownsContext)
        {
            Driver.cuDeviceGet(out int device, _deviceOrdinal);
            Driver.cuDevicePrimaryCtxRelease(device);
        }
    }
}

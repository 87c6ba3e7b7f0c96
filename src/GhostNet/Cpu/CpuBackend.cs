using System.Runtime.InteropServices;
using GhostNet.Backends;

namespace GhostNet.Cpu;

/// <summary>
/// The managed reference backend: NCHW activations in native memory, AVX2/FMA loops, and a
/// private worker pool. Every CUDA kernel is checked against it, and it trains where no GPU is.
/// The op families live in the partial files beside this one, one family per file.
/// </summary>
public sealed unsafe partial class CpuBackend : IBackend
{
    /// <summary>Loops with fewer elements than this run on the calling thread: waking a worker costs more.</summary>
    private const long ParallelThreshold = 1 << 14;

    private readonly WorkerPool _pool;
    private readonly float*[] _scratch;
    private readonly long[] _scratchLength;
    private float* _convPartials;
    private long _convPartialsLength;

    public CpuBackend(int threads = 0)
    {
        if (threads <= 0) threads = Environment.ProcessorCount;
        _pool = new WorkerPool(threads);
        _scratch = new float*[_pool.Threads];
        _scratchLength = new long[_pool.Threads];
    }

    public string Name => $"cpu ({_pool.Threads} threads)";
    public int Threads => _pool.Threads;

    /// <summary>Managed bytes allocated by the backend's worker threads (not the caller's).</summary>
    internal long WorkerAllocatedBytes => _pool.WorkerAllocatedBytes;

    public DeviceBuffer Allocate(long elements) => new CpuBuffer(elements);

    public void Upload(ReadOnlySpan<float> source, in Tensor destination)
    {
        destination.RequireContiguous("upload");
        if (source.Length != destination.Count)
            throw new ArgumentException($"upload of {source.Length} values into {destination}");
        source.CopyTo(new Span<float>(Ptr(destination), source.Length));
    }

    public void Download(in Tensor source, Span<float> destination)
    {
        source.RequireContiguous("download");
        if (destination.Length != source.Count)
            throw new ArgumentException($"download of {source} into {destination.Length} values");
        new ReadOnlySpan<float>(Ptr(source), destination.Length).CopyTo(destination);
    }

    public void UploadInts(ReadOnlySpan<int> source, in Tensor destination) =>
        Upload(MemoryMarshal.Cast<int, float>(source), destination);

    public void DownloadInts(in Tensor source, Span<int> destination) =>
        Download(source, MemoryMarshal.Cast<int, float>(destination));

    public void Fill(in Tensor tensor, float value)
    {
        for (int n = 0; n < tensor.N; n++)
            new Span<float>(PlanePtr(tensor, n, 0), tensor.C * tensor.Plane).Fill(value);
    }

    public void Synchronize() { }

    public HostReadback CreateReadback(in Tensor source) => new CpuReadback(this, source);

    public HostStaging CreateStaging(in Tensor destination, bool overlapped = false)
    {
        destination.RequireContiguous("staging");
        return new CpuStaging(this, destination);
    }

    /// <summary>Nothing runs behind the host's back here, so the copy is made at once.</summary>
    private sealed class CpuStaging(CpuBackend backend, Tensor destination) : HostStaging
    {
        private readonly float[] _values = new float[destination.Count];
        public override Tensor Destination => destination;
        public override Span<byte> Write() => MemoryMarshal.AsBytes(_values.AsSpan());
        public override void Start() => backend.Upload(_values, destination);
        public override void Dispose() { }
    }

    /// <summary>Nothing runs behind the host's back here, so the copy is made at once.</summary>
    private sealed class CpuReadback(CpuBackend backend, Tensor source) : HostReadback
    {
        private readonly int[] _words = new int[ShapeChecks.Readback(source)];
        public override Tensor Source => source;
        protected override void Queue() => backend.DownloadInts(source, _words);
        protected override ReadOnlySpan<int> Land() => _words;
        public override void Dispose() { }
    }

    internal static float* Ptr(in Tensor t)
    {
        var buffer = t.Storage.Buffer as CpuBuffer
            ?? throw new InvalidOperationException($"{t.Storage.Name} is not bound to CPU memory");
        return buffer.Pointer + t.Offset;
    }

    /// <summary>First element of channel plane (n, c) of a view, NCHW.</summary>
    internal static float* PlanePtr(in Tensor t, int n, int c) =>
        Ptr(t) + ((long)n * t.CTotal + t.C0 + c) * t.Plane;

    /// <summary>Per-thread scratch memory that grows on first use and is then reused every step.</summary>
    private float* Scratch(int worker, long elements)
    {
        if (_scratchLength[worker] < elements)
        {
            NativeMemory.AlignedFree(_scratch[worker]);
            _scratch[worker] = (float*)NativeMemory.AlignedAlloc((nuint)(elements * sizeof(float)), 64);
            _scratchLength[worker] = elements;
        }
        return _scratch[worker];
    }

    private void For<T>(int count, long work, in T body) where T : struct, IParallelBody
    {
        if (work < ParallelThreshold)
        {
            T local = body;
            for (int i = 0; i < count; i++) local.Execute(i, 0);
        }
        else _pool.For(count, body);
    }

    public void Dispose()
    {
        _pool.Dispose();
        for (int i = 0; i < _scratch.Length; i++)
        {
            NativeMemory.AlignedFree(_scratch[i]);
            _scratch[i] = null;
        }
        NativeMemory.AlignedFree(_convPartials);
        _convPartials = null;
    }
}

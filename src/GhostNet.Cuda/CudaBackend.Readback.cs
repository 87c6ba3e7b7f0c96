using GhostNet.Backends;
using GhostNet.Cuda.Interop;

namespace GhostNet.Cuda;

public sealed unsafe partial class CudaBackend
{
    public HostReadback CreateReadback(in Tensor source)
    {
        RefuseInCapture($"a readback of {source}");
        return new CudaReadback(this, source, ShapeChecks.Readback(source));
    }

    /// <summary>
    /// Page-locked host words and an event: Start queues an asynchronous copy and records the event
    /// after it on the backend's stream, Wait synchronises on the event alone (the work launched
    /// after the copy runs on).
    /// </summary>
    private sealed class CudaReadback : HostReadback
    {
        private readonly CudaBackend _backend;
        private readonly Tensor _source;
        private readonly int _words;
        private IntPtr _host, _event;
        private int[]? _modelOnly;

        public CudaReadback(CudaBackend backend, Tensor source, int words)
        {
            (_backend, _source, _words) = (backend, source, words);
            if (backend._unbacked) return;
            backend.MakeCurrent();
            CudaException.Check(Driver.cuMemAllocHost(out _host, (nuint)words * 4), "cuMemAllocHost", $"of {words * 4} bytes for a readback of {source}");
            int made = Driver.cuEventCreate(out _event, 2 /* CU_EVENT_DISABLE_TIMING: a wait, not a timer */);
            if (made != 0)
            {
                Driver.cuMemFreeHost(_host);
                _host = IntPtr.Zero;
                CudaException.Check(made, "cuEventCreate");
            }
        }

        public override Tensor Source => _source;

        protected override void Queue()
        {
            _backend.Op(OpFamily.Download);
            _backend.RefuseInCapture($"a readback of {_source}");
            if (_backend._unbacked) return;
            ObjectDisposedException.ThrowIf(_host == IntPtr.Zero, this);
            _backend.MakeCurrent();
            CudaException.Check(Driver.cuMemcpyDtoHAsync((void*)_host, Ptr(_source), (nuint)_words * 4, _backend._stream), "cuMemcpyDtoHAsync", $"from {_source}");
            CudaException.Check(Driver.cuEventRecord(_event, _backend._stream), "cuEventRecord");
        }

        protected override ReadOnlySpan<int> Land()
        {
            if (_backend._unbacked) return _modelOnly ??= new int[_words]; // nothing was computed: zeros, finite, so a modelled step runs on
            ObjectDisposedException.ThrowIf(_host == IntPtr.Zero, this);
            _backend.MakeCurrent();
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            CudaException.Check(Driver.cuEventSynchronize(_event), "cuEventSynchronize", $"waiting for a readback of {_source} (an earlier kernel may have failed)");
            _backend.CountWait(start);
            return new ReadOnlySpan<int>((void*)_host, _words);
        }

        public override void Dispose()
        {
            if (_host == IntPtr.Zero) return;
            _backend.TryMakeCurrent();
            Driver.cuEventDestroy(_event);
            Driver.cuMemFreeHost(_host);
            _host = IntPtr.Zero;
        }
    }
}

public sealed unsafe partial class CudaBackend
{
    public HostStaging CreateStaging(in Tensor destination, bool overlapped = false)
    {
        destination.RequireContiguous("staging");
        return new CudaStaging(this, destination, overlapped);
    }

    private IntPtr _copyStream; // overlapped stagings' copies; made at the first, destroyed with the backend

    private IntPtr CopyStream()
    {
        if (_copyStream == IntPtr.Zero) CudaException.Check(Driver.cuStreamCreate(out _copyStream, 1 /* non-blocking */), "cuStreamCreate", "(the copy stream)");
        return _copyStream;
    }

    /// <summary>
    /// Page-locked bytes (allocated at the first Write) and an event recorded after each copy from
    /// them: Write makes the host wait only when that copy has not run yet. Overlapped, the copy
    /// goes on the backend's copy stream after the work the last Consumed marked (an event on the
    /// compute stream), and the compute stream waits for the copy's event before its next work:
    /// the upload of batch k+1 runs beside step k, and no host wait orders anything.
    /// </summary>
    private sealed class CudaStaging(CudaBackend backend, Tensor destination, bool overlapped) : HostStaging
    {
        private const int NotReady = 600; // CUDA_ERROR_NOT_READY
        private readonly nuint _bytes = checked((nuint)destination.Count * (nuint)destination.Storage.Type.Bytes());
        private IntPtr _host, _event, _consumed;
        private bool _marked; // _consumed is recorded: the next copy waits for it
        private byte[]? _modelOnly;
        private bool _queued;

        public override Tensor Destination => destination;

        public override Span<byte> Write()
        {
            if (backend._unbacked) return _modelOnly ??= new byte[checked((int)_bytes)];
            backend.MakeCurrent();
            if (_host == IntPtr.Zero) Allocate();
            else if (_queued)
            {
                int ready = Driver.cuEventQuery(_event);
                if (ready == NotReady)
                {
                    long start = System.Diagnostics.Stopwatch.GetTimestamp();
                    CudaException.Check(Driver.cuEventSynchronize(_event), "cuEventSynchronize", $"waiting for an upload into {destination} (an earlier kernel may have failed)");
                    backend.CountWait(start);
                }
                else CudaException.Check(ready, "cuEventQuery", $"of an upload into {destination} (an earlier kernel may have failed)");
            }
            _queued = false;
            return new Span<byte>((void*)_host, checked((int)_bytes));
        }

        private void Allocate()
        {
            int result = Driver.cuMemAllocHost(out _host, _bytes);
            if (result == 2) throw new CudaException($"out of page-locked host memory allocating {_bytes / (1 << 20):N0} MiB to upload {destination} from; use a smaller batch", result);
            CudaException.Check(result, "cuMemAllocHost", $"of {_bytes} bytes to upload {destination} from");
            int made = Driver.cuEventCreate(out _event, 2 /* CU_EVENT_DISABLE_TIMING */);
            if (made == 0) return;
            Driver.cuMemFreeHost(_host);
            _host = IntPtr.Zero;
            CudaException.Check(made, "cuEventCreate");
        }

        public override void Start()
        {
            backend.Op(OpFamily.Upload);
            backend.RefuseInCapture($"an upload into {destination}");
            if (backend._unbacked) return;
            if (_host == IntPtr.Zero) throw new InvalidOperationException($"an upload into {destination} was started before its bytes were written");
            backend.MakeCurrent();
            if (!overlapped)
            {
                CudaException.Check(Driver.cuMemcpyHtoDAsync(Address(destination), (void*)_host, _bytes, backend._stream), "cuMemcpyHtoDAsync", $"into {destination}");
                CudaException.Check(Driver.cuEventRecord(_event, backend._stream), "cuEventRecord");
                _queued = true;
                return;
            }
            var copy = backend.CopyStream();
            if (_marked) CudaException.Check(Driver.cuStreamWaitEvent(copy, _consumed, 0), "cuStreamWaitEvent", $"(the copy into {destination} after its last reader)");
            CudaException.Check(Driver.cuMemcpyHtoDAsync(Address(destination), (void*)_host, _bytes, copy), "cuMemcpyHtoDAsync", $"into {destination} on the copy stream");
            CudaException.Check(Driver.cuEventRecord(_event, copy), "cuEventRecord");
            CudaException.Check(Driver.cuStreamWaitEvent(backend._stream, _event, 0), "cuStreamWaitEvent", $"(the work after the copy into {destination})");
            _queued = true;
        }

        public override void Consumed()
        {
            if (!overlapped || backend._unbacked) return;
            backend.RefuseInCapture($"a mark of the readers of {destination}");
            backend.MakeCurrent();
            if (_consumed == IntPtr.Zero) CudaException.Check(Driver.cuEventCreate(out _consumed, 2 /* CU_EVENT_DISABLE_TIMING */), "cuEventCreate");
            CudaException.Check(Driver.cuEventRecord(_consumed, backend._stream), "cuEventRecord");
            _marked = true;
        }

        public override void Dispose()
        {
            if (_consumed != IntPtr.Zero)
            {
                backend.TryMakeCurrent();
                Driver.cuEventDestroy(_consumed);
                _consumed = IntPtr.Zero;
            }
            if (_host == IntPtr.Zero) return;
            backend.TryMakeCurrent();
            Driver.cuEventDestroy(_event);
            Driver.cuMemFreeHost(_host);
            _host = IntPtr.Zero;
        }
    }
}

using GhostNet.Backends;
using GhostNet.Cuda.Interop;

namespace GhostNet.Cuda;

// Stream capture (issue 13): a plan's training step recorded once as a CUDA graph and replayed
// with cuGraphLaunch, one driver call instead of ~440 launches.
public sealed partial class CudaBackend : ICapturingBackend
{
    private const int CaptureModeThreadLocal = 1; // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: the driver too refuses unsafe calls on this thread
    private bool _capturing;
    private long _memoryMoves; // workspaces regrown (Grow): a graph captured before uses the old addresses

    /// <summary>Graph replays this backend has issued (<see cref="CudaGraph.Replay"/>).</summary>
    public long GraphReplays { get; private set; }

    public ICapturedCalls? Capture(Action work, out string? whyNot)
    {
        whyNot = _unbacked ? "a model-only backend has no device" : !_issue ? "launches are not issued (IssueLaunches is off)" : _capturing ? "a capture is already under way" : null;
        if (whyNot is not null) return null;
        MakeCurrent();
        int begin = Driver.cuStreamBeginCapture(_stream, CaptureModeThreadLocal);
        if (begin != Driver.Success)
        {
            whyNot = $"cuStreamBeginCapture failed ({CuResultNames.Of(begin)})";
            return null;
        }
        long issued = IssuedLaunches;
        _capturing = true;
        try
        {
            work();
        }
        catch (CaptureRefusedException e)
        {
            whyNot = e.Message;
        }
        catch
        {
            // An error that is no refusal: the capture ends, what it recorded is dropped, the error goes on.
            EndCapture(out IntPtr partial);
            if (partial != IntPtr.Zero) Driver.cuGraphDestroy(partial);
            throw;
        }
        finally
        {
            _capturing = false;
        }
        int launches = (int)(IssuedLaunches - issued);
        IssuedLaunches = issued; // captured, not issued: each replay counts them
        int end = EndCapture(out IntPtr graph);
        if (whyNot is null && end != Driver.Success) whyNot = $"cuStreamEndCapture failed ({CuResultNames.Of(end)})";
        if (whyNot is not null)
        {
            if (graph != IntPtr.Zero) Driver.cuGraphDestroy(graph);
            return null;
        }
        int instantiated = Driver.cuGraphInstantiateWithFlags(out IntPtr exec, graph, 0);
        Driver.cuGraphDestroy(graph);
        if (instantiated != Driver.Success)
        {
            whyNot = $"cuGraphInstantiateWithFlags failed ({CuResultNames.Of(instantiated)})";
            return null;
        }
        return new CudaGraph(this, exec, launches, _memoryMoves, Settings());
    }

    /// <summary>
    /// What decides which kernels a call launches, with which arguments: a graph captured under
    /// other settings replays the old kernels, so it is stale (<see cref="CudaGraph.IsCurrent"/>).
    /// </summary>
    private (GemmPrecision, int, bool, LaunchRecorder?) Settings()
    {
        int bits = 0, bit = 0;
        void Add(bool flag) => bits |= (flag ? 1 : 0) << bit++;
        Add(FuseGemmBatchNorm);
        Add(GemmBatchNormStatistics);
        Add(GateInGemm);
        Add(FuseDepthwiseBatchNorm);
        Add(ApplyBatchNormInDepthwise);
        Add(ReduceBatchNormInDepthwise);
        Add(DepthwiseBackwardInOnePass);
        Add(FuseSqueezeExciteGradient);
        Add(SumSplitKInGemm);
        Add(ActivationInGemm);
        Add(ActivationGradientInBiasSum);
        Add(ResidualInBatchNorm);
        Add(_activations == ElementType.BFloat16); // the other type's kernels (a plan of the old type is refused at its launches anyway)
        return (Precision, bits, _issue, Recorder);
    }

    private int EndCapture(out IntPtr graph)
    {
        int end = Driver.cuStreamEndCapture(_stream, out graph);
        if (end != Driver.Success) graph = IntPtr.Zero;
        return end;
    }

    /// <summary>Thrown inside a capture by a call it cannot hold; <see cref="Capture"/> turns it into its reason.</summary>
    private sealed class CaptureRefusedException(string message) : Exception(message);

    /// <summary>
    /// Refuses <paramref name="what"/> inside a capture: a graph holds launches, not host work or
    /// new memory. Deferred text, so that the calls outside a capture format nothing.
    /// </summary>
    private void RefuseInCapture(DeferredText what)
    {
        if (_capturing) throw new CaptureRefusedException($"{what.ToString()} inside the captured region (the graph would replay a stale address or skip host work)");
    }

    /// <summary>A captured graph of this backend's launches.</summary>
    public sealed class CudaGraph : ICapturedCalls
    {
        private readonly CudaBackend _backend;
        private readonly long _memoryMoves;
        private readonly (GemmPrecision, int, bool, LaunchRecorder?) _settings;
        private IntPtr _exec;

        internal CudaGraph(CudaBackend backend, IntPtr exec, int launches, long memoryMoves, (GemmPrecision, int, bool, LaunchRecorder?) settings) =>
            (_backend, _exec, Launches, _memoryMoves, _settings) = (backend, exec, launches, memoryMoves, settings);

        public int Launches { get; }

        /// <summary>False once the backend moved a workspace the graph uses, or changed a setting that picks its kernels.</summary>
        public bool IsCurrent => _memoryMoves == _backend._memoryMoves && _settings == _backend.Settings();

        public void Replay()
        {
            ObjectDisposedException.ThrowIf(_exec == IntPtr.Zero, this);
            if (!IsCurrent) throw new InvalidOperationException("the graph uses a workspace the backend has since moved, or kernels its settings no longer pick: capture it again");
            _backend.RefuseInCapture("a graph replay");
            _backend.MakeCurrent();
            CudaException.Check(Driver.cuGraphLaunch(_exec, _backend._stream), "cuGraphLaunch", $"({Launches} launches)");
            _backend.IssuedLaunches += Launches;
            _backend.GraphReplays++;
        }

        public void Dispose()
        {
            if (_exec == IntPtr.Zero) return;
            _backend.TryMakeCurrent();
            Driver.cuGraphExecDestroy(_exec);
            _exec = IntPtr.Zero;
        }
    }
}

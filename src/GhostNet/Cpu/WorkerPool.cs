namespace GhostNet.Cpu;

/// <summary>A unit of parallel work: <c>Execute(i, worker)</c> for i in [0, count).</summary>
internal interface IParallelBody
{
    void Execute(int index, int worker);
}

/// <summary>
/// A fixed set of threads that run one parallel loop at a time. Unlike Parallel.For it allocates
/// nothing per loop: the loop body is a struct copied into a box that is made once per body type,
/// which is what lets a training step run without touching the managed heap.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    private readonly Thread[] _threads;
    private readonly object _gate = new();
    private readonly Dictionary<Type, IParallelBody> _boxes = new();
    private readonly long[] _workerAllocated;
    private IParallelBody? _body;
    private int _count, _next, _busy, _generation;
    private bool _disposed;
    private Exception? _error;

    public WorkerPool(int threads)
    {
        Threads = Math.Max(1, threads);
        _threads = new Thread[Threads - 1];
        _workerAllocated = new long[Threads];
        for (int i = 0; i < _threads.Length; i++)
        {
            int worker = i + 1;
            _threads[i] = new Thread(() => WorkerLoop(worker)) { IsBackground = true, Name = $"ghostnet-cpu-{worker}" };
            _threads[i].Start();
        }
    }

    /// <summary>Threads taking part in a loop, the caller's included.</summary>
    public int Threads { get; }

    /// <summary>
    /// Managed bytes allocated so far by the pool's own threads (as of their last loop): with the
    /// caller's GC.GetAllocatedBytesForCurrentThread it accounts for every thread a step uses.
    /// </summary>
    public long WorkerAllocatedBytes
    {
        get
        {
            lock (_gate) return _workerAllocated.Sum();
        }
    }

    public void For<T>(int count, in T body) where T : struct, IParallelBody
    {
        if (count <= 0) return;
        if (count == 1 || Threads == 1)
        {
            T local = body;
            for (int i = 0; i < count; i++) local.Execute(i, 0);
            return;
        }
        var box = Box<T>();
        box.Value = body;
        Dispatch(box, count);
        box.Value = default;
    }

    private BodyBox<T> Box<T>() where T : struct, IParallelBody
    {
        if (!_boxes.TryGetValue(typeof(T), out var box))
            _boxes[typeof(T)] = box = new BodyBox<T>();
        return (BodyBox<T>)box;
    }

    private void Dispatch(IParallelBody body, int count)
    {
        lock (_gate)
        {
            _body = body;
            _count = count;
            _next = 0;
            _error = null;
            _busy = _threads.Length;
            _generation++;
            Monitor.PulseAll(_gate);
        }
        Work(body, count, 0);
        lock (_gate)
        {
            while (_busy > 0) Monitor.Wait(_gate);
            _body = null;
        }
        if (_error is { } e) throw new AggregateException("a CPU kernel failed", e);
    }

    private void Work(IParallelBody body, int count, int worker)
    {
        while (true)
        {
            int i = Interlocked.Increment(ref _next) - 1;
            if (i >= count) return;
            try { body.Execute(i, worker); }
            catch (Exception e) { Interlocked.CompareExchange(ref _error, e, null); }
        }
    }

    private void WorkerLoop(int worker)
    {
        int seen = 0;
        while (true)
        {
            IParallelBody body;
            int count;
            lock (_gate)
            {
                while (_generation == seen && !_disposed) Monitor.Wait(_gate);
                if (_disposed) return;
                seen = _generation;
                body = _body!;
                count = _count;
            }
            Work(body, count, worker);
            lock (_gate)
            {
                _workerAllocated[worker] = GC.GetAllocatedBytesForCurrentThread();
                if (--_busy == 0) Monitor.PulseAll(_gate);
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            Monitor.PulseAll(_gate);
        }
        foreach (var t in _threads) t.Join();
    }

    private sealed class BodyBox<T> : IParallelBody where T : struct, IParallelBody
    {
        public T Value;
        public void Execute(int index, int worker) => Value.Execute(index, worker);
    }
}

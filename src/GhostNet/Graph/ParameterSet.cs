using GhostNet.Backends;

namespace GhostNet.Graph;

/// <summary>
/// All state of a model, in state-dict order (timm's names), and the arenas that hold it:
/// parameters in one storage (gradients in its twin, momentum in a third) and running statistics
/// in another. Entries are registered while the network is first built; <see cref="Place"/> then
/// gives offsets and memory. Parameters that decay are placed first and the exempt ones after,
/// so SGD updates each group as one contiguous run.
/// </summary>
public sealed class ParameterSet : IDisposable
{
    private readonly List<StateEntry> _entries = [];
    private readonly Dictionary<string, StateEntry> _byName = [];

    public ParameterSet()
    {
        Values = new Storage("parameters").WithGradient();
        Momentum = new Storage("momentum");
        Stats = new Storage("running_stats");
    }

    public IReadOnlyList<StateEntry> Entries => _entries;
    public IEnumerable<Parameter> Parameters => _entries.OfType<Parameter>();
    public Storage Values { get; }
    public Storage Momentum { get; }
    public Storage Stats { get; }
    public bool IsPlaced { get; private set; }

    /// <summary>Learnable scalars: what timm and the paper count as the model's parameters.</summary>
    public long ParameterCount => Parameters.Sum(p => p.Count);

    /// <summary>The decaying parameters as one contiguous tensor (and their gradients, momentum).</summary>
    public Tensor DecayGroup { get; private set; }
    public Tensor NoDecayGroup { get; private set; }

    public StateEntry this[string name] =>
        _byName.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"no state entry named '{name}'");

    public bool Contains(string name) => _byName.ContainsKey(name);

    internal T GetOrAdd<T>(string name, Func<T> create) where T : StateEntry
    {
        if (_byName.TryGetValue(name, out var existing))
        {
            var made = create();
            if (existing is not T typed || !typed.Shape.SequenceEqual(made.Shape))
                throw new InvalidOperationException($"'{name}' was registered as {existing}, now asked for as {made}");
            return typed;
        }
        if (IsPlaced) throw new InvalidOperationException($"'{name}' is new, but the parameter set is already placed in memory");
        var entry = create();
        _entries.Add(entry);
        _byName.Add(name, entry);
        return entry;
    }

    public void Place(IBackend backend)
    {
        if (IsPlaced) return;
        var parameters = Parameters.ToList();
        long decayStart = 0, decayEnd = 0, noDecayStart = 0, noDecayEnd = 0;
        foreach (var decays in new[] { true, false })
        {
            long start = Values.Length;
            foreach (var p in parameters.Where(p => p.Decays == decays))
            {
                p.Offset = Values.Reserve(p.Count);
                p.Storage = Values;
                p.MomentumStorage = Momentum;
            }
            if (decays) { decayStart = start; decayEnd = Values.Length; }
            else { noDecayStart = start; noDecayEnd = Values.Length; }
        }
        Momentum.Reserve(Values.Length);
        foreach (var s in _entries.OfType<StatBuffer>())
        {
            s.Offset = Stats.Reserve(s.Count);
            s.Storage = Stats;
        }
        Values.Bind(backend);
        Momentum.Bind(backend);
        Stats.Bind(backend);
        DecayGroup = new Tensor(Values, decayStart, 1, 1, 1, (int)(decayEnd - decayStart));
        NoDecayGroup = new Tensor(Values, noDecayStart, 1, 1, 1, (int)(noDecayEnd - noDecayStart));
        IsPlaced = true;
    }

    public void Dispose()
    {
        Values.Release();
        Momentum.Release();
        Stats.Release();
    }
}

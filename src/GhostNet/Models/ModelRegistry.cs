using System.Collections.Concurrent;

namespace GhostNet.Models;

/// <summary>
/// One registered model: its name (--arch), a line about it, the input size and class count it
/// was made for (what `ghostcuda models` and `info` show by default), and the factory that makes
/// its configuration from options.
/// </summary>
public sealed record RegisteredModel(string Name, string Description, int InputSize, int NumClasses, Func<ModelOptions, IModelConfig> Create);

/// <summary>
/// The models by name, as timm's @register_model: plans, checkpoints, info, eval and the CLI take
/// any of them. The built-in ones are listed here, one line per model file; a program using the
/// library adds its own with <see cref="Register"/> before it builds or loads one.
/// </summary>
public static class ModelRegistry
{
    private static readonly ConcurrentDictionary<string, RegisteredModel> Models = new(StringComparer.Ordinal);
    private static readonly List<string> Order = [];

    static ModelRegistry()
    {
        foreach (var m in GhostNetConfig.Registrations) Register(m);
        foreach (var m in SeedGhostNetConfig.Registrations) Register(m);
        foreach (var m in ResNetCifarConfig.Registrations) Register(m);
        foreach (var m in VggCifarConfig.Registrations) Register(m);
        foreach (var m in MobileNetV3Config.Registrations) Register(m);
    }

    /// <summary>Every registered model, in registration order.</summary>
    public static IReadOnlyList<RegisteredModel> All
    {
        get
        {
            lock (Order) return [.. Order.Select(n => Models[n])];
        }
    }

    public static IReadOnlyList<string> Names => [.. All.Select(m => m.Name)];

    public static bool Contains(string name) => Models.ContainsKey(name);

    /// <summary>Adds a model; a name already taken is refused (a plug-in cannot silently replace a built-in).</summary>
    public static void Register(RegisteredModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (string.IsNullOrWhiteSpace(model.Name) || model.Name.Any(char.IsWhiteSpace))
            throw new ArgumentException($"model name '{model.Name}' must be a non-empty word", nameof(model));
        if (model.InputSize < 1 || model.NumClasses < 1)
            throw new ArgumentException($"model {model.Name}: input size {model.InputSize} and class count {model.NumClasses} must be positive", nameof(model));
        ArgumentNullException.ThrowIfNull(model.Create);
        lock (Order)
        {
            if (!Models.TryAdd(model.Name, model)) throw new ArgumentException($"a model named '{model.Name}' is already registered", nameof(model));
            Order.Add(model.Name);
        }
    }

    public static RegisteredModel Get(string name) =>
        Models.TryGetValue(name, out var m) ? m
            : throw new ArgumentException($"unknown architecture '{name}'; known: {string.Join(", ", Names)}");

    /// <summary>The configuration of model <paramref name="name"/> with <paramref name="options"/>, validated.</summary>
    public static IModelConfig Create(string name, ModelOptions options)
    {
        var config = Get(name).Create(options);
        config.Validate();
        return config;
    }

    /// <summary>For factories: the refusal of an option the model does not have.</summary>
    internal static void Refuse(string arch, string option, object? value, object? allowed = null)
    {
        if (value is not null && !Equals(value, allowed))
            throw new ArgumentException($"{arch} has no {option} option (given {value})");
    }
}

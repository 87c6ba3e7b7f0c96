using System.Text.Json;
using System.Text.Json.Serialization;
using GhostNet.Models;

namespace GhostNet.Training;

/// <summary>
/// What a checkpoint says about its run besides the tensors, stored as JSON in the file's
/// metadata. Everything a later run builds from it (the model's shape, the input size, the class
/// list) is checked by <see cref="Problem"/> when it is read and before it is written, so a bad
/// file fails at the door, naming its field, and not deep inside the model or the data loader.
/// </summary>
public sealed record CheckpointInfo(
    string Arch, float Width, int NumClasses, float DropRate, int InputSize, string Dataset, string Normalization,
    IReadOnlyList<string> Classes, TrainingState State, IReadOnlyDictionary<string, string> Options)
{
    public const int MinInputSize = 32; // GhostNet downsamples 32 times
    public const int MaxInputSize = 4096;
    private const int MaxNameLength = 200, MaxPathLength = 4096; // the data set is a full path when it is a folder (PATH_MAX)

    /// <summary>Every field is required, nulls and repeated names are refused; unknown fields are ignored (later versions may add some).</summary>
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
        AllowDuplicateProperties = false,
    };

    /// <summary>The model this run trains, made again through the registry from the stored options.</summary>
    [JsonIgnore]
    public IModelConfig Config => ModelRegistry.Create(Arch, ModelOptions);

    /// <summary>
    /// The options the model was made with, exactly (<see cref="IModelConfig.Options"/>: nulls
    /// kept, so a model that refuses an option gets none back). Optional: files before issue 14
    /// lack it, and their GhostNet's width, classes and dropout stand for it.
    /// </summary>
    public ModelOptions? Model { get; init; }

    [JsonIgnore]
    public ModelOptions ModelOptions => Model ?? new(NumClasses, DropRate, Width);

    /// <summary>
    /// The run information of model <paramref name="arch"/> (the name it was asked for: ghostnet_050
    /// with --width 0.75 stays ghostnet_050) with the model's fields filled from its configuration.
    /// </summary>
    public static CheckpointInfo For(string arch, IModelConfig config, int inputSize, string dataset, string normalization, IReadOnlyList<string> classes,
        TrainingState state, IReadOnlyDictionary<string, string> options) =>
        new(arch, config.Width, config.NumClasses, config.DropRate, inputSize, dataset, normalization, classes, state, options) { Model = config.Options };

    /// <summary>Every finished epoch of the run so far, oldest first: the source of log.csv and the plots (optional: older files lack it).</summary>
    public IReadOnlyList<EpochRecord> History { get; init; } = [];

    /// <summary>The first field that is out of range, as "Field: what is wrong", or null.</summary>
    public string? Problem()
    {
        if (Name(Arch) is { } arch) return $"Arch {arch}";
        if (!ModelRegistry.Contains(Arch)) return $"Arch '{Arch}' is not a registered model (known: {string.Join(", ", ModelRegistry.Names)})";
        if (!(Width > 0 && Width <= 10)) return $"Width {Width} is not in (0, 10]";
        if (NumClasses < 1) return $"NumClasses {NumClasses} is below 1";
        if (!(DropRate >= 0 && DropRate < 1)) return $"DropRate {DropRate} is not in [0, 1)";
        if (InputSize is < MinInputSize or > MaxInputSize) return $"InputSize {InputSize} is not in [{MinInputSize}, {MaxInputSize}]";
        if (Name(Dataset, MaxPathLength) is { } dataset) return $"Dataset {dataset}";
        if (Name(Normalization) is { } normalization) return $"Normalization {normalization}";
        if (Classes is null) return "Classes is missing";
        if (Classes.Count != NumClasses) return $"Classes lists {Classes.Count} names, but NumClasses is {NumClasses}";
        int blank = Classes.ToList().FindIndex(c => c is null);
        if (blank >= 0) return $"Classes[{blank}] is null";
        if (Options is null) return "Options is missing";
        if (Options.FirstOrDefault(o => o.Value is null) is { Key: { } key }) return $"Options '{key}' is null";
        if (History is null || History.Any(r => r is null)) return "History holds a null";
        if (Model is { } m && (m.NumClasses != NumClasses || (m.DropRate is { } d && d != DropRate) || (m.Width is { } w && w != Width)))
            return $"Model ({m.NumClasses} classes, dropout {m.DropRate}, width {m.Width}) contradicts NumClasses {NumClasses}, DropRate {DropRate}, Width {Width}";
        try
        {
            _ = Config;
        }
        catch (ArgumentException e)
        {
            return $"the model options do not fit {Arch}: {e.Message}";
        }
        return State is null ? "State is missing" : State.Problem() is { } p ? "State." + p : null;
    }

    public string ToJson()
    {
        if (Problem() is { } p) throw new ArgumentException($"run information cannot be saved: {p}");
        return JsonSerializer.Serialize(this, JsonOptions);
    }

    /// <summary>Parses and checks run information read from <paramref name="source"/> (named in every error).</summary>
    public static CheckpointInfo FromJson(string json, string source)
    {
        CheckpointInfo? info;
        try
        {
            info = JsonSerializer.Deserialize<CheckpointInfo>(json, JsonOptions);
        }
        catch (Exception e) when (e is JsonException or NotSupportedException or ArgumentException)
        {
            // System.Text.Json's own text speaks of C# types and annotations; the JSON path is what the file's reader needs.
            string path = (e as JsonException)?.Path ?? "$";
            var missing = System.Text.RegularExpressions.Regex.Match(e.Message, @"missing required properties including: (.*?)\.?$");
            string where = missing.Success ? $"at {path}: missing {missing.Groups[1].Value}"
                : path.Length > 1 ? $"at {path}: a field is null or of the wrong type" : e.Message;
            throw new InvalidDataException($"{source}: the run information is malformed: {where}", e);
        }
        if (info is null) throw new InvalidDataException($"{source}: the run information is JSON null");
        if (info.Problem() is { } p) throw new InvalidDataException($"{source}: bad run information: {p}");
        return info;
    }

    private static string? Name(string? s, int limit = MaxNameLength) =>
        s is null ? "is missing" : s.Length == 0 ? "is empty" : s.Length > limit ? $"is {s.Length} characters long (at most {limit})" : null;
}

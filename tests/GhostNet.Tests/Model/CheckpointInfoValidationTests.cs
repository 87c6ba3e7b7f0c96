using System.Text.Json.Nodes;
using GhostNet.Cpu;
using GhostNet.Graph;
using GhostNet.Models;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Model;

/// <summary>
/// The run information in a checkpoint's metadata with every field missing, of the wrong JSON
/// type or out of range: Checkpoint.Read must refuse it with an InvalidDataException that names
/// the file and the field, before anything is built from it.
/// </summary>
public class CheckpointInfoValidationTests : TempFolderTest
{
    private const string InfoKey = "ghostnet.checkpoint";

    private static readonly string[] InfoFields = ["Arch", "Width", "NumClasses", "DropRate", "InputSize", "Dataset", "Normalization", "Classes", "State", "Options"];
    private static readonly string[] StateFields = ["Epoch", "BatchInEpoch", "GlobalStep", "PlanStep", "BestTop1", "EpochLossSum", "EpochTop1", "EpochTop5", "EpochSeen", "EpochSeconds"];

    /// <summary>A change to the run information's JSON and the field the error must name.</summary>
    private sealed record Case(string Name, Func<string, string> Mutate, string Field);

    private static Case Set(string field, JsonNode? value, string? name = null) =>
        new(name ?? $"{field} = {value?.ToJsonString() ?? "null"}", json => Edit(json, o => o[field] = value), field);

    private static Case SetState(string field, JsonNode? value, string? name = null) =>
        new(name ?? $"State.{field} = {value?.ToJsonString() ?? "null"}", json => Edit(json, o => o["State"]![field] = value), field);

    private static string Edit(string json, Action<JsonObject> edit)
    {
        var o = JsonNode.Parse(json)!.AsObject();
        edit(o);
        return o.ToJsonString();
    }

    private static IEnumerable<Case> Cases()
    {
        foreach (var f in InfoFields)
        {
            yield return new Case($"{f} missing", json => Edit(json, o => o.Remove(f)), f);
            yield return Set(f, null);
        }
        foreach (var f in new[] { "Width", "NumClasses", "DropRate", "InputSize" })
        {
            yield return Set(f, "1");
            yield return Set(f, new JsonArray(1));
            yield return Set(f, true);
        }
        foreach (var f in new[] { "Arch", "Dataset", "Normalization" })
        {
            yield return Set(f, 5);
            yield return Set(f, new JsonObject());
            yield return Set(f, "");
        }
        yield return Set("Arch", new string('a', 500));
        yield return Set("Classes", "ant");
        yield return Set("Classes", new JsonArray(1, 2, 3));
        yield return Set("Classes", new JsonArray(null, "bee", "cat"));
        yield return Set("Classes", new JsonArray(), "Classes = [] (NumClasses 3)");
        yield return Set("Classes", new JsonArray("ant", "bee"), "Classes count 2, NumClasses 3");
        yield return Set("State", 3);
        yield return Set("State", new JsonArray());
        yield return Set("Options", new JsonArray(1));
        yield return Set("Options", new JsonObject { ["seed"] = 1 });
        yield return Set("Options", new JsonObject { ["seed"] = null });
        foreach (var v in new JsonNode[] { 0, -1, 10.5, 1e39, 1e300 }) yield return Set("Width", v);
        yield return new Case("Width = 1e999", json => Edit(json, o => o["Width"] = "BIG").Replace("\"BIG\"", "1e999"), "Width");
        foreach (var v in new JsonNode[] { 0, -1, 4, 2, 2.5, 1e10, 10000000000 }) yield return Set("NumClasses", v);
        foreach (var v in new JsonNode[] { -0.1, 1, 1.5, 1e39 }) yield return Set("DropRate", v);
        foreach (var v in new JsonNode[] { 0, -1, 31, 4097, 1 << 30, 2.5, 1e10, 10000000000 }) yield return Set("InputSize", v);

        foreach (var f in StateFields)
        {
            yield return new Case($"State.{f} missing", json => Edit(json, o => o["State"]!.AsObject().Remove(f)), f);
            yield return SetState(f, null);
            yield return SetState(f, "1");
            yield return SetState(f, new JsonObject());
            yield return SetState(f, f == "BestTop1" ? -2 : -1);
        }
        foreach (var f in new[] { "Epoch", "BatchInEpoch" }) yield return SetState(f, 1e10);
        yield return SetState("BestTop1", 100.5);
        yield return SetState("BestTop1", "NaN");
        yield return new Case("State.EpochLossSum = 1e999", json => Edit(json, o => o["State"]!["EpochLossSum"] = "BIG").Replace("\"BIG\"", "1e999"), "EpochLossSum");
        yield return SetState("EpochSeconds", "Infinity");
        yield return SetState("EpochTop1", 6, "State.EpochTop1 6 > EpochTop5 5");
        yield return SetState("EpochTop5", 7, "State.EpochTop5 7 > EpochSeen 6");
        yield return SetState("BatchInEpoch", 12, "State.BatchInEpoch 12 > GlobalStep 11");

        yield return new Case("run information is not JSON", _ => "{", "run information");
        yield return new Case("run information is empty", _ => "", "run information");
        yield return new Case("run information is null", _ => "null", "run information");
        yield return new Case("run information is an array", _ => "[]", "run information");
        yield return new Case("run information is a number", _ => "42", "run information");
        yield return new Case("run information names Width twice", json => "{\"Width\":0.5," + json[1..], "Width");
        yield return new Case("run information nested 1000 deep", json => "{\"Deep\":" + new string('[', 1000) + new string(']', 1000) + "," + json[1..], "run information");
    }

    [Test]
    public void Every_bad_field_of_the_run_information_is_refused_naming_the_file_and_the_field()
    {
        string basePath = Path.Combine(Folder, "base.safetensors");
        SmallCheckpoint.Save(basePath);
        var (tensors, metadata) = Safetensors.Read(basePath);
        string json = metadata[InfoKey];
        Assert.DoesNotThrow(() => Checkpoint.Read(basePath), "the unbroken checkpoint reads");
        var failures = new List<string>();
        string path = Path.Combine(Folder, "case.safetensors");
        foreach (var c in Cases())
        {
            Safetensors.Write(path, tensors, new Dictionary<string, string>(metadata) { [InfoKey] = c.Mutate(json) });
            try
            {
                Checkpoint.Read(path);
                failures.Add($"{c.Name}: accepted");
            }
            catch (InvalidDataException e)
            {
                if (!e.Message.Contains(path) || !e.Message.Contains(c.Field, StringComparison.OrdinalIgnoreCase))
                    failures.Add($"{c.Name}: the message does not name the file and '{c.Field}': {e.Message}");
            }
            catch (Exception e)
            {
                failures.Add($"{c.Name}: threw {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    [Test]
    public void Run_information_that_could_not_be_read_back_is_not_saved()
    {
        using var backend = new CpuBackend(1);
        using var model = new GhostNetModel(SmallCheckpoint.Config, backend, seed: 1);
        string path = Path.Combine(Folder, "c.safetensors");
        var ex = Assert.Throws<ArgumentException>(() => Checkpoint.Save(path, model, SmallCheckpoint.Info() with { InputSize = 0 }));
        Assert.That(ex!.Message, Does.Contain("InputSize"));
        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public void The_run_information_round_trips()
    {
        string path = Path.Combine(Folder, "c.safetensors");
        SmallCheckpoint.Save(path);
        var info = Checkpoint.Read(path).Info;
        var expected = SmallCheckpoint.Info();
        Assert.That(info.State, Is.EqualTo(expected.State));
        Assert.That(info.Classes, Is.EqualTo(expected.Classes));
        Assert.That(info.Options, Is.EqualTo(expected.Options));
        Assert.That(info.History, Is.EqualTo(expected.History));
        Assert.That(info with { Classes = expected.Classes, Options = expected.Options, History = expected.History }, Is.EqualTo(expected));
    }
}

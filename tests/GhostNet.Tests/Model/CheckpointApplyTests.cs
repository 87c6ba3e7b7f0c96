using GhostNet.Cpu;
using GhostNet.Graph;
using GhostNet.Models;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Model;

/// <summary>
/// A checkpoint that does not fit the model is refused whole: every tensor is checked by name,
/// shape, dtype and size before the first one is uploaded, so a refused file leaves the model
/// exactly as it was.
/// </summary>
public class CheckpointApplyTests : TempFolderTest
{
    private const string Source = "ckpt.safetensors";

    /// <summary>A change to the checkpoint's tensor list and the name the error must mention.</summary>
    private sealed record Case(string Name, Func<List<SafetensorsTensor>, List<SafetensorsTensor>> Break, string Names);

    private static List<SafetensorsTensor> Replace(List<SafetensorsTensor> list, string name, Func<SafetensorsTensor, SafetensorsTensor> with) =>
        list.Select(t => t.Name == name ? with(t) : t).ToList();

    private static IEnumerable<Case> Cases(List<SafetensorsTensor> good)
    {
        var state = good.Where(t => !t.Name.StartsWith(Checkpoint.MomentumPrefix)).ToList();
        string last = state.Last(t => t.DType == "F32").Name;
        string counter = state.Last(t => t.DType == "I64").Name;
        string lastMomentum = good.Last(t => t.Name.StartsWith(Checkpoint.MomentumPrefix)).Name;
        yield return new("last tensor reshaped", l => Replace(l, last, t => t with { Shape = [1, t.ElementCount] }), last);
        yield return new("last tensor as I32", l => Replace(l, last, t => t with { DType = "I32" }), last);
        yield return new("last tensor short of bytes", l => Replace(l, last, t => t with { Data = t.Data[..^4] }), last);
        yield return new("counter as F32", l => Replace(l, counter, t => SafetensorsTensor.Floats(t.Name, [], [1f])), counter);
        yield return new("counter as an I64 vector", l => Replace(l, counter, t => t with { Shape = [1] }), counter);
        yield return new("last tensor missing", l => l.Where(t => t.Name != last).ToList(), last);
        yield return new("an unexpected tensor", l => [.. l, SafetensorsTensor.Floats("head.extra", [1], [0f])], "head.extra");
        yield return new("a tensor given twice", l => [.. l, l.First(t => t.Name == last)], last);
        yield return new("last momentum missing", l => l.Where(t => t.Name != lastMomentum).ToList(), lastMomentum[Checkpoint.MomentumPrefix.Length..]);
        yield return new("last momentum reshaped", l => Replace(l, lastMomentum, t => t with { Shape = [1, t.ElementCount] }), lastMomentum[Checkpoint.MomentumPrefix.Length..]);
        yield return new("last momentum as F64", l => Replace(l, lastMomentum, t => t with { DType = "F64", Data = [.. t.Data, .. t.Data] }), lastMomentum[Checkpoint.MomentumPrefix.Length..]);
        yield return new("momentum of no parameter", l => [.. l, SafetensorsTensor.Floats(Checkpoint.MomentumPrefix + "nothing", [1], [0f])], "nothing");
    }

    [Test]
    public void A_checkpoint_that_does_not_fit_is_refused_before_anything_is_uploaded()
    {
        string path = Path.Combine(Folder, Source);
        SmallCheckpoint.Save(path, seed: 1);
        var good = Checkpoint.Read(path).Tensors;
        using var backend = new CpuBackend(1);
        using var model = new GhostNetModel(SmallCheckpoint.Config, backend, seed: 2);
        var before = Snapshot(model);
        var failures = new List<string>();
        foreach (var c in Cases(good))
        {
            try
            {
                Checkpoint.Apply(model, c.Break(good), withOptimizer: true, source: Source);
                failures.Add($"{c.Name}: accepted");
            }
            catch (InvalidDataException e)
            {
                if (!e.Message.Contains(Source) || !e.Message.Contains(c.Names)) failures.Add($"{c.Name}: the message does not name {Source} and {c.Names}: {e.Message}");
            }
            catch (Exception e)
            {
                failures.Add($"{c.Name}: threw {e.GetType().Name}: {e.Message}");
            }
            var after = Snapshot(model);
            var changed = before.Keys.Where(k => !before[k].SequenceEqual(after[k])).ToList();
            if (changed.Count > 0) failures.Add($"{c.Name}: {changed.Count} tensors were changed, e.g. {changed[0]}");
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
        Assert.DoesNotThrow(() => Checkpoint.Apply(model, good, withOptimizer: true, source: Source), "the unbroken checkpoint applies");
        Assert.That(Snapshot(model).Keys.Count(k => !before[k].SequenceEqual(Snapshot(model)[k])), Is.GreaterThan(0));
    }

    private static Dictionary<string, byte[]> Snapshot(GhostNetModel model)
    {
        var all = StateDict.Read(model.Parameters, model.Backend).ToDictionary(t => t.Name, t => t.Data);
        foreach (var p in model.Parameters.Parameters)
        {
            var values = new float[p.Count];
            model.Backend.Download(p.Momentum, values);
            all[Checkpoint.MomentumPrefix + p.Name] = SafetensorsTensor.Floats(p.Name, [p.Count], values).Data;
        }
        return all;
    }
}

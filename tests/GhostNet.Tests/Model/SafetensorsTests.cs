using GhostNet.Cpu;
using GhostNet.Graph;
using GhostNet.Models;
using NUnit.Framework;

namespace GhostNet.Tests.Model;

public class SafetensorsTests : TempFolderTest
{
    [Test]
    public void A_model_state_round_trips_bit_for_bit_with_metadata()
    {
        using var backend = new CpuBackend(1);
        using var a = new GhostNetModel(GhostNetConfig.FromArch("ghostnet_050") with { NumClasses = 7 }, backend, seed: 1);
        ((Counter)a.Parameters["bn1.num_batches_tracked"]).Value = 12345678901;
        string path = Path.Combine(Folder, "m.safetensors");
        StateDict.Save(a.Parameters, backend, path, new Dictionary<string, string> { ["arch"] = "ghostnet_050" });
        using var b = new GhostNetModel(GhostNetConfig.FromArch("ghostnet_050") with { NumClasses = 7 }, backend, seed: 2);
        var metadata = StateDict.Load(b.Parameters, backend, path);
        Assert.That(metadata["arch"], Is.EqualTo("ghostnet_050"));
        var sa = StateDict.Read(a.Parameters, backend);
        var sb = StateDict.Read(b.Parameters, backend);
        Assert.That(sb.Select(t => t.Name), Is.EqualTo(sa.Select(t => t.Name)));
        for (int i = 0; i < sa.Count; i++) Assert.That(sb[i].Data, Is.EqualTo(sa[i].Data), sa[i].Name);
        Assert.That(((Counter)b.Parameters["bn1.num_batches_tracked"]).Value, Is.EqualTo(12345678901));
        Assert.That(File.Exists(GhostNet.IO.AtomicFile.TempPath(path)), Is.False, "the temporary file is renamed away");
    }

    [Test]
    public void The_file_layout_follows_the_format()
    {
        string path = Path.Combine(Folder, "t.safetensors");
        Safetensors.Write(path, [SafetensorsTensor.Floats("w", [2], [1.5f, -2f]), SafetensorsTensor.Int64Scalar("n", 3)]);
        var bytes = File.ReadAllBytes(path);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        Assert.That(headerLength % 8, Is.Zero);
        string header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)headerLength).TrimEnd();
        Assert.That(header, Is.EqualTo("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}"));
        Assert.That(BitConverter.ToSingle(bytes, 8 + (int)headerLength + 4), Is.EqualTo(-2f));
        Assert.That(BitConverter.ToInt64(bytes, 8 + (int)headerLength + 8), Is.EqualTo(3));
    }

    [Test]
    public void A_truncated_file_is_a_clear_error_and_the_model_is_untouched()
    {
        using var backend = new CpuBackend(1);
        using var model = new GhostNetModel(new GhostNetConfig(0.25f, 10), backend, seed: 1);
        string path = Path.Combine(Folder, "m.safetensors");
        StateDict.Save(model.Parameters, backend, path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var before = StateDict.Read(model.Parameters, backend);
        var ex = Assert.Throws<InvalidDataException>(() => StateDict.Load(model.Parameters, backend, path));
        Assert.That(ex!.Message, Does.Contain("truncated"));
        var after = StateDict.Read(model.Parameters, backend);
        for (int i = 0; i < before.Count; i++) Assert.That(after[i].Data, Is.EqualTo(before[i].Data));
        File.WriteAllBytes(path, bytes[..5]);
        Assert.Throws<InvalidDataException>(() => StateDict.Load(model.Parameters, backend, path));
    }

    [Test]
    public void A_state_dict_of_another_model_is_rejected_by_name_and_shape()
    {
        using var backend = new CpuBackend(1);
        using var small = new GhostNetModel(new GhostNetConfig(0.25f, 10), backend, seed: 1);
        using var other = new GhostNetModel(new GhostNetConfig(0.25f, 12), backend, seed: 1);
        string path = Path.Combine(Folder, "m.safetensors");
        StateDict.Save(small.Parameters, backend, path);
        var ex = Assert.Throws<InvalidDataException>(() => StateDict.Load(other.Parameters, backend, path));
        Assert.That(ex!.Message, Does.Contain("classifier.weight"));
        var tensors = Safetensors.Read(path).Tensors.Where(t => !t.Name.StartsWith("classifier")).ToList();
        Assert.DoesNotThrow(() => StateDict.Write(other.Parameters, backend, tensors, strict: false), "non-strict load skips the head");
        Assert.Throws<InvalidDataException>(() => StateDict.Write(other.Parameters, backend, tensors, strict: true));
    }
}

using GhostNet.Cpu;
using GhostNet.Graph;
using GhostNet.Models;
using GhostNet.Training;
using NUnit.Framework;

namespace GhostNet.Tests.Model;

/// <summary>NaN and infinity are found in a checkpoint's tensors and in a live model's state.</summary>
public class NonFiniteTests
{
    [Test]
    public void The_tensors_holding_NaN_or_Inf_are_named_in_file_order()
    {
        var half = new byte[4];
        BitConverter.TryWriteBytes(half.AsSpan(0, 2), BitConverter.HalfToUInt16Bits(Half.PositiveInfinity));
        var tensors = new List<SafetensorsTensor>
        {
            SafetensorsTensor.Floats("fine", [3], [1f, -0f, float.MaxValue]),
            SafetensorsTensor.Floats("nan", [2], [1f, float.NaN]),
            new("inf64", "F64", [1], BitConverter.GetBytes(double.NegativeInfinity)),
            new("inf16", "F16", [2], half),
            new("bf16nan", "BF16", [1], [0xC0, 0x7F]),
            new("bf16fine", "BF16", [1], [0x80, 0x3F]),
            SafetensorsTensor.Int64Scalar("counter", BitConverter.SingleToInt32Bits(float.NaN)),
            new("bytes", "U8", [4], [0xFF, 0xFF, 0xFF, 0xFF]),
        };
        Assert.That(Checkpoint.NonFiniteTensors(tensors), Is.EqualTo(new[] { "nan", "inf64", "inf16", "bf16nan" }));
    }

    [Test]
    public void A_live_model_names_its_first_parameter_or_running_statistic_that_is_not_finite()
    {
        using var backend = new CpuBackend(1);
        using var model = new GhostNetModel(new GhostNetConfig(0.25f, 3), backend, seed: 1);
        Assert.That(StateDict.FirstNonFinite(model.Parameters, backend), Is.Null);
        var var_ = (StatBuffer)model.Parameters.Entries.Last(e => e is StatBuffer);
        Poison(backend, var_.Value, float.PositiveInfinity);
        Assert.That(StateDict.FirstNonFinite(model.Parameters, backend), Is.EqualTo(var_.Name));
        var p = model.Parameters.Parameters.ElementAt(3);
        Poison(backend, p.Value, float.NaN);
        Assert.That(StateDict.FirstNonFinite(model.Parameters, backend), Is.EqualTo(p.Name), "the first in state-dict order");
    }

    private static void Poison(CpuBackend backend, Backends.Tensor t, float value)
    {
        var values = new float[t.Count];
        backend.Download(t, values);
        values[^1] = value;
        backend.Upload(values, t);
    }
}

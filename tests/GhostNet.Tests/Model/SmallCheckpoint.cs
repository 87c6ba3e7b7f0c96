using System.Buffers.Binary;
using System.Text;
using GhostNet.Cpu;
using GhostNet.Models;
using GhostNet.Training;

namespace GhostNet.Tests.Model;

/// <summary>
/// A real checkpoint of the smallest GhostNet (width 0.25, three classes) for the tests that
/// break files on purpose, and the helpers that take a safetensors file apart and put it back.
/// </summary>
internal static class SmallCheckpoint
{
    public static readonly GhostNetConfig Config = new(0.25f, 3, 0.2f);

    public static CheckpointInfo Info() => new("ghostnet_100", Config.Width, Config.NumClasses, Config.DropRate, 32, "synthetic", "imagenet",
        ["ant", "bee", "cat"],
        new TrainingState { Epoch = 2, BatchInEpoch = 3, GlobalStep = 11, PlanStep = 11, BestTop1 = 33.5, EpochLossSum = 4.25, EpochTop1 = 2, EpochTop5 = 5, EpochSeen = 6, EpochSeconds = 1.5 },
        new Dictionary<string, string> { ["seed"] = "1", ["eval_crop_pct"] = "0.875" })
    {
        History = [new EpochRecord(0, 0.1f, 2.5, 10, 50, 2.4, 12.5, 55, 1.5, 100), new EpochRecord(1, 0.05f, 2.25, 20, 60, 2.2, 25, 65, 1.4, 110)],
    };

    /// <summary>Saves the checkpoint of a seeded model to <paramref name="path"/> and returns its bytes.</summary>
    public static byte[] Save(string path, int seed = 1)
    {
        using var backend = new CpuBackend(1);
        using var model = new GhostNetModel(Config, backend, seed);
        Checkpoint.Save(path, model, Info());
        return File.ReadAllBytes(path);
    }

    /// <summary>The header text (padding trimmed) and the data region of a safetensors file.</summary>
    public static (string Header, byte[] Data) Split(byte[] file)
    {
        int length = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        return (Encoding.UTF8.GetString(file, 8, length).TrimEnd(' '), file[(8 + length)..]);
    }

    /// <summary>A file whose length field says exactly the header's byte count.</summary>
    public static byte[] Join(byte[] header, byte[] data)
    {
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);
        return file;
    }

    public static byte[] Join(string header, byte[] data) => Join(Encoding.UTF8.GetBytes(header), data);
}

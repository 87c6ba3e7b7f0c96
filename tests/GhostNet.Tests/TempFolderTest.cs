using NUnit.Framework;

namespace GhostNet.Tests;

/// <summary>A fresh temporary folder per test, removed afterwards.</summary>
public abstract class TempFolderTest
{
    protected string Folder { get; private set; } = "";

    [SetUp]
    public void MakeFolder() => Directory.CreateDirectory(Folder = Path.Combine(Path.GetTempPath(), "ghostnet-test-" + Guid.NewGuid().ToString("N")));

    [TearDown]
    public void RemoveFolder()
    {
        if (Directory.Exists(Folder)) Directory.Delete(Folder, recursive: true);
    }
}

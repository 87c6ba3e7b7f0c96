using NUnit.Framework;

namespace GhostNet.Tests.Data;

/// <summary>The repository's data/ folder (filled by tools/fetch-data.sh; CI runs it first).</summary>
internal static class RepositoryData
{
    public static string Folder(string set)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "GhostNet.Cuda.sln"))) dir = dir.Parent;
        string path = Path.Combine(dir?.FullName ?? ".", "data", set);
        if (!File.Exists(Path.Combine(path, "train-images-idx3-ubyte")))
        {
            if (Environment.GetEnvironmentVariable("CI") == "true") Assert.Fail($"{path} is missing in CI: .ci/run should have run tools/fetch-data.sh");
            Assert.Ignore($"{path} not fetched (tools/fetch-data.sh)");
        }
        return path;
    }
}

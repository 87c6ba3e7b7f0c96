using NUnit.Framework;

namespace GhostNet.Tests.Data;

/// <summary>The repository and its data/ folder (filled by tools/fetch-data.sh; CI runs it first).</summary>
internal static class RepositoryData
{
    /// <summary>The checkout the tests were built from (the folder holding GhostNet.Cuda.sln).</summary>
    public static string Repository()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "GhostNet.Cuda.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new DirectoryNotFoundException("repository root not found above " + AppContext.BaseDirectory);
    }

    public static string Folder(string set)
    {
        string path = Path.Combine(Repository(), "data", set);
        if (!File.Exists(Path.Combine(path, "train-images-idx3-ubyte")))
        {
            if (Environment.GetEnvironmentVariable("CI") == "true") Assert.Fail($"{path} is missing in CI: .ci/run should have run tools/fetch-data.sh");
            Assert.Ignore($"{path} not fetched (tools/fetch-data.sh)");
        }
        return path;
    }
}

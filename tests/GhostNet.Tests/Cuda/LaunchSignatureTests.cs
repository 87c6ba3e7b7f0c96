using System.Text.RegularExpressions;
using GhostNet.Cuda;
using NUnit.Framework;

namespace GhostNet.Tests.Cuda;

/// <summary>
/// Without a GPU, a launch that names a missing kernel or passes the wrong number of arguments
/// would only fail on a device. This reads every Launch/Launch1D call in src/GhostNet.Cuda and
/// checks the kernel exists in kernels/*.cu with exactly that many parameters.
/// </summary>
public class LaunchSignatureTests
{
    /// <summary>Kernel name to parameter count, from the KERNEL void name(...) signatures.</summary>
    private static Dictionary<string, int> KernelParameters() =>
        KernelSources.Files.SelectMany(f => Regex.Matches(KernelSources.Source(f), @"^KERNEL\s+void\s+(\w+)\s*\(([^)]*)\)", RegexOptions.Multiline))
            .ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value.Split(',').Count(p => p.Trim().Length > 0));

    /// <summary>The top-level comma-separated arguments of the call whose "(" is at <paramref name="open"/>.</summary>
    private static List<string> Arguments(string text, int open)
    {
        var args = new List<string>();
        int depth = 0, start = open + 1;
        for (int i = open; i < text.Length; i++)
        {
            char c = text[i];
            if (c is '(' or '[' or '{') depth++;
            else if (c is ')' or ']' or '}')
            {
                if (--depth == 0) { args.Add(text[start..i].Trim()); return args; }
            }
            else if (c == '"') i = text.IndexOf('"', i + 1) < 0 ? text.Length : SkipString(text, i);
            else if (c == ',' && depth == 1) { args.Add(text[start..i].Trim()); start = i + 1; }
        }
        throw new FormatException("unbalanced call");
    }

    private static int SkipString(string text, int quote)
    {
        int i = quote + 1;
        while (i < text.Length && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
        return i;
    }

    [Test]
    public void Every_launch_names_a_kernel_with_as_many_parameters_as_it_passes()
    {
        var kernels = KernelParameters();
        var launches = 0;
        foreach (var file in Directory.GetFiles(Path.Combine(Data.RepositoryData.Repository(), "src", "GhostNet.Cuda"), "CudaBackend*.cs"))
        {
            string text = File.ReadAllText(file);
            foreach (Match m in Regex.Matches(text, @"\b(Launch1D|Launch)\(\s*""(\w+)"""))
            {
                var args = Arguments(text, text.IndexOf('(', m.Index));
                int fixedArgs = m.Groups[1].Value == "Launch" ? 7 : 4; // kernel, grid x/y/z, block, cost, context | kernel, total, cost, context
                string kernel = m.Groups[2].Value;
                Assert.That(kernels, Does.ContainKey(kernel), $"{Path.GetFileName(file)} launches {kernel}, which no .cu file defines");
                Assert.That(args.Count - fixedArgs, Is.EqualTo(kernels[kernel]), $"{Path.GetFileName(file)}: {kernel} takes {kernels[kernel]} parameters");
                launches++;
            }
        }
        Assert.That(launches, Is.GreaterThan(25), "the scan found the launch sites");
        TestContext.Out.WriteLine($"{launches} launch sites checked against {kernels.Count} kernels");
    }

    [Test]
    public void Every_kernel_is_launched_somewhere()
    {
        string code = string.Concat(Directory.GetFiles(Path.Combine(Data.RepositoryData.Repository(), "src", "GhostNet.Cuda"), "CudaBackend*.cs").Select(File.ReadAllText));
        var unused = KernelParameters().Keys.Where(k => !code.Contains($"\"{k}\"")).ToList();
        Assert.That(unused, Is.Empty, "kernels no backend method launches");
    }
}

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
    /// <summary>
    /// Kernel name to parameter count, from the KERNEL void name(...) signatures, with macros in a
    /// parameter list (gemm.cu's GEMM_PARAMS) expanded.
    /// </summary>
    private static Dictionary<string, int> KernelParameters()
    {
        var result = new Dictionary<string, int>();
        foreach (var file in KernelSources.Files)
        {
            string source = KernelSources.Source(file);
            var macros = Regex.Matches(source, @"^#define\s+(\w+)\s+((?:[^\n]*\\\n)*[^\n]*)", RegexOptions.Multiline)
                .GroupBy(m => m.Groups[1].Value).ToDictionary(g => g.Key, g => g.Last().Groups[2].Value.Replace("\\\n", " "));
            foreach (Match m in Regex.Matches(source, @"^KERNEL\s+void\s+(\w+)\s*\(([^)]*)\)", RegexOptions.Multiline))
            {
                string parameters = m.Groups[2].Value.Trim();
                for (int depth = 0; depth < 8; depth++) // macros of macros (DEPTHWISE_DATA_PARAMS)
                    parameters = Regex.Replace(parameters, @"\b[A-Z_]+\b", t => macros.TryGetValue(t.Value, out var body) ? body : t.Value);
                result[m.Groups[1].Value] = parameters.Split(',').Count(p => p.Trim().Length > 0);
            }
        }
        return result;
    }

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
            int tableSites = 0;
            foreach (Match m in Regex.Matches(text, @"\b(Launch1D|Launch)\(\s*(?:""(\w+)""|(GemmKernels)\[|DepthwiseKernels\[(?:\w+ \? (\d) : )?(\d)\])"))
            {
                var args = Arguments(text, text.IndexOf('(', m.Index));
                int fixedArgs = m.Groups[1].Value == "Launch" ? 7 : 4; // kernel, grid x/y/z, block, cost, context | kernel, total, cost, context
                // Launch(GemmKernels[index], ...) is a launch of each of gemm.cu's tile kernels.
                // Launch(DepthwiseKernels[op][variant], ...) likewise of each <k, stride> variant of the
                // op, and DepthwiseKernels[flag ? op1 : op2] of both ops' variants.
                var names = m.Groups[3].Success ? CudaBackend.GemmKernels.ToList()
                    : m.Groups[5].Success && ++tableSites > 0 ? new[] { m.Groups[4], m.Groups[5] }.Where(g => g.Success)
                        .SelectMany(g => CudaBackend.DepthwiseKernels[int.Parse(g.Value)]).Distinct().ToList()
                    : [m.Groups[2].Value];
                foreach (string kernel in names)
                {
                    Assert.That(kernels, Does.ContainKey(kernel), $"{Path.GetFileName(file)} launches {kernel}, which no .cu file defines");
                    Assert.That(args.Count - fixedArgs, Is.EqualTo(kernels[kernel]), $"{Path.GetFileName(file)}: {kernel} takes {kernels[kernel]} parameters");
                }
                launches++;
            }
            // A launch from DepthwiseKernels indexed by anything but a digit or flag ? digit : digit
            // would escape the check above.
            Assert.That(tableSites, Is.EqualTo(Regex.Matches(text, @"\b(Launch1D|Launch)\(\s*DepthwiseKernels\[").Count),
                $"{Path.GetFileName(file)}: every DepthwiseKernels launch indexes its op by a literal (or flag ? literal : literal)");
        }
        Assert.That(launches, Is.GreaterThan(25), "the scan found the launch sites");
        TestContext.Out.WriteLine($"{launches} launch sites checked against {kernels.Count} kernels");
    }

    [Test]
    public void Every_kernel_is_launched_somewhere()
    {
        string code = string.Concat(Directory.GetFiles(Path.Combine(Data.RepositoryData.Repository(), "src", "GhostNet.Cuda"), "CudaBackend*.cs").Select(File.ReadAllText));
        var unused = KernelParameters().Keys.Where(k => !code.Contains($"\"{k}\"") && !CudaBackend.GemmKernels.Contains(k)
            && !CudaBackend.GemmKernelsWeightA.Contains(k) && !CudaBackend.GemmKernelsWeightB.Contains(k) // bf16's variants (CudaBackend.GemmKernel)
            && !CudaBackend.DepthwiseKernels.Any(op => op.Contains(k))).ToList();
        Assert.That(unused, Is.Empty, "kernels no backend method launches");
    }
}

using NUnit.Framework;
using static TorchSharp.torch;

namespace GhostNet.OracleTests;

public class Smoke
{
    [Test]
    public void Libtorch_loads()
    {
        set_num_threads(1);
        var x = ones(2, 3);
        Assert.That(x.sum().item<float>(), Is.EqualTo(6f));
    }
}

using GhostNet.Backends;

namespace GhostNet.Graph;

/// <summary>How conv weights start: PyTorch's default, or the GhostNet seed's Kaiming-normal.</summary>
public enum InitScheme
{
    /// <summary>torch.nn defaults: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).</summary>
    PyTorchDefault,
    /// <summary>The official code's _initialize_weights: conv weights N(0, 2 / fan_out) (mode fan_out, ReLU gain); linear layers keep the default.</summary>
    KaimingNormalFanOut,
}

/// <summary>Draws every parameter on the host from one seeded generator, in state-dict order, and uploads it.</summary>
public static class Initializer
{
    public static void Initialize(ParameterSet set, IBackend backend, InitScheme scheme, int seed)
    {
        var rng = new Random(seed);
        foreach (var entry in set.Entries)
        {
            switch (entry)
            {
                case Parameter p:
                    var values = new float[p.Count];
                    Fill(p, values, scheme, rng);
                    backend.Upload(values, p.Value);
                    break;
                case StatBuffer s:
                    backend.Fill(s.Value, s.Initial);
                    break;
                case Counter c:
                    c.Value = 0;
                    break;
            }
        }
        backend.Fill(new Tensor(set.Momentum, 0, 1, 1, 1, (int)set.Momentum.Length), 0f);
    }

    private static void Fill(Parameter p, float[] v, InitScheme scheme, Random rng)
    {
        switch (p.Init)
        {
            case ParamInit.One: Array.Fill(v, 1f); return;
            case ParamInit.Zero: Array.Fill(v, 0f); return;
            case ParamInit.ConvWeight when scheme == InitScheme.KaimingNormalFanOut:
                double std = Math.Sqrt(2.0 / p.FanOut);
                for (int i = 0; i < v.Length; i++) v[i] = (float)(std * Normal(rng));
                return;
            default:
                double bound = 1.0 / Math.Sqrt(p.FanIn);
                for (int i = 0; i < v.Length; i++) v[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
                return;
        }
    }

    private static double Normal(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}

namespace GhostNet.Data;

/// <summary>
/// A generated classification set that needs no download: class k is a sinusoidal grating at
/// angle pi * k / K with a class tint, drawn with random phase, frequency jitter, contrast and
/// pixel noise. Easy enough to learn in a few CPU minutes, hard enough that an untrained
/// network is at chance.
/// </summary>
public static class SyntheticPatterns
{
    public static InMemoryDataset Generate(int count, int classes, int size, int seed)
    {
        if (classes < 2) throw new ArgumentOutOfRangeException(nameof(classes), "at least two classes");
        var rng = new Random(seed);
        int plane = size * size;
        var pixels = new float[(long)count * 3 * plane];
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            int k = rng.Next(classes);
            labels[i] = k;
            double angle = Math.PI * k / classes, phase = rng.NextDouble() * 2 * Math.PI;
            double freq = (0.25 + 0.05 * rng.NextDouble()) * 2 * Math.PI * 4 / size;
            double contrast = 0.6 + 0.4 * rng.NextDouble();
            double cx = Math.Cos(angle), cy = Math.Sin(angle);
            for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                double wave = contrast * Math.Sin(freq * (x * cx + y * cy) * 4 + phase);
                for (int c = 0; c < 3; c++)
                {
                    double tint = Math.Cos(2 * Math.PI * (k / (double)classes + c / 3.0)) * 0.3;
                    pixels[((long)i * 3 + c) * plane + y * size + x] = (float)(wave + tint + 0.3 * (rng.NextDouble() * 2 - 1));
                }
            }
        }
        var names = Enumerable.Range(0, classes).Select(k => $"pattern_{k}").ToArray();
        return new InMemoryDataset(pixels, labels, 3, size, size, names);
    }
}

using GhostNet.Backends;
using BenchmarkDotNet.Attributes;
using GhostNet.Data;
using GhostNet.Data.Transforms;

namespace GhostNet.Bench;

/// <summary>
/// Input pipeline speed on 500x375 JPEGs (ImageNet's typical size): decode + RandomResizedCrop
/// 224 + flip + normalize for one image on one thread (images/s per core = 1000 / mean ms), and a
/// whole loader epoch with every core (images/s = images / epoch time).
/// </summary>
[Config(typeof(InProcessConfig))]
public class DataBenchmarks
{
    public const int Images = 128;
    private string _root = "";
    private ImageFolderDataset _dataset = null!;
    private readonly TrainTransform _transform = new(224, Normalization.ImageNet);
    private readonly byte[] _hwc = new byte[3 * 224 * 224]; // ToTensor and Normalize are the backend's
    private DataLoader _loader = null!;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        _root = Path.Combine(Path.GetTempPath(), "ghostnet-bench-jpeg");
        if (!Directory.Exists(_root)) SyntheticImageFolder.Write(_root, classes: 4, perClass: Images / 4, width: 500, height: 375, seed: 1);
        _dataset = new ImageFolderDataset(_root);
        _loader = new DataLoader(_dataset, _transform, new DataLoaderOptions(BatchSize: 32, Seed: 1));
    }

    [Benchmark(Description = "decode + augment, 1 image, 1 thread")]
    public float DecodeAndAugment()
    {
        using var image = _dataset.Load(_next++ % _dataset.Count);
        _transform.Apply(image, new Random(_next), _hwc);
        return _hwc[0];
    }

    [Benchmark(Description = "loader epoch, 128 images, all cores", OperationsPerInvoke = Images)]
    public int LoaderEpoch()
    {
        int n = 0;
        foreach (var batch in _loader.Epoch(_next++)) n += batch.Count;
        return n;
    }
}

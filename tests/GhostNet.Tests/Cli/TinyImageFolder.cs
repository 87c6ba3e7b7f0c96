using GhostNet.Data;

namespace GhostNet.Tests.Cli;

/// <summary>A two-class ImageFolder of 40x40 JPEGs: small enough that an epoch at 32x32 takes well under a second.</summary>
internal static class TinyImageFolder
{
    /// <summary>Writes folder/data/{train,val}/&lt;class&gt;/*.jpg and returns folder/data.</summary>
    public static string Write(string folder, int trainPerClass, int valPerClass)
    {
        string data = Path.Combine(folder, "data");
        SyntheticImageFolder.Write(Path.Combine(data, "train"), classes: 2, perClass: trainPerClass, width: 40, height: 40, seed: 1);
        SyntheticImageFolder.Write(Path.Combine(data, "val"), classes: 2, perClass: valPerClass, width: 40, height: 40, seed: 2);
        return data;
    }
}

namespace GhostNet.Models;

/// <summary>The checks every model's Validate shares, with one wording for each value.</summary>
public static class ModelChecks
{
    /// <summary>Classes, dropout and input channels: what every registered model has.</summary>
    public static void Common(int numClasses, float dropRate, int inChannels)
    {
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), $"number of classes {numClasses} must be at least 1");
        if (dropRate < 0 || dropRate >= 1) throw new ArgumentOutOfRangeException(nameof(dropRate), $"dropout {dropRate} is not in [0, 1)");
        if (inChannels < 1) throw new ArgumentOutOfRangeException(nameof(inChannels), $"input channels {inChannels} must be at least 1");
    }

    /// <summary>A Ghost twin's ratio s (2..16) and cheap depthwise size d (odd, 1..9).</summary>
    public static void Ghost(int ratio, int dwSize)
    {
        if (ratio is < 2 or > 16) throw new ArgumentOutOfRangeException(nameof(ratio), $"ghost ratio {ratio} is not in 2..16");
        if (dwSize < 1 || dwSize > 9 || dwSize % 2 == 0) throw new ArgumentOutOfRangeException(nameof(dwSize), $"ghost dw size {dwSize} is not odd in 1..9");
    }

    /// <summary>A channel multiplier in (0, 10].</summary>
    public static void Width(float width)
    {
        if (!(width > 0) || width > 10) throw new ArgumentOutOfRangeException(nameof(width), $"width multiplier {width} is not in (0, 10]");
    }
}

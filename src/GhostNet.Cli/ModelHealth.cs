using GhostNet.Models;

namespace GhostNet.Cli;

/// <summary>TEMPORARY until the library's check lands.</summary>
internal static class ModelHealth
{
    public static string? FirstNonFinite(GhostNetModel model)
    {
        foreach (var p in model.Parameters.Parameters)
        {
            var values = new float[p.Count];
            model.Backend.Download(p.Value, values);
            foreach (float v in values) if (!float.IsFinite(v)) return p.Name;
        }
        return null;
    }
}

namespace GhostNet.Backends;

/// <summary>
/// The seed of a dropout mask: <see cref="Value"/>, or where <see cref="At"/> is set, the 64-bit
/// value there (two elements' bits, low word first, 8-byte aligned, in the backend's memory) when
/// the launch runs. A captured training step (CUDA graph) reads it there, and its plan writes each
/// step's seed before the replay. A plain ulong converts to a seed by value.
/// </summary>
public readonly record struct DropoutSeed(ulong Value, Tensor At = default)
{
    public static implicit operator DropoutSeed(ulong value) => new(value);
}

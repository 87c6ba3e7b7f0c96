using System.Runtime.CompilerServices;
using System.Text;
using GhostNet.Backends;

namespace GhostNet.Cuda;

/// <summary>
/// An interpolated description such as <c>$"{x} -> {y} {g}"</c>, kept as its parts and turned into
/// text only when an error needs it. Every launch and copy carries one; formatted eagerly they
/// cost a training step ~170 KB of strings.
/// </summary>
[InterpolatedStringHandler]
internal ref struct DeferredText
{
    private const int Capacity = 12; // the GEMM's context has 10 parts
    private Parts _parts;
    private int _count;
    private bool _cut;

    public DeferredText(int literalLength, int formattedCount) { }

    public static implicit operator DeferredText(string text)
    {
        var d = new DeferredText(0, 0);
        d.AppendLiteral(text);
        return d;
    }

    public readonly bool IsEmpty => _count == 0;

    public void AppendLiteral(string text) => Add(new Part(text, default, default, 0, PartKind.Text));
    public void AppendFormatted(string? text) => Add(new Part(text, default, default, 0, PartKind.Text));
    public void AppendFormatted(Tensor tensor) => Add(new Part(null, tensor, default, 0, PartKind.Tensor));
    /// <summary><c>{t:+}</c>: " + t", or nothing when t is none (an optional addend).</summary>
    public void AppendFormatted(Tensor tensor, string format) =>
        Add(format == "+" ? new Part(null, tensor, default, 0, PartKind.Addend) : throw new FormatException($"tensor format '{format}': only '+' is known"));
    public void AppendFormatted(ConvGeometry geometry) => Add(new Part(null, default, geometry, 0, PartKind.Geometry));
    public void AppendFormatted(long number) => Add(new Part(null, default, default, number, PartKind.Number));
    public void AppendFormatted(ulong number) => Add(new Part(null, default, default, unchecked((long)number), PartKind.Unsigned));

    public readonly override string ToString()
    {
        var text = new StringBuilder();
        for (int i = 0; i < _count; i++)
        {
            var p = _parts[i];
            text.Append(p.Kind switch
            {
                PartKind.Tensor => p.Tensor.ToString(),
                PartKind.Addend => p.Tensor.IsNone ? "" : " + " + p.Tensor,
                PartKind.Geometry => p.Geometry.ToString(),
                PartKind.Number => p.Number.ToString(),
                PartKind.Unsigned => unchecked((ulong)p.Number).ToString(),
                _ => p.Text,
            });
        }
        return _cut ? text.Append(" ...").ToString() : text.ToString();
    }

    private void Add(in Part part)
    {
        if (_count < Capacity) _parts[_count++] = part;
        else _cut = true;
    }

    private enum PartKind : byte { Text, Tensor, Addend, Geometry, Number, Unsigned }

    private readonly record struct Part(string? Text, Tensor Tensor, ConvGeometry Geometry, long Number, PartKind Kind);

    [InlineArray(Capacity)]
    private struct Parts
    {
        private Part _element;
    }
}

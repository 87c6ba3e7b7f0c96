namespace GhostNet.Backends;

/// <summary>
/// A named region of backend memory whose size is planned before it exists: a plan hands out
/// offsets into it while it builds the network, then binds one buffer of the final size.
/// Activation and parameter storages carry a <see cref="Gradient"/> twin with identical layout,
/// so the gradient of any view is the same view on the twin.
/// </summary>
public sealed class Storage
{
    private long AlignElements => 64 / Type.Bytes(); // 64 bytes: one cache line, one AVX-512 vector

    public Storage(string name, long length = 0, ElementType type = ElementType.Float32)
    {
        Name = name;
        Length = length;
        Type = type;
    }

    public string Name { get; }

    /// <summary>How its elements are held; a gradient twin holds the same.</summary>
    public ElementType Type { get; }
    public long Length { get; private set; }
    public DeviceBuffer? Buffer { get; private set; }
    public Storage? Gradient { get; private set; }

    public Storage WithGradient()
    {
        Gradient ??= new Storage(Name + ".grad", Length, Type);
        return this;
    }

    /// <summary>Reserves <paramref name="count"/> elements and returns their offset.</summary>
    public long Reserve(long count)
    {
        if (Buffer is not null)
            throw new InvalidOperationException($"storage '{Name}' is already bound; it cannot grow");
        long offset = Length;
        Length += (count + AlignElements - 1) / AlignElements * AlignElements;
        Gradient?.SetLength(Length);
        return offset;
    }

    private void SetLength(long length) => Length = length;

    public void Bind(IBackend backend)
    {
        if (Buffer is not null) return;
        Buffer = backend.Allocate(Math.Max(Length, AlignElements), Type);
        Gradient?.Bind(backend);
    }

    /// <summary>
    /// Binds memory made elsewhere (a host application's device buffer, <c>CudaBackend.Borrow</c>)
    /// instead of allocating: it must hold the storage's length. <see cref="Release"/> disposes it,
    /// which for borrowed memory leaves it to its owner.
    /// </summary>
    public void Bind(DeviceBuffer buffer)
    {
        if (Buffer is not null) throw new InvalidOperationException($"storage '{Name}' is already bound");
        if (Gradient is not null) throw new InvalidOperationException($"storage '{Name}' has a gradient twin; bind it to a backend");
        if (buffer.Type != Type) throw new ArgumentException($"a {buffer.Type.Name()} buffer for storage '{Name}' of {Type.Name()}");
        if (buffer.Length < Length) throw new ArgumentException($"a buffer of {buffer.Length} elements for storage '{Name}' of {Length}");
        Buffer = buffer;
    }

    public void Release()
    {
        Buffer?.Dispose();
        Buffer = null;
        Gradient?.Release();
    }

    public override string ToString() => Type == ElementType.Float32 ? $"{Name} ({Length} elements)" : $"{Name} ({Length} {Type.Name()} elements)";
}

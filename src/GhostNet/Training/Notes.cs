namespace GhostNet.Training;

/// <summary>Notes told to a caller (why a run goes slower than it could, what it chose).</summary>
public static class Notes
{
    /// <summary>A note that tells only its first text: one reason is enough however often it recurs.</summary>
    public static Action<string>? Once(Action<string>? note)
    {
        if (note is null) return null;
        bool told = false;
        return text =>
        {
            if (told) return;
            told = true;
            note(text);
        };
    }
}

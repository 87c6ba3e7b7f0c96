namespace GhostNet.Backends;

/// <summary>
/// A backend that records a fixed sequence of its calls once and replays it (CUDA graphs): the
/// launches of a training step without the host's cost per launch. The recorded calls must not
/// allocate, copy to or from the host, or synchronise, and what changes from step to step must
/// live in the backend's memory (<see cref="SgdHyper.LearningRateAt"/>, <see cref="DropoutSeed.At"/>),
/// since a replay launches the same kernels with the same arguments.
/// </summary>
public interface ICapturingBackend
{
    /// <summary>
    /// Records the calls <paramref name="work"/> makes, without running them. Null, with the
    /// reason, where they cannot be captured: nothing of them has run then, and the caller runs
    /// them call by call instead.
    /// </summary>
    ICapturedCalls? Capture(Action work, out string? whyNot);
}

/// <summary>Calls recorded by <see cref="ICapturingBackend.Capture"/>.</summary>
public interface ICapturedCalls : IDisposable
{
    /// <summary>The kernel launches one replay makes.</summary>
    int Launches { get; }

    /// <summary>
    /// False once the backend has moved memory the calls use (a workspace regrown for another
    /// plan's calls): a replay would use the old address, so capture again.
    /// </summary>
    bool IsCurrent { get; }

    /// <summary>Runs the recorded calls again, in order, on what their memory holds now.</summary>
    void Replay();
}

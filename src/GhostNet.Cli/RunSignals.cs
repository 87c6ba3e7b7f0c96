using System.Runtime.InteropServices;

namespace GhostNet.Cli;

/// <summary>
/// SIGINT (Ctrl-C) and SIGTERM during a run: the first asks the run to stop at the next
/// consistent point (after the current step, or at once during validation) and save a resumable
/// checkpoint; the second is left to the system's default action, which ends the process at once.
/// That is safe because every file the run writes is replaced atomically.
/// </summary>
internal sealed class RunSignals : IDisposable
{
    private readonly CancellationTokenSource _cancel;
    private readonly PosixSignalRegistration[] _registrations;
    private int _received;

    public RunSignals(CancellationToken outer)
    {
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(outer);
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal), PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal)];
    }

    public CancellationToken Token => _cancel.Token;

    /// <summary>The exit code for the signal that stopped the run: 128 + its number (130 for SIGINT, 143 for SIGTERM).</summary>
    public int ExitCode => 128 + Volatile.Read(ref _signalNumber);

    private int _signalNumber = 2;

    private void OnSignal(PosixSignalContext context)
    {
        if (Interlocked.Increment(ref _received) > 1)
        {
            context.Cancel = false; // the default action: the process ends now
            return;
        }
        context.Cancel = true;
        Volatile.Write(ref _signalNumber, context.Signal == PosixSignal.SIGTERM ? 15 : 2);
        // A fresh line only where a live progress line is being redrawn.
        Console.Error.WriteLine($"{(Console.IsOutputRedirected ? "" : "\n")}{(context.Signal == PosixSignal.SIGTERM ? "SIGTERM" : "interrupt")}: saving a checkpoint and stopping (send it again to abort at once)");
        try
        {
            _cancel.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // the run is already over: nothing left to stop
        }
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose(); // first, so that no handler runs on a disposed source
        _cancel.Dispose();
    }
}

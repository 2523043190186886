using System.Diagnostics;
using System.Threading.Channels;
using Bridge.Contracts.V1;

namespace Bridge.Host.Execution;

/// <summary>
/// One Bridge.Worker process and, once it has said hello, its Work stream. Commands go
/// through a channel drained by the stream's single writer.
/// </summary>
internal sealed class WorkerProcess(Process process, string token, string environmentKey)
{
    private readonly TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // A main module that prints in a loop must not grow a warm worker's buffer forever.
    private const int MaxHeldOutput = 256;

    private readonly Lock _gate = new();
    private readonly List<OutputText> _heldOutput = [];
    private ExecutionPool? _pool;
    private int? _reportedExitCode;

    public Process Process { get; } = process;

    public int Pid { get; } = process.Id;

    public string Token { get; } = token;

    public string EnvironmentKey { get; } = environmentKey;

    public Channel<WorkerCommand> Commands { get; } = Channel.CreateUnbounded<WorkerCommand>(new UnboundedChannelOptions { SingleReader = true });

    public Task Connected => _connected.Task;

    /// <summary>The exit code with the stdlib's meaning: as reported by the worker, else -signal or the OS code.</summary>
    public Task<int> Exited => _exited.Task;

    public int KernelSlots { get; set; } = 1;

    /// <summary>The pool it serves; null while warm.</summary>
    public ExecutionPool? Pool
    {
        get
        {
            lock (_gate)
            {
                return _pool;
            }
        }
    }

    /// <summary>The session-and-environment key it was prepared for; null: not prepared.</summary>
    public string? PreparedFor { get; init; }

    /// <summary>
    /// Keeps output written while warm (the parent's main module run by Prepare) for the
    /// pool the worker joins later, as a spawned child's output reaches its parent's
    /// terminal; false once the worker serves a pool (forward it there instead).
    /// </summary>
    public bool TryHoldOutput(OutputText output)
    {
        lock (_gate)
        {
            if (_pool is not null)
            {
                return false;
            }

            if (_heldOutput.Count < MaxHeldOutput)
            {
                _heldOutput.Add(output);
            }

            return true;
        }
    }

    /// <summary>Joins <paramref name="pool"/>; returns the output held while warm.</summary>
    public IReadOnlyList<OutputText> Attach(ExecutionPool pool)
    {
        lock (_gate)
        {
            _pool = pool;
            var held = _heldOutput.ToArray();
            _heldOutput.Clear();
            return held;
        }
    }

    public void MarkConnected() => _connected.TrySetResult();

    /// <summary>Process mode: the Process's own exit code, which wins over the OS's view.</summary>
    public void ReportExitCode(int exitCode) => _reportedExitCode = exitCode;

    /// <summary>Called once the OS process has exited.</summary>
    public void MarkExited()
    {
        var code = _reportedExitCode ?? StdlibExitCode(Process.ExitCode);
        Commands.Writer.TryComplete();
        _connected.TrySetException(new InvalidOperationException($"worker {Pid} exited with code {code} before it connected"));
        _exited.TrySetResult(code);
    }

    /// <summary>.NET reports a signal death as 128 + N; multiprocessing says -N.</summary>
    private static int StdlibExitCode(int osCode) => osCode > 128 && osCode < 128 + 65 ? -(osCode - 128) : osCode;
}

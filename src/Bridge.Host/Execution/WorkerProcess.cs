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
    private string? _preparedFor;
    private bool _everAssigned;
    private int _exitWatched;
    // Set while a release is asked for and not answered (its deadline kills the worker).
    private Timer? _releaseDeadline;
    private int? _reportedExitCode;

    public Process Process { get; } = process;

    public int Pid { get; } = process.Id;

    public string Token { get; } = token;

    public string EnvironmentKey { get; } = environmentKey;

    /// <summary>unix:/path of its data socket, where the owner of a direct pool feeds it.</summary>
    public string DataAddress { get; init; } = "";

    /// <summary>tcp:ADDRESS:PORT of its data socket for owners on other machines (a cluster host's workers); empty: none.</summary>
    public string RemoteDataAddress { get; init; } = "";

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

    /// <summary>
    /// The session-and-environment key it was prepared for (by a Prepare command, or by
    /// serving a pool of that session before it was released); null: not prepared.
    /// </summary>
    public string? PreparedFor
    {
        get
        {
            lock (_gate)
            {
                return _preparedFor;
            }
        }

        set
        {
            lock (_gate)
            {
                _preparedFor = value;
            }
        }
    }

    /// <summary>Whether it has joined a pool at least once (a prepared worker that exits before: its preparation failed).</summary>
    public bool EverAssigned
    {
        get
        {
            lock (_gate)
            {
                return _everAssigned;
            }
        }
    }

    /// <summary>Set once by whoever first watches the exit, so a reused worker is watched once.</summary>
    public bool TryClaimExitWatch() => Interlocked.Exchange(ref _exitWatched, 1) == 0;

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
            _everAssigned = true;
            var held = _heldOutput.ToArray();
            _heldOutput.Clear();
            return held;
        }
    }

    /// <summary>
    /// Asks the worker to leave its pool; one that has not answered Released within
    /// <paramref name="deadline"/> (its Python thread is stuck in user code) is killed.
    /// With <paramref name="terminate"/> (a direct pool, whose chunks the host does not
    /// see) a worker running a chunk exits at once instead.
    /// </summary>
    public void RequestRelease(TimeSpan deadline, bool terminate = false)
    {
        lock (_gate)
        {
            _releaseDeadline?.Dispose();
            _releaseDeadline = new Timer(static state => Signals.Send((int)state!, Signals.Kill), Pid, deadline, Timeout.InfiniteTimeSpan);
        }

        Commands.Writer.TryWrite(terminate ? new WorkerCommand { Terminate = true } : new WorkerCommand { Release = true });
    }

    /// <summary>
    /// The worker answered Released: it leaves its pool and is idle again. False (and
    /// nothing changes) when no release was asked for; else <paramref name="pool"/> is the
    /// pool it leaves.
    /// </summary>
    public bool TryCompleteRelease(out ExecutionPool? pool)
    {
        lock (_gate)
        {
            pool = _pool;
            if (_releaseDeadline is null)
            {
                return false;
            }

            _releaseDeadline.Dispose();
            _releaseDeadline = null;
            _pool = null;
            return true;
        }
    }

    /// <summary>Whether a release was asked for and not yet answered (it comes back, or exits).</summary>
    public bool IsReleasing
    {
        get
        {
            lock (_gate)
            {
                return _releaseDeadline is not null;
            }
        }
    }

    public void MarkConnected() => _connected.TrySetResult();

    /// <summary>Process mode: the Process's own exit code, which wins over the OS's view.</summary>
    public void ReportExitCode(int exitCode) => _reportedExitCode = exitCode;

    /// <summary>Called once the OS process has exited.</summary>
    public void MarkExited()
    {
        lock (_gate)
        {
            _releaseDeadline?.Dispose();
            _releaseDeadline = null;
        }

        var code = _reportedExitCode ?? StdlibExitCode(Process.ExitCode);
        Commands.Writer.TryComplete();
        // Exited first: whoever wakes on the failed connection reads the exit code from it
        // (a Process terminated while its worker started must end with -15, not 1).
        _exited.TrySetResult(code);
        _connected.TrySetException(new InvalidOperationException($"worker {Pid} exited with code {code} before it connected"));
    }

    /// <summary>.NET reports a signal death as 128 + N; multiprocessing says -N.</summary>
    private static int StdlibExitCode(int osCode) => osCode > 128 && osCode < 128 + 65 ? -(osCode - 128) : osCode;
}

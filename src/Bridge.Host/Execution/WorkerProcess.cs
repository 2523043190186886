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
    public ExecutionPool? Pool { get; set; }

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

using System.Diagnostics;
using Bridge.Contracts.V1;
using Bridge.Worker.Kernels;
using Bridge.Worker.Python;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Bridge.Worker.Hosting;

/// <summary>
/// One worker's life on its Work stream:
/// <code>
/// Hello ─► [Prepare (Python: sys.path, cwd, env, __mp_main__), while warm]
///   ─► Assignment ─► (the same unless prepared for it; the initializer) ─► Ready{n}
///   TaskChunk ─► Python thread (one at a time) | kernel threads (up to kernel_slots)
///   TaskResult + Ready{1} ◄─ as each chunk finishes; OutputText ◄─ whenever user code prints
///   Shutdown ─► finish the running chunks ─► complete the stream ─► exit 0
///   process mode: the RUN_PROCESS chunk ─► TaskResult + WorkerExit ─► exit with its code
/// </code>
/// Ready carries credits: how many more chunks the host may send. The worker grants them
/// by what it is running: one Python chunk at a time (up to four once chunks prove short,
/// so the next is already here when one ends), up to kernel_slots for kernels. A pool of slow
/// Python tasks must not have one worker hoard chunks while its siblings idle.
/// </summary>
internal sealed class WorkerSession(
    WorkerOptions options,
    InterpreterCalls? python,
    KernelRunner kernels,
    Outbox outbox,
    OutputForwarder output,
    ILogger logger)
{
    /// <summary>Exit codes other than a Process's own.</summary>
    public const int ExitFailure = 1;

    // Python chunks shorter than this are worth prefetching: the next ones wait locally
    // instead of each costing a round trip through the host (several ms on a busy 2-core
    // machine), and together they can delay a sibling by at most about this long.
    private static readonly TimeSpan ShortPythonChunk = TimeSpan.FromMilliseconds(20);
    private const int MaxPythonPrefetch = 4;

    // How long before a long chunk's expected end the next one is asked for: a round trip
    // through the host with some slack for a busy machine.
    private static readonly TimeSpan AskAheadLead = TimeSpan.FromMilliseconds(15);

    // How long Python's atexit handlers may run at a clean exit.
    private static readonly TimeSpan ExitHandlersTimeout = TimeSpan.FromSeconds(10);

    // How long the final results and output may take to reach the host at exit.
    private static readonly TimeSpan FlushTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan HostAcknowledgeTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan HostListenTimeout = TimeSpan.FromSeconds(60);

    private readonly TaskCompletionSource<Outcome> _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private readonly int _pid = Environment.ProcessId;

    // Guarded by _gate: chunks received and not finished, credits granted and not used,
    // the kind of the latest chunk, whether Python chunks prefetch.
    private int _outstanding;
    private int _credits;
    private bool _kernelMode;
    private int _pythonCapacity = 1;
    private TimeSpan _lastPythonRun;
    private CancellationToken _lifetime;
    private int _askAheadGeneration;
    private bool _shuttingDown;
    private bool _processStarted;
    private bool _processMode;
    private TaskCompletionSource? _released;

    // The current direct assignment's side of the data socket; null: the host's path.
    private DataLease? _lease;
    private DataChannel? _data;

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _lifetime = lifetime.Token;
        _ = WatchParentAsync(lifetime.Token);

        // A prewarmed worker starts with its host and may be ready before it listens.
        var listening = options.Host.WaitForListenerAsync(HostListenTimeout, lifetime.Token);
        if (await Task.WhenAny(listening, _finished.Task) != listening)
        {
            await lifetime.CancelAsync(); // the host died first
            return ExitFailure;
        }

        try
        {
            await listening;
        }
        catch (TimeoutException exception)
        {
            HostLost(exception.Message);
            return ExitFailure;
        }

        using var channel = options.Host.CreateChannel();
        var client = new Execution.ExecutionClient(channel);
        using var call = client.Work(cancellationToken: lifetime.Token);
        outbox.Post(new WorkerMessage
        {
            Hello = new WorkerHello { Pid = _pid, WorkerToken = options.WorkerToken, KernelSlots = kernels.Slots },
        });
        if (options.DataSocket is { } dataSocket)
        {
            _data = new DataChannel(dataSocket, options.DataTcp, python?.Thread, logger);
            _data.Listen();
            _ = _data.AcceptAsync(chunk => Dispatch(chunk, lifetime.Token), lifetime.Token);
        }

        var writer = WriteAsync(call.RequestStream, lifetime.Token);
        var reader = ReadAsync(call.ResponseStream, lifetime.Token);

        Outcome outcome;
        try
        {
            outcome = await _finished.Task.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            outcome = new Outcome(ExitFailure, Flush: false);
        }

        if (outcome.Clean && python is { IsAssigned: true })
        {
            await RunExitHandlersAsync(python, cancellationToken);
        }

        if (outcome.Flush)
        {
            try
            {
                await CloseLease().WaitAsync(FlushTimeout, cancellationToken);
            }
            catch (Exception exception) when (exception is TimeoutException or OperationCanceledException)
            {
                // Exiting anyway: the owner fails what it did not receive.
            }

            // Synchronous on purpose: the forwarding writers only queue into the outbox.
            Console.Out.Flush();
            Console.Error.Flush();
            outbox.Complete();
            try
            {
                await writer.WaitAsync(FlushTimeout, cancellationToken);
            }
            catch (Exception exception) when (exception is TimeoutException or OperationCanceledException or RpcException)
            {
                // Exiting anyway: the host sees the exit and fails what it did not receive.
            }

            // A written message may still sit in the HTTP/2 send buffer; exiting now would
            // drop it with the connection. The host ends the call only after it has read
            // our end of stream, so wait (bounded) for that before exiting.
            try
            {
                await reader.WaitAsync(HostAcknowledgeTimeout, cancellationToken);
            }
            catch (Exception exception) when (exception is TimeoutException or OperationCanceledException)
            {
                // The host did not end the call in time: exit anyway.
            }
        }

        await lifetime.CancelAsync();
        _data?.Dispose();
        return outcome.ExitCode;
    }

    private async Task RunExitHandlersAsync(InterpreterCalls interpreter, CancellationToken cancellationToken)
    {
        try
        {
            // Bounded: a handler that blocks must not keep a retired worker alive.
            await interpreter.RunExitHandlersAsync(cancellationToken).WaitAsync(ExitHandlersTimeout, cancellationToken);
        }
        catch (PythonFailure failure)
        {
            output.Write(OutputForwarder.StandardError, failure.PythonTraceback);
        }
        catch (TimeoutException)
        {
            Log.ExitHandlersTimedOut(logger, ExitHandlersTimeout.TotalSeconds);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Interrupted while exiting: exit without them.
        }
    }

    private async Task WriteAsync(IClientStreamWriter<WorkerMessage> stream, CancellationToken cancellationToken)
    {
        try
        {
            await outbox.DrainAsync(stream, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception exception) when (exception is RpcException or InvalidOperationException or IOException)
        {
            HostLost($"writing failed: {exception.Message}");
        }
    }

    private async Task ReadAsync(IAsyncStreamReader<WorkerCommand> commands, CancellationToken cancellationToken)
    {
        try
        {
            if (!await commands.MoveNext(cancellationToken))
            {
                HostLost("the stream ended before the assignment");
                return;
            }

            if (commands.Current.CommandCase == WorkerCommand.CommandOneofCase.None)
            {
                // The host's empty first command: the stream is read; warm the rest of the
                // first assignment's path too while nothing waits for this worker.
                python?.WarmUp();
                if (!await commands.MoveNext(cancellationToken))
                {
                    HostLost("the stream ended before the assignment");
                    return;
                }
            }

            if (commands.Current.CommandCase == WorkerCommand.CommandOneofCase.Prepare)
            {
                if (!await PrepareAsync(commands.Current.Prepare, cancellationToken))
                {
                    return;
                }

                if (!await commands.MoveNext(cancellationToken))
                {
                    HostLost("the stream ended before the assignment");
                    return;
                }
            }

            // One pool after another: a released worker waits for its next assignment.
            while (true)
            {
                if (commands.Current.CommandCase == WorkerCommand.CommandOneofCase.Shutdown && commands.Current.Shutdown)
                {
                    BeginShutdown();
                    return;
                }

                if (commands.Current.CommandCase != WorkerCommand.CommandOneofCase.Assign)
                {
                    Log.UnexpectedCommand(logger, commands.Current.CommandCase.ToString(), "the first command of a pool must be the assignment");
                    _finished.TrySetResult(new Outcome(ExitFailure, Flush: true));
                    return;
                }

                if (!await AssignAsync(commands.Current.Assign, cancellationToken))
                {
                    return;
                }

                Rebalance();
                if (!await ServePoolAsync(commands, cancellationToken) || !await commands.MoveNext(cancellationToken))
                {
                    break;
                }
            }

            // After Shutdown the host may close its side at once; the running chunks still
            // finish. Until then keep reading: the host ends the call once it has read our
            // end of stream, which RunAsync waits for before exiting.
            if (!IsShuttingDown())
            {
                HostLost("the host ended the stream");
                return;
            }

            while (await commands.MoveNext(cancellationToken))
            {
                Log.UnexpectedCommand(logger, commands.Current.CommandCase.ToString(), "ignored while shutting down");
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (RpcException exception)
        {
            HostLost($"{exception.StatusCode}: {exception.Status.Detail}");
        }
        catch (Exception exception) when (exception is IOException or InvalidOperationException)
        {
            HostLost(exception.Message);
        }
    }

    /// <summary>
    /// Runs the pool's chunks until the host releases the worker (true: the next command
    /// is another assignment) or the stream ends or a shutdown begins (false).
    /// </summary>
    private async Task<bool> ServePoolAsync(IAsyncStreamReader<WorkerCommand> commands, CancellationToken cancellationToken)
    {
        while (await commands.MoveNext(cancellationToken))
        {
            var command = commands.Current;
            switch (command.CommandCase)
            {
                case WorkerCommand.CommandOneofCase.Task:
                    Dispatch(command.Task, cancellationToken);
                    break;
                case WorkerCommand.CommandOneofCase.Shutdown when command.Shutdown:
                    BeginShutdown();
                    return false;
                case WorkerCommand.CommandOneofCase.Release when command.Release:
                    return await ReleaseAsync(cancellationToken);
                case WorkerCommand.CommandOneofCase.Terminate when command.Terminate:
                    ExitIfBusy();
                    return await ReleaseAsync(cancellationToken);
                default:
                    Log.UnexpectedCommand(logger, command.CommandCase.ToString(), "ignored");
                    break;
            }
        }

        return false;
    }

    /// <summary>
    /// Leaves the pool: waits for chunks still running (the host releases idle workers
    /// only), flushes what the pool's tasks left buffered, forgets the pool's credits and
    /// answers Released, after everything sent for the pool. False when the worker must
    /// exit instead (a process-mode worker, or a flush that failed).
    /// </summary>
    private async Task<bool> ReleaseAsync(CancellationToken cancellationToken)
    {
        Task drained;
        lock (_gate)
        {
            if (_processMode)
            {
                Log.UnexpectedCommand(logger, "Release", "a process-mode worker exits instead");
                drained = Task.CompletedTask;
            }
            else
            {
                _released = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (_outstanding == 0)
                {
                    _released.TrySetResult();
                }

                drained = _released.Task;
            }
        }

        if (_processMode)
        {
            BeginShutdown();
            return false;
        }

        await drained.WaitAsync(cancellationToken);
        if (python is { IsAssigned: true })
        {
            try
            {
                await python.ReleaseAsync(cancellationToken);
            }
            catch (PythonFailure failure)
            {
                output.Write(OutputForwarder.StandardError, failure.PythonTraceback);
                BeginShutdown();
                return false;
            }
        }

        _ = CloseLease();
        lock (_gate)
        {
            _released = null;
            _credits = 0;
            _kernelMode = false;
            _pythonCapacity = 1;
            _lastPythonRun = TimeSpan.Zero;
            _askAheadGeneration++;
        }

        Log.Released(logger);
        outbox.Post(new WorkerMessage { Released = true });
        return true;
    }

    /// <summary>
    /// A direct pool's terminate: a worker running one of its chunks dies now, as a
    /// terminated stdlib worker would (the owner fails those chunks itself).
    /// </summary>
    private void ExitIfBusy()
    {
        int running;
        lock (_gate)
        {
            running = _outstanding;
        }

        if (running > 0)
        {
            Log.TerminatedByPool(logger, running);
            ProcessExit.Now(Program.ExitTerminated);
        }
    }

    private async Task WatchParentAsync(CancellationToken cancellationToken)
    {
        try
        {
            await ParentWatch.WaitForParentExitAsync(cancellationToken);
            HostLost("the host process exited");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Applies a session's environment while still warm; false (and the session finishing
    /// with exit 1) when it fails. The host stops preparing for an environment whose
    /// preparation killed a worker, so a broken script costs one worker, not a loop.
    /// </summary>
    private async Task<bool> PrepareAsync(PythonEnvironment environment, CancellationToken cancellationToken)
    {
        if (python is null)
        {
            return FailAssignment(new InvalidOperationException("asked to prepare Python, but this worker is the .NET-only Bridge.Worker executable (kernels only)"));
        }

        return await RunPythonStepAsync(python.PrepareAsync(environment, cancellationToken), python, cancellationToken);
    }

    /// <summary>
    /// Awaits a preparation or assignment step once Python is up; false (and the session
    /// finishing with exit 1) when it fails, after telling the client why (a traceback
    /// from the main module or the initializer, or why Python could not start).
    /// </summary>
    private async Task<bool> RunPythonStepAsync(Task step, InterpreterCalls interpreter, CancellationToken cancellationToken)
    {
        try
        {
            await interpreter.Thread.Ready.WaitAsync(cancellationToken);
            await step;
            return true;
        }
        catch (PythonFailure failure)
        {
            output.Write(OutputForwarder.StandardError, failure.PythonTraceback);
            return FailAssignment(failure);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            output.Write(OutputForwarder.StandardError, $"Bridge worker {_pid}: Python could not start: {exception.Message}\n");
            return FailAssignment(exception);
        }
    }

    /// <summary>Applies the assignment; false (and the session finishing with exit 1) when it fails.</summary>
    private async Task<bool> AssignAsync(Assignment assignment, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        lock (_gate)
        {
            _processMode = assignment.ProcessMode;
        }

        if (!OpenLease(assignment))
        {
            return FailAssignment(new InvalidOperationException("a direct pool needs a data socket, but this worker was started without --data-socket"));
        }

        var environment = assignment.Python;
        var wantsPython = environment is not null && (environment.SysPath.Count > 0 || !string.IsNullOrEmpty(environment.Executable));
        if (wantsPython && python is null)
        {
            return FailAssignment(new InvalidOperationException("the pool needs Python, but this worker is the .NET-only Bridge.Worker executable (kernels only)"));
        }

        if (_processMode && !wantsPython)
        {
            return FailAssignment(new InvalidOperationException("process mode needs a Python environment"));
        }

        if (wantsPython)
        {
            if (!await RunPythonStepAsync(python!.AssignAsync(assignment, cancellationToken), python, cancellationToken))
            {
                return false;
            }
        }

        Log.Assigned(logger, assignment.PoolId, _processMode, clock.Elapsed.TotalMilliseconds);
        return true;
    }

    private bool FailAssignment(Exception exception)
    {
        Log.AssignmentFailed(logger, exception);
        _finished.TrySetResult(new Outcome(ExitFailure, Flush: true));
        return false;
    }

    private void Dispatch(TaskChunk chunk, CancellationToken cancellationToken)
    {
        var isKernel = chunk.Function?.KindCase == Callable.KindOneofCase.Kernel;
        bool runProcess;
        lock (_gate)
        {
            _credits = Math.Max(0, _credits - 1);
            _outstanding++;
            _kernelMode = isKernel;
            runProcess = _processMode && !_processStarted;
            _processStarted |= _processMode;
        }

        if (_processMode)
        {
            if (runProcess)
            {
                _ = RunProcessAsync(chunk, cancellationToken);
            }
            else
            {
                Complete(Failed(chunk, "ValueError", "a process-mode worker runs exactly one Process"), TimeSpan.Zero);
            }

            return;
        }

        Rebalance();
        if (isKernel)
        {
            var clock = Stopwatch.StartNew();
            kernels.Enqueue(chunk, result => Complete(result, clock.Elapsed));
        }
        else
        {
            _ = RunPythonAsync(chunk, cancellationToken);
            _ = AskAheadAsync();
        }
    }

    /// <summary>
    /// Long Python chunks get no prefetch (a queued chunk could idle a sibling for a whole
    /// chunk); instead, when this chunk is expected to end within a round trip (it runs
    /// about as long as the last one did), one more credit goes out, so the next chunk
    /// arrives as this one ends instead of a round trip later.
    /// </summary>
    private async Task AskAheadAsync()
    {
        int generation;
        TimeSpan wait;
        lock (_gate)
        {
            if (_outstanding != 1 || _kernelMode || _processMode || _lastPythonRun < ShortPythonChunk)
            {
                return;
            }

            generation = ++_askAheadGeneration;
            wait = _lastPythonRun - AskAheadLead;
        }

        try
        {
            await Task.Delay(wait, _lifetime);
        }
        catch (Exception exception) when (exception is OperationCanceledException or ObjectDisposedException)
        {
            return; // the worker is exiting
        }

        lock (_gate)
        {
            // Still the same lone chunk, nothing granted meanwhile.
            if (generation != _askAheadGeneration || _outstanding != 1 || _credits > 0 || _shuttingDown)
            {
                return;
            }

            _credits++;
        }

        PostReady(1);
    }

    private async Task RunPythonAsync(TaskChunk chunk, CancellationToken cancellationToken)
    {
        TaskResult result;
        var elapsed = TimeSpan.Zero;
        if (chunk.Function?.KindCase != Callable.KindOneofCase.Python)
        {
            result = Failed(chunk, "TypeError", "the chunk has no function");
        }
        else if (python is null || !python.IsAssigned)
        {
            result = Failed(chunk, "RuntimeError", "this worker has no Python environment (its pool has none, or it is the .NET-only Bridge.Worker executable)");
        }
        else
        {
            try
            {
                (result, elapsed) = await python.RunChunkAsync(chunk, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (PythonFailure failure)
            {
                result = Failed(chunk, failure.PythonType, failure.Message, failure.PythonTraceback);
            }
            catch (Exception exception)
            {
                Log.ChunkRunnerFailed(logger, exception);
                result = Failed(chunk, exception.GetType().FullName ?? "Exception", exception.Message, exception.ToString());
            }
        }

        Complete(result, elapsed);
    }

    private async Task RunProcessAsync(TaskChunk chunk, CancellationToken cancellationToken)
    {
        int exitCode;
        try
        {
            exitCode = await python!.RunProcessAsync(chunk, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return;
        }
        catch (PythonFailure failure)
        {
            output.Write(OutputForwarder.StandardError, failure.PythonTraceback);
            exitCode = ExitFailure;
        }
        catch (Exception exception)
        {
            Log.ChunkRunnerFailed(logger, exception);
            output.Write(OutputForwarder.StandardError, $"Bridge worker {_pid}: the Process could not run: {exception.Message}\n");
            exitCode = ExitFailure;
        }

        Log.ProcessFinished(logger, exitCode);
        // The task completes like any other (its value is the exit code), so the host
        // never counts it as lost when the worker exits right after.
        var result = new TaskResult { TaskId = chunk.TaskId, WorkerPid = _pid };
        result.Values.Add(EncodeExitCode(exitCode));
        outbox.Post(new WorkerMessage { Result = result });
        outbox.Post(new WorkerMessage { ProcessExit = new WorkerExit { Pid = _pid, ExitCode = exitCode } });
        _finished.TrySetResult(new Outcome(exitCode, Flush: true));
    }

    /// <summary>
    /// The exit code as a MessagePack integer, written directly: the serializer's resolvers
    /// would load assemblies (System.Reflection.Primitives) on a worker's first Process
    /// only, so reused workers would hold more descriptors than fresh ones.
    /// </summary>
    private static Google.Protobuf.ByteString EncodeExitCode(int exitCode)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(8);
        var writer = new MessagePack.MessagePackWriter(buffer);
        writer.Write(exitCode);
        writer.Flush();
        return Google.Protobuf.ByteString.CopyFrom(buffer.WrittenSpan);
    }

    private void Complete(TaskResult result, TimeSpan elapsed)
    {
        var lease = CurrentLease();
        lease?.Hold();
        try
        {
            CompleteHeld(result, elapsed);
        }
        finally
        {
            lease?.Unhold();
        }
    }

    private void CompleteHeld(TaskResult result, TimeSpan elapsed)
    {
        PostResult(result);
        bool finished;
        lock (_gate)
        {
            _outstanding--;
            _askAheadGeneration++;
            if (!_kernelMode)
            {
                _lastPythonRun = elapsed;
                // Up to MaxPythonPrefetch chunks whose run adds up to about ShortPythonChunk.
                _pythonCapacity = elapsed >= ShortPythonChunk
                    ? 1
                    : Math.Clamp((int)(ShortPythonChunk.TotalMilliseconds / Math.Max(elapsed.TotalMilliseconds, 1)), 2, MaxPythonPrefetch);
            }

            finished = _shuttingDown && _outstanding == 0;
            if (_outstanding == 0)
            {
                _released?.TrySetResult();
            }
        }

        if (finished)
        {
            _finished.TrySetResult(new Outcome(0, Flush: true, Clean: true));
        }
        else if (!IsReleasing())
        {
            Rebalance();
            // A queued chunk starts now: it may need its successor asked for ahead too.
            _ = AskAheadAsync();
        }
    }

    /// <summary>Grants the credits that bring running + queued + granted up to the current capacity.</summary>
    private void Rebalance()
    {
        int grant;
        lock (_gate)
        {
            if (_shuttingDown)
            {
                return;
            }

            var capacity = _processMode ? 1 : _kernelMode ? kernels.Slots : _pythonCapacity;
            if (_processMode && _processStarted)
            {
                capacity = 0;
            }

            grant = capacity - _outstanding - _credits;
            if (grant <= 0)
            {
                return;
            }

            _credits += grant;
        }

        PostReady(grant);
    }

    /// <summary>Credits go to a direct pool's owner over the data socket, else to the host.</summary>
    private void PostReady(int slots)
    {
        var ready = new WorkerReady { Slots = slots };
        if (CurrentLease() is { } lease)
        {
            lease.Post(new DataFrame { Ready = ready });
        }
        else
        {
            outbox.Post(new WorkerMessage { Ready = ready });
        }
    }

    /// <summary>Results go to a direct pool's owner over the data socket, else to the host.</summary>
    private void PostResult(TaskResult result)
    {
        if (CurrentLease() is { } lease)
        {
            lease.Post(new DataFrame { Result = result });
        }
        else
        {
            outbox.Post(new WorkerMessage { Result = result });
        }
    }

    private DataLease? CurrentLease()
    {
        lock (_gate)
        {
            return _lease;
        }
    }

    /// <summary>
    /// A direct assignment opens a lease on the data socket (before the initializer runs,
    /// so the owner may connect at once); an assignment on the host's path clears it.
    /// False when the worker has no data socket to serve a direct pool.
    /// </summary>
    private bool OpenLease(Assignment assignment)
    {
        var lease = string.IsNullOrEmpty(assignment.DataToken) ? null : new DataLease(assignment.DataToken);
        if (lease is not null && _data is null)
        {
            return false;
        }

        lock (_gate)
        {
            _lease = lease;
        }

        output.Lease = lease;
        _data?.SetLease(lease);
        return true;
    }

    /// <summary>The pool is over for this worker: its owner's connection ends after what is queued.</summary>
    private Task CloseLease()
    {
        DataLease? lease;
        lock (_gate)
        {
            lease = _lease;
            _lease = null;
        }

        output.Lease = null;
        _data?.SetLease(null);
        lease?.Close();
        return lease?.Written ?? Task.CompletedTask;
    }

    private void BeginShutdown()
    {
        Log.ShuttingDown(logger);
        bool idle;
        lock (_gate)
        {
            _shuttingDown = true;
            idle = _outstanding == 0;
        }

        if (idle)
        {
            _finished.TrySetResult(new Outcome(0, Flush: true, Clean: true));
        }
    }

    private bool IsReleasing()
    {
        lock (_gate)
        {
            return _released is not null;
        }
    }

    private bool IsShuttingDown()
    {
        lock (_gate)
        {
            return _shuttingDown;
        }
    }

    private void HostLost(string reason)
    {
        if (_finished.TrySetResult(new Outcome(ExitFailure, Flush: false)))
        {
            Log.HostLost(logger, reason);
        }
    }

    private TaskResult Failed(TaskChunk chunk, string type, string message, string? traceback = null) => new()
    {
        TaskId = chunk.TaskId,
        WorkerPid = _pid,
        Error = new TaskError { Type = type, Message = message, Traceback = traceback ?? $"{type}: {message}" },
    };

    /// <summary>How the session ends: the exit code, whether to deliver what is queued, and
    /// whether it is a clean Shutdown (Python's atexit handlers run first).</summary>
    private sealed record Outcome(int ExitCode, bool Flush, bool Clean = false);
}

using System.Collections.Concurrent;
using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using Bridge.Core.Sessions;
using Bridge.Host.Hosting;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Execution;

/// <summary>
/// The pools of this host. Pools are machine-local: their workers are this host's child
/// processes. A pool ends with its owner's session (a dead client's pool is terminated).
/// </summary>
internal sealed class PoolRegistry : IDisposable
{
    private const int MaxProcesses = 1024;

    private readonly ConcurrentDictionary<string, ExecutionPool> _pools = new();
    private readonly WorkerLauncher _launcher;
    private readonly SessionTracker _sessions;
    private readonly ILogger<PoolRegistry> _logger;
    private readonly TimeSpan _workerStart;
    private readonly CancellationTokenSource _stopping = new();

    public PoolRegistry(
        WorkerLauncher launcher,
        SessionTracker sessions,
        IOptions<BridgeHostOptions> options,
        IHostApplicationLifetime lifetime,
        ILogger<PoolRegistry> logger)
    {
        _launcher = launcher;
        _sessions = sessions;
        _logger = logger;
        _workerStart = TimeSpan.FromSeconds(options.Value.WorkerStartSeconds);
        _sessions.SessionEnded += OnSessionEnded;
        lifetime.ApplicationStopping.Register(TerminateAll);
    }

    public async Task<PoolInfo> CreateAsync(CreatePoolRequest request, CancellationToken cancellationToken)
    {
        if (!_sessions.IsActive(request.SessionId))
        {
            throw BridgeException.SessionEnded(request.SessionId);
        }

        if (request.Processes is < 1 or > MaxProcesses)
        {
            throw BridgeException.InvalidArgument($"Number of processes must be at least 1 (and at most {MaxProcesses}); got {request.Processes}");
        }

        if (request.ProcessMode && request.Processes != 1)
        {
            throw BridgeException.InvalidArgument("a process-mode pool has exactly one worker");
        }

        if (request.MaxTasksPerChild < 0)
        {
            throw BridgeException.InvalidArgument("maxtasksperchild must be a positive int or None");
        }

        if (request.Direct && (request.ProcessMode || request.MaxTasksPerChild > 0))
        {
            throw BridgeException.InvalidArgument("a direct pool has neither process_mode nor max_tasks_per_child");
        }

        var pool = new ExecutionPool(Guid.NewGuid().ToString("N"), request);
        _pools[pool.Id] = pool;
        if (request.ProcessMode)
        {
            // As the stdlib's start() returns once the child is spawned, not once it runs:
            // the Process's chunk waits in the pool for a worker still starting, and a
            // worker that never connects ends the Process with its exit code.
            var worker = AcquireWorker(pool);
            _ = AttachInBackgroundAsync(pool, worker);
            Log.PoolCreated(_logger, pool.Id, request.Name, request.SessionId, request.Processes, " (process)");
            return new PoolInfo { PoolId = pool.Id, WorkerPids = { worker.Pid } };
        }

        try
        {
            var workers = Enumerable.Range(0, request.Processes).Select(_ => StartWorkerAsync(pool, replacement: false, cancellationToken)).ToArray();
            await Task.WhenAll(workers);
        }
        catch
        {
            pool.Terminate();
            _pools.TryRemove(pool.Id, out _);
            throw;
        }

        Log.PoolCreated(_logger, pool.Id, request.Name, request.SessionId, request.Processes, request.ProcessMode ? " (process)" : "");
        var info = new PoolInfo { PoolId = pool.Id };
        info.WorkerPids.AddRange(pool.State().WorkerPids);
        if (pool.Direct)
        {
            info.Workers.AddRange(pool.Addresses());
            info.DataToken = pool.DataToken;
        }
        return info;
    }

    public ExecutionPool Get(string sessionId, string poolId) =>
        _pools.TryGetValue(poolId, out var pool) && pool.OwnerSession == sessionId
            ? pool
            : throw BridgeException.NotFound($"no pool '{poolId}' of this session (it finished, or belongs to another session)");

    /// <summary>Forgets a finished pool once its watcher has seen every event.</summary>
    public void Forget(ExecutionPool pool) => _pools.TryRemove(pool.Id, out _);

    public void Dispose()
    {
        _sessions.SessionEnded -= OnSessionEnded;
        _stopping.Cancel();
        _stopping.Dispose();
    }

    private async Task StartWorkerAsync(ExecutionPool pool, bool replacement, CancellationToken cancellationToken)
    {
        var worker = AcquireWorker(pool);
        try
        {
            await worker.Connected.WaitAsync(_workerStart, cancellationToken);
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
        {
            pool.StartFailed(worker);
            throw BridgeException.Precondition("RuntimeError", $"a worker process did not start: {ex.Message}");
        }
        catch
        {
            pool.StartFailed(worker);
            throw;
        }

        Attach(pool, worker, replacement);
    }

    private WorkerProcess AcquireWorker(ExecutionPool pool)
    {
        WorkerProcess worker;
        try
        {
            worker = _launcher.Acquire(pool.Spec.Python, pool.OwnerSession);
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // The executable could not be started (a missing interpreter, say).
            throw BridgeException.Precondition("RuntimeError", $"a worker process did not start: {ex.Message}");
        }

        pool.Starting(worker);
        return worker;
    }

    /// <summary>
    /// A Process's worker, once it has connected; one that exits first or does not
    /// connect in time ends the Process (with the worker's exit code, or 1), as a child
    /// that died at start-up would.
    /// </summary>
    private async Task AttachInBackgroundAsync(ExecutionPool pool, WorkerProcess worker)
    {
        try
        {
            await worker.Connected.WaitAsync(_workerStart, _stopping.Token);
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or OperationCanceledException)
        {
            var exitCode = worker.Exited.IsCompletedSuccessfully ? worker.Exited.Result : 1;
            if (!worker.Exited.IsCompleted)
            {
                Signals.Send(worker.Pid, Signals.Kill);
            }

            Log.ProcessWorkerDidNotStart(_logger, worker.Pid, pool.Id, ex.Message);
            pool.StartFailed(worker, $"gilbridge: the worker process for {pool.Spec.Name} did not start: {ex.Message}\n", exitCode);
            return;
        }

        Attach(pool, worker, replacement: false);
    }

    private void Attach(ExecutionPool pool, WorkerProcess worker, bool replacement)
    {
        pool.AddWorker(worker, replacement);
        if (worker.TryClaimExitWatch())
        {
            // Once per process: a reused worker exits in whichever pool it serves then.
            _ = worker.Exited.ContinueWith(
                exited => OnWorkerExited(worker, exited.Result),
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    /// <summary>
    /// The worker answered a release: it leaves its pool alive and goes back to its
    /// session's warm workers.
    /// </summary>
    public void OnWorkerReleased(WorkerProcess worker)
    {
        if (worker.TryCompleteRelease(out var pool) && pool is not null)
        {
            pool.OnReleased(worker);
            _launcher.Return(worker, pool.Spec.Python, pool.OwnerSession);
        }
    }

    private void OnWorkerExited(WorkerProcess worker, int exitCode)
    {
        if (worker.Pool is not { } pool)
        {
            return; // idle: it served no pool when it exited
        }

        var lost = pool.OnWorkerExited(worker, exitCode);
        if (lost.Count > 0)
        {
            Log.WorkerDied(_logger, worker.Pid, pool.Id, exitCode, lost.Count);
        }

        if (pool.ShouldReplace(died: lost.Count > 0))
        {
            _ = ReplaceAsync(pool);
        }
    }

    private async Task ReplaceAsync(ExecutionPool pool)
    {
        try
        {
            await StartWorkerAsync(pool, replacement: true, _stopping.Token);
        }
        catch (Exception ex) when (ex is BridgeException or OperationCanceledException)
        {
            Log.ReplacementFailed(_logger, ex, pool.Id);
        }
    }

    private void TerminateAll()
    {
        _stopping.Cancel();
        foreach (var pool in _pools.Values)
        {
            pool.Terminate();
        }
    }

    private void OnSessionEnded(string sessionId)
    {
        foreach (var pool in _pools.Values.Where(p => p.OwnerSession == sessionId))
        {
            pool.Terminate();
            _pools.TryRemove(pool.Id, out _);
        }
    }
}

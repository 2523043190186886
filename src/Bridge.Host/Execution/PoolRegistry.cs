using System.Collections.Concurrent;
using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using Bridge.Core.Sessions;
using Bridge.Host.Cluster;
using Bridge.Host.Hosting;
using Google.Protobuf;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Execution;

/// <summary>
/// The pools of this host. A pool's workers are this host's child processes; in a cluster
/// a direct pool of more workers than this host has free cores also has parts on other
/// hosts (their pools, created through their <see cref="IHostAgentGrain"/>, fed by the
/// owner over TCP), which end with it. A pool ends with its owner's session (a dead
/// client's pool is terminated), a part also when the host it belongs to dies.
/// </summary>
internal sealed class PoolRegistry : IDisposable
{
    private const int MaxProcesses = 1024;

    // How many pools one CreatePool may end first (CreatePoolRequest.ends_pools).
    private const int MaxEndedPools = 64;

    private readonly ConcurrentDictionary<string, ExecutionPool> _pools = new();
    private readonly WorkerLauncher _launcher;
    private readonly SessionTracker _sessions;
    private readonly ClusterPlacement _placement;
    private readonly HostIdentity _identity;
    private readonly ILogger<PoolRegistry> _logger;
    private readonly TimeSpan _workerStart;
    private readonly string _socketPath;
    private readonly CancellationTokenSource _stopping = new();

    public PoolRegistry(
        WorkerLauncher launcher,
        SessionTracker sessions,
        ClusterPlacement placement,
        HostIdentity identity,
        IOptions<BridgeHostOptions> options,
        IHostApplicationLifetime lifetime,
        ILogger<PoolRegistry> logger)
    {
        _launcher = launcher;
        _sessions = sessions;
        _placement = placement;
        _identity = identity;
        _logger = logger;
        _workerStart = TimeSpan.FromSeconds(options.Value.WorkerStartSeconds);
        _socketPath = options.Value.SocketPath;
        _sessions.SessionEnded += OnSessionEnded;
        lifetime.ApplicationStopping.Register(TerminateAll);
    }

    /// <summary>Workers attached to (or starting for) pools of this host.</summary>
    public int WorkersInPools => _pools.Values.Sum(pool => pool.WorkerCount);

    /// <summary>Pools (and Processes) this host runs, parts for other hosts included.</summary>
    public int Count => _pools.Count;

    /// <summary>The pools now, as host status shows them, by owner session.</summary>
    public IReadOnlyList<PoolStatus> Statuses() =>
        [.. _pools.Values.Select(pool => pool.Status()).OrderBy(pool => pool.SessionId, StringComparer.Ordinal).ThenBy(pool => pool.PoolId, StringComparer.Ordinal)];

    /// <summary>Cores of this machine no pool's worker takes now.</summary>
    public int FreeCores => Math.Max(0, Environment.ProcessorCount - WorkersInPools);

    public async Task<PoolInfo> CreateAsync(CreatePoolRequest request, CancellationToken cancellationToken)
    {
        if (!_sessions.IsActive(request.SessionId))
        {
            throw BridgeException.SessionEnded(request.SessionId);
        }

        Validate(request);
        EndPools(request.SessionId, request.EndsPools);
        var id = Guid.NewGuid().ToString("N");
        var parts = request.Direct ? await CreatePartsAsync(id, request, cancellationToken) : [];
        var remote = parts.Sum(part => part.Info.Workers.Count);
        var here = request;
        if (remote > 0)
        {
            here = request.Clone();
            here.Processes = request.Processes - remote;
            Log.PoolSpread(_logger, id, here.Processes, remote);
        }

        PoolInfo info;
        try
        {
            info = await CreateHereAsync(id, here, partOf: null, parts, cancellationToken);
        }
        catch
        {
            await _placement.EndPartsAsync([.. parts.Select(part => (part.Silo, part.Info.PoolId))], terminate: true);
            throw;
        }

        foreach (var (_, part) in parts)
        {
            info.WorkerPids.AddRange(part.WorkerPids);
            info.Workers.AddRange(part.Workers);
        }

        return info;
    }

    /// <summary>
    /// A part of a direct pool of the host <paramref name="ownerSilo"/> (whose session owns it):
    /// its workers are fed over TCP, and it ends when that host ends it or dies.
    /// </summary>
    public async Task<PoolInfo> CreatePartAsync(CreatePoolRequest request, string ownerSilo, CancellationToken cancellationToken)
    {
        Validate(request);
        if (!request.Direct)
        {
            throw BridgeException.InvalidArgument("only a direct pool has parts on other hosts");
        }

        // Its workers reach the objects through this host, their own (objects are
        // cluster-wide), over its Unix socket: no other host's address, token or TLS roots.
        if (request.Python is not null)
        {
            request = request.Clone();
            request.Python.Environment["GILBRIDGE_ADDRESS"] = "unix:" + _socketPath;
            request.Python.Environment.Remove("GILBRIDGE_TOKEN");
            request.Python.Environment.Remove("GILBRIDGE_TLS_CA");
        }

        var id = Guid.NewGuid().ToString("N");
        await CreateHereAsync(id, request, ownerSilo, [], cancellationToken);
        var pool = _pools[id];
        _ = DrainPartAsync(pool);
        var info = new PoolInfo { PoolId = id, DataToken = pool.DataToken };
        info.WorkerPids.AddRange(pool.State().WorkerPids);
        info.Workers.AddRange(pool.RemoteAddresses(_identity.Id));
        return info;
    }

    /// <summary>Closes (or terminates) a part this host runs for another.</summary>
    public void EndPart(string poolId, bool terminate)
    {
        if (_pools.TryGetValue(poolId, out var pool) && pool.PartOf is not null)
        {
            if (terminate)
            {
                pool.Terminate();
            }
            else
            {
                pool.Close();
            }
        }
    }

    /// <summary>Terminates the parts this host runs for <paramref name="ownerSilo"/> (that host died).</summary>
    public void TerminatePartsOwnedBy(string ownerSilo)
    {
        foreach (var pool in _pools.Values.Where(pool => pool.PartOf == ownerSilo))
        {
            pool.Terminate();
        }
    }

    /// <summary>Closes a pool of this host and its parts on others.</summary>
    public PoolState Close(ExecutionPool pool)
    {
        var state = pool.Close();
        EndParts(pool, terminate: false);
        return state;
    }

    /// <summary>
    /// Terminates the session's pools a CreatePool names (<see cref="CreatePoolRequest.EndsPools"/>):
    /// ones that finished meanwhile (their TerminatePool came first) are skipped.
    /// </summary>
    private void EndPools(string sessionId, IEnumerable<string> poolIds)
    {
        foreach (var poolId in poolIds)
        {
            if (_pools.TryGetValue(poolId, out var pool) && pool.OwnerSession == sessionId)
            {
                Terminate(pool);
            }
        }
    }

    /// <summary>Terminates a pool of this host and its parts on others.</summary>
    public PoolState Terminate(ExecutionPool pool)
    {
        var state = pool.Terminate();
        EndParts(pool, terminate: true);
        return state;
    }

    private void EndParts(ExecutionPool pool, bool terminate)
    {
        if (pool.Parts.Count > 0)
        {
            _ = _placement.EndPartsAsync(pool.Parts, terminate);
        }
    }

    /// <summary>Other hosts' shares of a pool that this host's free cores cannot hold (none outside a cluster).</summary>
    private async Task<IReadOnlyList<(string Silo, PoolInfo Info)>> CreatePartsAsync(string id, CreatePoolRequest request, CancellationToken cancellationToken)
    {
        var plan = await _placement.PlanAsync(request.Processes, FreeCores, cancellationToken);
        var parts = await Task.WhenAll(plan.Select(async share =>
        {
            var part = request.Clone();
            part.Processes = share.Count;
            try
            {
                var answer = await _placement.CallAgentAsync(
                    share.Silo, agent => agent.CreatePart(part.ToByteArray(), _placement.LocalSilo, cancellationToken));
                return (share.Silo, Info: PoolInfo.Parser.ParseFrom(answer));
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                Log.PoolPartFailed(_logger, share.Count, id, share.Silo, exception.Message);
                return (share.Silo, Info: (PoolInfo?)null);
            }
        }));
        return [.. parts.Where(part => part.Info is not null).Select(part => (part.Silo, part.Info!))];
    }

    /// <summary>Nobody watches a part's events (its owner watches its own host): they are read here until it ends.</summary>
    private async Task DrainPartAsync(ExecutionPool pool)
    {
        try
        {
            await foreach (var _ in pool.Events.ReadAllAsync(_stopping.Token))
            {
            }
        }
        catch (OperationCanceledException)
        {
            // The host is stopping.
        }

        Forget(pool);
    }

    private static void Validate(CreatePoolRequest request)
    {
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

        if (request.Tasks.Count > 0 && !request.ProcessMode)
        {
            throw BridgeException.InvalidArgument("only a process-mode pool takes its task with CreatePool; submit the others with SubmitTasks");
        }

        ValidateTasks(request.Tasks);
        if (request.EndsPools.Count > MaxEndedPools)
        {
            throw BridgeException.InvalidArgument($"ends_pools names {request.EndsPools.Count} pools; at most {MaxEndedPools}");
        }

        foreach (var poolId in request.EndsPools)
        {
            Services.Requests.Pool(poolId);
        }

        if (request.Python is { } python)
        {
            Validate(python);
        }
    }

    /// <summary>Tasks as SubmitTasks and a process-mode CreatePool take them: each names its function.</summary>
    public static void ValidateTasks(IEnumerable<TaskChunk> tasks)
    {
        foreach (var task in tasks)
        {
            if (task.Function?.KindCase is null or Callable.KindOneofCase.None)
            {
                throw BridgeException.InvalidArgument($"task {task.TaskId} has no function");
            }
        }
    }

    /// <summary>
    /// The interpreter's paths, arguments and variables become a process's executable,
    /// argv, sys.path and environment, where no string can hold a NUL and no variable's
    /// name can be empty or hold '=': those are refused here (INVALID_ARGUMENT), not met
    /// by the worker. The refusal names the field, never the string.
    /// </summary>
    private static void Validate(PythonEnvironment python)
    {
        static void NoNul(string value, string field)
        {
            if (value.Contains('\0', StringComparison.Ordinal))
            {
                throw BridgeException.InvalidArgument($"python.{field} holds a NUL character, which no path, argument or variable can");
            }
        }

        NoNul(python.Executable, "executable");
        NoNul(python.WorkingDirectory, "working_directory");
        NoNul(python.MainPath, "main_path");
        foreach (var entry in python.SysPath)
        {
            NoNul(entry, "sys_path");
        }

        foreach (var argument in python.Argv)
        {
            NoNul(argument, "argv");
        }

        foreach (var (name, value) in python.Environment)
        {
            if (name.Length == 0 || name.Contains('=', StringComparison.Ordinal))
            {
                throw BridgeException.InvalidArgument("python.environment has a variable whose name is empty or holds '='");
            }

            NoNul(name, "environment");
            NoNul(value, "environment");
        }
    }

    private async Task<PoolInfo> CreateHereAsync(
        string id, CreatePoolRequest request, string? partOf, IReadOnlyList<(string Silo, PoolInfo Info)> parts, CancellationToken cancellationToken)
    {
        await _launcher.AwaitReturnsAsync(request.Python, request.SessionId, request.ProcessMode ? 1 : request.Processes, cancellationToken);
        var pool = new ExecutionPool(id, request) { PartOf = partOf, Parts = [.. parts.Select(part => (part.Silo, part.Info.PoolId))] };
        _pools[pool.Id] = pool;
        if (request.ProcessMode)
        {
            // As the stdlib's start() returns once the child is spawned, not once it runs:
            // the Process's chunk waits in the pool for a worker still starting, and a
            // worker that never connects ends the Process with its exit code.
            pool.Submit(request.Tasks);
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
            throw BridgeException.Precondition("RuntimeError", $"a worker process did not start: {Services.Requests.FreeText(ex.Message)}");
        }
        catch
        {
            pool.StartFailed(worker);
            throw;
        }

        Attach(pool, worker, replacement);
    }

    /// <summary>What the pools already hold (<paramref name="pool"/>'s own starting workers among them), plus the one being taken.</summary>
    private WorkersInUse WorkersInUse(ExecutionPool pool)
    {
        var interpreter = WorkerLauncher.EnvironmentKey(pool.Spec.Python);
        int session = 1, sameInterpreter = 1;
        foreach (var other in _pools.Values)
        {
            if (WorkerLauncher.EnvironmentKey(other.Spec.Python) != interpreter)
            {
                continue;
            }

            var count = other.WorkerCount;
            sameInterpreter += count;
            if (other.OwnerSession == pool.OwnerSession && Equals(other.Spec.Python, pool.Spec.Python))
            {
                session += count;
            }
        }

        return new WorkersInUse(session, sameInterpreter);
    }

    private WorkerProcess AcquireWorker(ExecutionPool pool)
    {
        WorkerProcess worker;
        try
        {
            worker = _launcher.Acquire(pool.Spec.Python, pool.OwnerSession, WorkersInUse(pool));
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // The executable could not be started (a missing interpreter, say).
            // The reason names the executable, which is the client's text: shown cut and printable.
            throw BridgeException.Precondition("RuntimeError", $"a worker process did not start: {Services.Requests.FreeText(ex.Message)}");
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
        // Back among the session's workers before the pool can finish: its owner's
        // terminate() may return before (nothing was running) or when the pool's stream
        // ends, and its next pool may ask for workers at once.
        if (_launcher.TryReturnReleased(worker, out var pool))
        {
            pool!.OnReleased(worker);
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
            Terminate(pool);
        }
    }

    private void OnSessionEnded(string sessionId)
    {
        foreach (var pool in _pools.Values.Where(p => p.OwnerSession == sessionId && p.PartOf is null))
        {
            Terminate(pool);
            _pools.TryRemove(pool.Id, out _);
        }
    }
}

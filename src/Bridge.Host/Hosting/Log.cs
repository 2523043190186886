namespace Bridge.Host.Hosting;

internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Bridge host {Version} (pid {Pid}) listening on unix:{SocketPath}{TcpNote}")]
    public static partial void Listening(ILogger logger, string version, int pid, string socketPath, string tcpNote);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "No session for {IdleSeconds:F0} s: shutting down")]
    public static partial void IdleShutdown(ILogger logger, double idleSeconds);


    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Rejected a TCP call without a valid bearer token from {Remote}")]
    public static partial void Unauthenticated(ILogger logger, string? remote);

    [LoggerMessage(EventId = 5, Level = LogLevel.Error, Message = "Unexpected error in {Method}")]
    public static partial void UnexpectedError(ILogger logger, Exception exception, string method);


    [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "Worker {Pid} started for {Environment}")]
    public static partial void WorkerStarted(ILogger logger, int pid, string environment);

    [LoggerMessage(EventId = 11, Level = LogLevel.Debug, Message = "Worker {Pid}: {Line}")]
    public static partial void WorkerOutput(ILogger logger, int pid, string line);

    [LoggerMessage(EventId = 12, Level = LogLevel.Information, Message = "Pool {PoolId} '{Name}' of session {SessionId}: {Processes} worker(s){Mode}")]
    public static partial void PoolCreated(ILogger logger, string poolId, string name, string sessionId, int processes, string mode);

    [LoggerMessage(EventId = 13, Level = LogLevel.Warning, Message = "Worker {Pid} of pool {PoolId} exited with code {ExitCode} while running {Tasks} task(s)")]
    public static partial void WorkerDied(ILogger logger, int pid, string poolId, int exitCode, int tasks);

    [LoggerMessage(EventId = 14, Level = LogLevel.Warning, Message = "Could not start a replacement worker for pool {PoolId}")]
    public static partial void ReplacementFailed(ILogger logger, Exception exception, string poolId);

    [LoggerMessage(EventId = 15, Level = LogLevel.Debug, Message = "Worker {Pid} was released by its pool and waits for the next pool of session {SessionId}")]
    public static partial void WorkerReturned(ILogger logger, int pid, string sessionId);

    [LoggerMessage(EventId = 27, Level = LogLevel.Debug, Message = "Replacing idle workers of {Key} although the machine and the worker taken stayed busy for {Seconds} s")]
    public static partial void ReplenishingOnBusyMachine(ILogger logger, string key, double seconds);

    [LoggerMessage(EventId = 18, Level = LogLevel.Debug, Message = "Stopping {Count} idle worker(s) of {Key}: unused for {Seconds} s")]
    public static partial void IdleWorkersStopping(ILogger logger, int count, string key, double seconds);

    [LoggerMessage(EventId = 17, Level = LogLevel.Warning, Message = "The worker {Pid} of Process pool {PoolId} did not start: {Reason}")]
    public static partial void ProcessWorkerDidNotStart(ILogger logger, int pid, string poolId, string reason);

    [LoggerMessage(EventId = 16, Level = LogLevel.Warning, Message = "Could not remove an exited worker's data socket {Path}: {Reason}")]
    public static partial void DataSocketNotRemoved(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 19, Level = LogLevel.Warning, Message = "The part {PoolId} of a pool on host {Silo} could not be ended: {Reason}")]
    public static partial void PoolPartNotEnded(ILogger logger, string poolId, string silo, string reason);

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Host {Silo} did not say how many cores it has free ({Reason}); it takes no share of the pool")]
    public static partial void HostCapacityUnknown(ILogger logger, string silo, string reason);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "A share of {Count} worker(s) of pool {PoolId} on host {Silo} could not start ({Reason}); they start here instead")]
    public static partial void PoolPartFailed(ILogger logger, int count, string poolId, string silo, string reason);

    [LoggerMessage(EventId = 22, Level = LogLevel.Information, Message = "Pool {PoolId} spreads: {Local} worker(s) here, {Remote} on other hosts")]
    public static partial void PoolSpread(ILogger logger, string poolId, int local, int remote);

    [LoggerMessage(EventId = 24, Level = LogLevel.Warning, Message = "Host {Host} (silo {Silo}) was declared dead: its {Sessions} session(s) on {Objects} object(s) of this host ended (locks released, leased items returned)")]
    public static partial void HostDeclaredDead(ILogger logger, string host, string silo, int sessions, int objects);

    [LoggerMessage(EventId = 26, Level = LogLevel.Information, Message = "Host {Host} (silo {Silo}) left the cluster (it stopped): its {Sessions} session(s) on {Objects} object(s) of this host ended (locks released, leased items returned)")]
    public static partial void HostLeft(ILogger logger, string host, string silo, int sessions, int objects);

    [LoggerMessage(EventId = 25, Level = LogLevel.Warning, Message = "{Family} '{Name}' could not end the sessions of the dead host {Host}: {Reason}")]
    public static partial void DeadHostSessionsNotEnded(ILogger logger, string family, string name, string host, string reason);

    [LoggerMessage(EventId = 23, Level = LogLevel.Debug, Message = "Start-up took {WallMs:F0} ms, {CpuMs:F0} ms of CPU; {JitMethods} methods JIT-compiled in {JitMs:F0} ms")]
    public static partial void StartupCost(ILogger logger, double wallMs, double cpuMs, long jitMethods, double jitMs);
}

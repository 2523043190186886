using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Bridge.Contracts.V1;
using Bridge.Core.Sessions;
using Bridge.Host.Hosting;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Execution;

/// <summary>
/// Starts Bridge.Worker processes and keeps warm idle ones per Python environment, so a
/// Pool or Process does not pay .NET and CPython start-up. A worker proves who it is with
/// the random token it was started with.
/// </summary>
internal sealed class WorkerLauncher : IHostedService, IDisposable
{
    // Idle prepared workers cost memory (~50 MB each): a session that starts Pool(64)
    // gets its next pools' first workers prepared, not all 64.
    private static readonly int MaxPreparedPerSession = Math.Max(4, 2 * Environment.ProcessorCount);

    private static readonly TimeSpan ReplenishDelay = TimeSpan.FromMilliseconds(250);

    // Replacements start once half a core is idle or the worker just taken is not
    // computing, or after SpareCpuWait regardless: a pool that keeps every core busy for
    // longer can spare a worker's start-up by then.
    private const double SpareCoresToStart = 0.5;
    private static readonly TimeSpan SpareCpuWait = TimeSpan.FromSeconds(3);

    // How long a new pool waits for its session's workers still answering a release (a
    // flush of buffered output and queue puts: usually a few ms). Taking another worker
    // instead costs far more: an unprepared one applies the environment on the pool's
    // time (40-90 ms measured) and its replacement is launched (~0.35 s of CPU).
    private static readonly TimeSpan ReturnWait = TimeSpan.FromMilliseconds(250);

    // Concurrent top-ups of one queue must not both launch the missing workers.
    private readonly Lock _replenishing = new();

    private readonly BridgeHostOptions _options;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly SessionTracker _sessions;
    private readonly ILogger<WorkerLauncher> _logger;
    private readonly ConcurrentDictionary<string, WorkerProcess> _byToken = new();
    private readonly string _dotnetRoot = RuntimePaths.DotnetRoot();
    private readonly SpareCpu _spareCpu = new();

    // Idle workers with Python initialized, by EnvironmentKey.
    private readonly ConcurrentDictionary<string, ConcurrentQueue<WorkerProcess>> _warm = new();

    // Idle workers that have also applied one session's environment (its sys.path, cwd,
    // variables and main module), by PreparedKey: a pool of that session with that
    // environment starts with no Python work left but its initializer.
    private readonly ConcurrentDictionary<string, ConcurrentQueue<WorkerProcess>> _prepared = new();

    // How many workers each PreparedKey takes at once. A session is prepared for once it
    // shows it starts pools repeatedly (one-pool scripts do not pay for prepared
    // workers), with as many as it took in its largest burst.
    private readonly ConcurrentDictionary<string, WorkerDemand> _demand = new();

    // How many workers each interpreter (EnvironmentKey) took at once, over all sessions:
    // the warm (unprepared) workers kept for it.
    private readonly ConcurrentDictionary<string, WorkerDemand> _warmDemand = new();

    // PreparedKeys whose preparation killed a worker (the main module raised): not again.
    private readonly ConcurrentDictionary<string, byte> _unpreparable = new();

    // When each EnvironmentKey and PreparedKey last had a worker taken: what the idle
    // shrink measures.
    private readonly ConcurrentDictionary<string, long> _lastUse = new();

    private ITimer? _shrinkTimer;

    // Completed (and replaced) whenever a worker comes back from a pool or exits: what
    // AwaitReturnsAsync waits on.
    private TaskCompletionSource _returned = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public WorkerLauncher(
        IOptions<BridgeHostOptions> options,
        IHostApplicationLifetime lifetime,
        SessionTracker sessions,
        ILogger<WorkerLauncher> logger)
    {
        _options = options.Value;
        _lifetime = lifetime;
        _sessions = sessions;
        _logger = logger;
        _sessions.SessionEnded += OnSessionEnded;
    }

    /// <summary>Which interpreter a worker is ("dotnet": the .NET-only executable, for kernels).</summary>
    public static string EnvironmentKey(PythonEnvironment? python) =>
        HasPython(python) ? python!.Executable : "dotnet";

    private static bool HasPython(PythonEnvironment? python) => python is not null && !string.IsNullOrEmpty(python.Executable);

    public WorkerProcess? FindByToken(string token) => _byToken.GetValueOrDefault(token);

    /// <summary>
    /// A worker for a pool of <paramref name="sessionId"/>: one prepared with this
    /// environment, else a warm one, else a new one; the caller awaits Connected.
    /// </summary>
    public WorkerProcess Acquire(PythonEnvironment? python, string sessionId, WorkersInUse inUse)
    {
        var key = EnvironmentKey(python);
        var preparedKey = PreparedKey(python, sessionId);
        var now = TimeProvider.System.GetTimestamp();
        _lastUse[key] = now;
        if (preparedKey is not null)
        {
            _lastUse[preparedKey] = now;
        }

        var worker = preparedKey is null ? null : TakeIdle(_prepared, preparedKey);
        var tookPrepared = worker is not null;
        // Warm workers grow to the most this interpreter's pools have used at once (a
        // script that starts three Processes together finds three next time), from
        // WarmWorkers up.
        var warmTarget = Math.Clamp(_warmDemand.GetOrAdd(key, _ => new WorkerDemand()).RecordPeak(now, inUse.Interpreter), _options.WarmWorkers, MaxPreparedPerSession);
        worker ??= TakeIdle(_warm, key) ?? Launch(python, key, preparedFor: null);
        if (!tookPrepared)
        {
            _ = ReplenishLaterAsync(_warm, key, python, preparedFor: null, warmTarget, worker.Process);
        }

        if (preparedKey is not null && !_unpreparable.ContainsKey(preparedKey)
            && _demand.GetOrAdd(preparedKey, _ => new WorkerDemand()).Record(now, inUse.Session) is { } wanted)
        {
            _ = ReplenishLaterAsync(_prepared, preparedKey, python, preparedFor: preparedKey, Math.Clamp(wanted, _options.WarmWorkers, MaxPreparedPerSession), worker.Process);
        }

        return worker;
    }

    /// <summary>
    /// Waits, at most <see cref="ReturnWait"/>, until the session's prepared workers can
    /// cover <paramref name="count"/> or none of its workers is still answering a release:
    /// a pool closed and not joined, an executor shut down without waiting or a pool left
    /// to the garbage collector still has releases in flight when the script's next pool
    /// asks for workers. (terminate() and join() return once the workers are back.)
    /// </summary>
    public async Task AwaitReturnsAsync(PythonEnvironment? python, string sessionId, int count, CancellationToken cancellationToken)
    {
        var preparedKey = PreparedKey(python, sessionId);
        if (preparedKey is null)
        {
            return;
        }

        var deadline = TimeProvider.System.GetTimestamp() + (long)(ReturnWait.TotalSeconds * TimeProvider.System.TimestampFrequency);
        while (true)
        {
            // Read before counting: a return between the count and the wait completes it.
            var returned = Volatile.Read(ref _returned).Task;
            bool done;
            // Under the lock TryReturnReleased holds: a worker is counted either as still
            // releasing or as back among the prepared ones, never as neither.
            lock (_replenishing)
            {
                var idle = _prepared.TryGetValue(preparedKey, out var queue) ? queue.Count(w => !w.Exited.IsCompleted) : 0;
                done = idle >= count || !_byToken.Values.Any(w => w.IsReleasing && ReleasesInto(w, preparedKey));
            }

            if (done)
            {
                return;
            }

            var left = TimeProvider.System.GetElapsedTime(TimeProvider.System.GetTimestamp(), deadline);
            if (left <= TimeSpan.Zero)
            {
                return;
            }

            try
            {
                await returned.WaitAsync(left, cancellationToken);
            }
            catch (TimeoutException)
            {
                return;
            }
        }
    }

    private static bool ReleasesInto(WorkerProcess worker, string preparedKey) =>
        worker.Pool is { } pool && PreparedKey(pool.Spec.Python, pool.OwnerSession) == preparedKey;

    private void SignalReturned() => Interlocked.Exchange(ref _returned, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>
    /// The worker answered a release: it leaves <paramref name="pool"/> and is taken back
    /// (see <see cref="Return"/>) in one step under the lock <see cref="AwaitReturnsAsync"/>
    /// counts under; between the two, a pool of its session starting meanwhile saw it
    /// neither releasing nor back, and took another worker. False when no release was
    /// asked for.
    /// </summary>
    public bool TryReturnReleased(WorkerProcess worker, out ExecutionPool? pool)
    {
        lock (_replenishing)
        {
            if (!worker.TryCompleteRelease(out pool) || pool is null)
            {
                return false;
            }

            Return(worker, pool.Spec.Python, pool.OwnerSession);
            return true;
        }
    }

    /// <summary>
    /// Takes back a worker its pool released. A Python worker has applied the session's
    /// environment, so it joins that session's prepared workers (or stops, when the
    /// session is gone); a kernel-only worker rejoins the warm ones while they are short.
    /// </summary>
    public void Return(WorkerProcess worker, PythonEnvironment? python, string sessionId)
    {
        var preparedKey = PreparedKey(python, sessionId);
        lock (_replenishing)
        {
            if (!_lifetime.ApplicationStopping.IsCancellationRequested)
            {
                if (preparedKey is not null && _sessions.IsActive(sessionId))
                {
                    worker.PreparedFor = preparedKey;
                    _prepared.GetOrAdd(preparedKey, _ => new ConcurrentQueue<WorkerProcess>()).Enqueue(worker);
                    Log.WorkerReturned(_logger, worker.Pid, sessionId);
                    SignalReturned();
                    return;
                }

                var warm = _warm.GetOrAdd(EnvironmentKey(python), _ => new ConcurrentQueue<WorkerProcess>());
                if (!HasPython(python) && warm.Count(w => !w.Exited.IsCompleted) < _options.WarmWorkers)
                {
                    warm.Enqueue(worker);
                    Log.WorkerReturned(_logger, worker.Pid, sessionId);
                    return;
                }
            }
        }

        worker.Commands.Writer.TryWrite(new WorkerCommand { Shutdown = true });
    }

    /// <summary>Worker processes of this host, idle or serving.</summary>
    public int RunningWorkers => _byToken.Count;

    public void Dispose()
    {
        _sessions.SessionEnded -= OnSessionEnded;
        _shrinkTimer?.Dispose();
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Workers hold Work streams open; the server's graceful stop would wait for them,
        // so they are told to go first.
        _lifetime.ApplicationStopping.Register(StopAllWorkers);
        var idle = TimeSpan.FromSeconds(_options.IdleWorkerSeconds);
        var period = TimeSpan.FromSeconds(Math.Clamp(_options.IdleWorkerSeconds / 4, 0.25, 30));
        _shrinkTimer = TimeProvider.System.CreateTimer(_ => StopIdleWorkers(idle), null, period, period);
        if (!string.IsNullOrEmpty(_options.PrewarmPythonExecutable))
        {
            // Now, before the silo and the listener start: a worker's .NET and CPython
            // start-up overlaps the host's own, and it connects once the host listens.
            var python = new PythonEnvironment { Executable = _options.PrewarmPythonExecutable };
            Replenish(_warm, EnvironmentKey(python), python, preparedFor: null, _options.WarmWorkers);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var worker in _byToken.Values)
        {
            Signals.Send(worker.Pid, Signals.Kill);
        }

        return Task.CompletedTask;
    }

    private void StopAllWorkers()
    {
        foreach (var worker in _byToken.Values)
        {
            worker.Commands.Writer.TryComplete();
            Signals.Send(worker.Pid, Signals.Terminate);
        }
    }

    /// <summary>
    /// Workers beyond the baseline go once unused for <paramref name="idle"/>: an
    /// interpreter's warm workers shrink back to WarmWorkers (and its burst size is
    /// forgotten), and a session's prepared workers stop (it prepares again when it
    /// cycles pools again).
    /// </summary>
    private void StopIdleWorkers(TimeSpan idle)
    {
        var now = TimeProvider.System.GetTimestamp();
        lock (_replenishing)
        {
            foreach (var entry in _warm)
            {
                if (UnusedFor(entry.Key, now, idle) && _warmDemand.TryRemove(entry.Key, out _))
                {
                    StopExtras(entry.Key, entry.Value, keep: _options.WarmWorkers, idle);
                }
            }

            foreach (var entry in _prepared)
            {
                if (UnusedFor(entry.Key, now, idle))
                {
                    _demand.TryRemove(entry.Key, out _);
                    StopExtras(entry.Key, entry.Value, keep: 0, idle);
                }
            }
        }
    }

    private bool UnusedFor(string key, long now, TimeSpan idle) =>
        !_lastUse.TryGetValue(key, out var last) || TimeProvider.System.GetElapsedTime(last, now) >= idle;

    private void StopExtras(string key, ConcurrentQueue<WorkerProcess> queue, int keep, TimeSpan idle)
    {
        var extra = queue.Count(w => !w.Exited.IsCompleted) - keep;
        if (extra <= 0)
        {
            return;
        }

        Log.IdleWorkersStopping(_logger, extra, key, idle.TotalSeconds);
        for (; extra > 0 && TakeIdle(queue) is { } worker; extra--)
        {
            worker.Commands.Writer.TryWrite(new WorkerCommand { Shutdown = true });
        }
    }

    private static WorkerProcess? TakeIdle(ConcurrentDictionary<string, ConcurrentQueue<WorkerProcess>> idle, string key) =>
        idle.TryGetValue(key, out var queue) ? TakeIdle(queue) : null;

    private static WorkerProcess? TakeIdle(ConcurrentQueue<WorkerProcess> queue)
    {
        while (queue.TryDequeue(out var candidate))
        {
            if (!candidate.Exited.IsCompleted)
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>
    /// Replenishes once the pool that took <paramref name="taken"/> has got going and a
    /// start takes nothing from its work (see <see cref="SpareCpu"/>): starting a worker
    /// costs a few hundred ms of CPU (.NET, CPython, the environment), which on a small
    /// machine would be taken from that pool's tasks.
    /// </summary>
    private async Task ReplenishLaterAsync(ConcurrentDictionary<string, ConcurrentQueue<WorkerProcess>> idle, string key, PythonEnvironment? python, string? preparedFor, int target, Process taken)
    {
        try
        {
            await Task.Delay(ReplenishDelay, _lifetime.ApplicationStopping);
            var started = TimeProvider.System.GetTimestamp();
            if (!await _spareCpu.WaitAsync(taken, SpareCoresToStart, SpareCpuWait, _lifetime.ApplicationStopping))
            {
                Log.ReplenishingOnBusyMachine(_logger, key, TimeProvider.System.GetElapsedTime(started).TotalSeconds);
            }
        }
        catch (OperationCanceledException)
        {
            return; // stopping: no new workers
        }

        Replenish(idle, key, python, preparedFor, target);
    }

    private void Replenish(ConcurrentDictionary<string, ConcurrentQueue<WorkerProcess>> idle, string key, PythonEnvironment? python, string? preparedFor, int target)
    {
        lock (_replenishing)
        {
            if (preparedFor is not null && !_demand.ContainsKey(preparedFor))
            {
                return; // the session ended meanwhile: its prepared workers are gone
            }

            var queue = idle.GetOrAdd(key, _ => new ConcurrentQueue<WorkerProcess>());
            // A session's prepared workers count busy ones too: they come back when their
            // pool ends, so a session cycling Pool(n) keeps n workers, not 2n.
            var have = preparedFor is null
                ? queue.Count(w => !w.Exited.IsCompleted)
                : _byToken.Values.Count(w => w.PreparedFor == preparedFor && !w.Exited.IsCompleted);
            for (; have < target; have++)
            {
                queue.Enqueue(Launch(python, EnvironmentKey(python), preparedFor));
            }
        }
    }

    /// <summary>Null when nothing can be prepared: no Python, or no session to scope it to.</summary>
    private static string? PreparedKey(PythonEnvironment? python, string sessionId)
    {
        if (!HasPython(python) || string.IsNullOrEmpty(sessionId))
        {
            return null;
        }

        // Map order is not part of an environment's identity: hash the variables sorted.
        var text = new StringBuilder();
        text.Append(python!.Executable).Append('\0')
            .Append(python.WorkingDirectory).Append('\0').Append(python.MainPath).Append('\0');
        foreach (var entry in python.SysPath)
        {
            text.Append(entry).Append('\u0001');
        }

        foreach (var (name, value) in python.Environment.OrderBy(pair => pair.Key, StringComparer.Ordinal))
        {
            text.Append('\0').Append(name).Append('=').Append(value);
        }

        return sessionId + "|" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>A session's prepared workers ran its main module: nobody else may use them.</summary>
    private void OnSessionEnded(string sessionId)
    {
        var prefix = sessionId + "|";
        lock (_replenishing)
        {
            // First, so that no top-up scheduled before the end prepares workers after it.
            // Each map on its own: the idle shrink may have dropped a key's demand already.
            RemoveSessionKeys(_demand, prefix);
            RemoveSessionKeys(_unpreparable, prefix);
            RemoveSessionKeys(_lastUse, prefix);
        }

        foreach (var key in _prepared.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)))
        {
            if (_prepared.TryRemove(key, out var queue))
            {
                while (queue.TryDequeue(out var worker))
                {
                    Signals.Send(worker.Pid, Signals.Terminate);
                }
            }
        }
    }

    private static void RemoveSessionKeys<T>(ConcurrentDictionary<string, T> map, string prefix)
    {
        foreach (var key in map.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)))
        {
            map.TryRemove(key, out _);
        }
    }

    private WorkerProcess Launch(PythonEnvironment? python, string key, string? preparedFor)
    {
        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        // A Python worker is the client's own interpreter with .NET loaded into it (see
        // bridge_worker.py); a kernel-only worker is the .NET executable itself.
        var start = HasPython(python)
            ? new ProcessStartInfo(python!.Executable)
            : new ProcessStartInfo(_options.WorkerPath);
        start.UseShellExecute = false;
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        if (HasPython(python))
        {
            start.ArgumentList.Add(Path.Combine(Path.GetDirectoryName(_options.WorkerPath)!, "bridge_worker.py"));
            start.ArgumentList.Add("--dotnet-root");
            start.ArgumentList.Add(_dotnetRoot);
        }

        start.ArgumentList.Add("--host");
        start.ArgumentList.Add("unix:" + _options.SocketPath);
        start.ArgumentList.Add("--worker-token");
        start.ArgumentList.Add(token);
        // Where the owners of direct pools feed it, beside the host's socket (0700 directory).
        var dataSocket = Path.Combine(Path.GetDirectoryName(_options.SocketPath)!, $"w-{token[..16].ToLowerInvariant()}.sock");
        start.ArgumentList.Add("--data-socket");
        start.ArgumentList.Add(dataSocket);
        var remoteData = "";
        if (_options.InCluster)
        {
            // Clients on other machines feed a cluster host's workers over TCP, at the
            // host's advertised address.
            var endpoint = new IPEndPoint(IPAddress.Parse(_options.TcpAddress), HostingExtensions.FreePort(IPAddress.Parse(_options.TcpAddress)));
            start.ArgumentList.Add("--data-tcp");
            start.ArgumentList.Add(endpoint.ToString());
            remoteData = "tcp:" + endpoint;
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        if (!process.Start())
        {
            throw new InvalidOperationException($"could not start the worker {_options.WorkerPath}");
        }

        var worker = new WorkerProcess(process, token, key) { PreparedFor = preparedFor, DataAddress = "unix:" + dataSocket, RemoteDataAddress = remoteData };
        _byToken[token] = worker;
        if (preparedFor is not null)
        {
            // Queued until the worker connects; it applies the environment while idle.
            worker.Commands.Writer.TryWrite(new WorkerCommand { Prepare = python });
        }

        process.OutputDataReceived += (_, line) => LogWorkerLine(worker, line.Data);
        process.ErrorDataReceived += (_, line) => LogWorkerLine(worker, line.Data);
        process.Exited += (_, _) =>
        {
            _byToken.TryRemove(token, out _);
            DeleteDataSocket(dataSocket);
            if (preparedFor is not null && !worker.EverAssigned && !_lifetime.ApplicationStopping.IsCancellationRequested)
            {
                _unpreparable.TryAdd(preparedFor, 0);
            }

            worker.MarkExited();
            SignalReturned();
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Log.WorkerStarted(_logger, worker.Pid, key);
        return worker;
    }

    /// <summary>The worker's own removal does not run when it is killed or exits with _exit.</summary>
    private void DeleteDataSocket(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            Log.DataSocketNotRemoved(_logger, path, exception.Message);
        }
    }

    private void LogWorkerLine(WorkerProcess worker, string? line)
    {
        if (!string.IsNullOrEmpty(line))
        {
            Log.WorkerOutput(_logger, worker.Pid, line);
        }
    }
}

/// <summary>
/// Workers serving pools when one more is taken, this one included: those of the
/// taking session's pools with the same environment, and those of every pool on the
/// same interpreter.
/// </summary>
internal readonly record struct WorkersInUse(int Session, int Interpreter);

/// <summary>
/// The most workers one session (with one environment), or one interpreter, has had
/// serving at once. Acquisitions less than a second apart count as one burst: a session
/// that takes workers in one burst only (a one-off Pool) gets no prepared workers. The
/// peak counts workers in use, not acquisitions, so a script cycling `with Pool(2)`
/// every few ms keeps two, not one per pool it made within the second.
/// </summary>
internal sealed class WorkerDemand
{
    private static readonly TimeSpan Burst = TimeSpan.FromSeconds(1);

    private readonly Lock _gate = new();
    private long _burstStart;
    private int _peak;
    private int _bursts;

    /// <summary>Records one acquisition with <paramref name="inUse"/> workers serving;
    /// null during the first burst (no prepared workers for a one-off), else how many
    /// workers to keep prepared.</summary>
    public int? Record(long timestamp, int inUse)
    {
        lock (_gate)
        {
            RecordUnderLock(timestamp, inUse);
            return _bursts == 1 ? null : _peak;
        }
    }

    /// <summary>Records one acquisition; the most workers in use at once so far.</summary>
    public int RecordPeak(long timestamp, int inUse)
    {
        lock (_gate)
        {
            RecordUnderLock(timestamp, inUse);
            return _peak;
        }
    }

    private void RecordUnderLock(long timestamp, int inUse)
    {
        if (_bursts == 0 || TimeProvider.System.GetElapsedTime(_burstStart, timestamp) > Burst)
        {
            _burstStart = timestamp;
            _bursts++;
        }

        _peak = Math.Max(_peak, Math.Max(1, inUse));
    }
}

using System.Collections.Concurrent;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Grpc.Core;

namespace Bridge.Client;

/// <summary>
/// A pool of Bridge workers owned by this session (Python's <c>multiprocessing.Pool(n)</c>):
/// tasks are C# kernels or Python functions (<see cref="BridgeFunction"/>), their arguments
/// and results MessagePack. Create one with
/// <see cref="BridgeSession.PoolAsync(int, BridgePoolOptions, CancellationToken)"/>.
/// </summary>
/// <remarks>
/// Tasks go through the host (SubmitTasks, results on the pool's WatchPool stream). Disposal
/// terminates the pool (as <c>with Pool() as p:</c> does); <see cref="CloseAsync"/> lets
/// submitted work finish first. A cancelled <see cref="MapAsync{TItem, TResult}(BridgeFunction, IEnumerable{TItem}, CancellationToken)"/>
/// stops waiting; the work it submitted still runs. A task that fails raises
/// <see cref="PoolTaskException"/> (the remote type, message and trace);
/// one whose worker died, or whose pool was terminated, <see cref="BrokenPoolException"/>.
/// </remarks>
public sealed class BridgePool : IAsyncDisposable
{
    // At most this many chunks or bytes per SubmitTasks call.
    private const int SubmitMaxChunks = 1000;
    private const int SubmitMaxBytes = 4 << 20;

    private readonly BridgeSession _session;
    private readonly AsyncServerStreamingCall<PoolEvent> _events;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<long, TaskCompletionSource<TaskResult>> _pending = new();
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TextWriter _stdout;
    private readonly TextWriter _stderr;
    private readonly Task _reader;
    private long _nextTaskId;
    private int _terminated;
    private int _disposed;

    private BridgePool(BridgeSession session, PoolInfo info, int processes, BridgePoolOptions options)
    {
        _session = session;
        PoolId = info.PoolId;
        Processes = processes;
        WorkerPids = [.. info.WorkerPids];
        _stdout = options.StandardOutput ?? Console.Out;
        _stderr = options.StandardError ?? Console.Error;
        _events = session.Execution.WatchPool(new WatchPoolRequest { SessionId = session.SessionId, PoolId = PoolId }, cancellationToken: _stopping.Token);
        _reader = ReadEventsAsync(_stopping.Token);
    }

    /// <summary>The host's id of the pool.</summary>
    public string PoolId { get; }

    /// <summary>How many workers the pool has.</summary>
    public int Processes { get; }

    /// <summary>The process ids of the workers the pool started with.</summary>
    public IReadOnlyList<int> WorkerPids { get; }

    /// <summary>
    /// Calls <paramref name="function"/>(<paramref name="args"/>) on a worker and returns its
    /// result (Python's <c>apply</c>).
    /// </summary>
    public async Task<TResult> ApplyAsync<TResult>(BridgeFunction function, object?[] args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(args);
        var item = _session.Payloads.Encode<object[]>([args, new Dictionary<string, object?>()], cancellationToken);
        var results = await RunAsync<TResult>(function, CallStyle.Call, [[item]], cancellationToken).ConfigureAwait(false);
        return results[0];
    }

    /// <summary>
    /// <paramref name="function"/>(item) for every item, in chunks spread over the workers
    /// (Python's <c>map</c>, the stdlib's chunk size); the results in the items' order.
    /// </summary>
    public Task<IReadOnlyList<TResult>> MapAsync<TItem, TResult>(BridgeFunction function, IEnumerable<TItem> items, CancellationToken cancellationToken = default) =>
        MapAsync<TItem, TResult>(function, items, 0, cancellationToken);

    /// <summary><paramref name="function"/>(item) for every item, <paramref name="chunkSize"/> items a task (0: the stdlib's choice).</summary>
    public Task<IReadOnlyList<TResult>> MapAsync<TItem, TResult>(BridgeFunction function, IEnumerable<TItem> items, int chunkSize, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        var payloads = items.Select(item => _session.Payloads.Encode(item, cancellationToken)).ToList();
        return RunAsync<TResult>(function, CallStyle.Map, Chunk(payloads, chunkSize), cancellationToken);
    }

    /// <summary>
    /// <paramref name="function"/>(*args) for every argument list (Python's <c>starmap</c>);
    /// the results in order.
    /// </summary>
    public Task<IReadOnlyList<TResult>> StarMapAsync<TResult>(BridgeFunction function, IEnumerable<object?[]> argumentLists, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(argumentLists);
        var payloads = argumentLists.Select(args => _session.Payloads.Encode(args, cancellationToken)).ToList();
        return RunAsync<TResult>(function, CallStyle.Starmap, Chunk(payloads, 0), cancellationToken);
    }

    /// <summary>No more tasks: waits until the submitted work is done and the workers have left the pool.</summary>
    public async Task CloseAsync(CancellationToken cancellationToken = default)
    {
        await _session.CallAsync(_session.Execution.ClosePoolAsync(Request(), cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        await _finished.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the workers now; unfinished tasks fail with <see cref="BrokenPoolException"/>.</summary>
    public async Task TerminateAsync(CancellationToken cancellationToken = default)
    {
        Volatile.Write(ref _terminated, 1);
        await _session.CallAsync(_session.Execution.TerminatePoolAsync(Request(), cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        await _finished.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Terminates the pool unless it has finished (closed and drained); idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            if (!_finished.Task.IsCompleted)
            {
                using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await TerminateAsync(limit.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is BridgeException or IOException or KeyNotFoundException or InvalidOperationException or OperationCanceledException)
        {
            // The session or host is gone: the host ends a dead owner's pools itself.
        }
        finally
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
            await _reader.ConfigureAwait(false);
            _events.Dispose();
            _stopping.Dispose();
        }
    }

    internal static async Task<BridgePool> CreateAsync(BridgeSession session, int processes, BridgePoolOptions options, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(processes);
        ArgumentNullException.ThrowIfNull(options);
        var request = new CreatePoolRequest
        {
            SessionId = session.SessionId,
            Processes = processes,
            Name = options.Name ?? "",
            MaxTasksPerChild = options.MaxTasksPerChild,
        };
        if (options.Python is { } python)
        {
            request.Python = await python.ResolveAsync(cancellationToken).ConfigureAwait(false);
        }

        var info = await session.CallAsync(session.Execution.CreatePoolAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        return new BridgePool(session, info, processes, options);
    }

    /// <summary>Submits one task per chunk and gathers every result in order.</summary>
    private async Task<IReadOnlyList<TResult>> RunAsync<TResult>(BridgeFunction function, CallStyle style, List<List<ByteString>> chunks, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(function);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var waits = new List<Task<TaskResult>>(chunks.Count);
        var request = NewSubmit();
        var bytes = 0;
        foreach (var items in chunks)
        {
            var chunk = new TaskChunk { TaskId = Interlocked.Increment(ref _nextTaskId), Function = function.Callable, Style = style };
            chunk.Items.Add(items);
            var pending = new TaskCompletionSource<TaskResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            _pending[chunk.TaskId] = pending;
            waits.Add(pending.Task);
            request.Tasks.Add(chunk);
            bytes += items.Sum(item => item.Length);
            if (request.Tasks.Count >= SubmitMaxChunks || bytes >= SubmitMaxBytes)
            {
                await SubmitAsync(request, cancellationToken).ConfigureAwait(false);
                request = NewSubmit();
                bytes = 0;
            }
        }

        if (request.Tasks.Count > 0)
        {
            await SubmitAsync(request, cancellationToken).ConfigureAwait(false);
        }

        if (_finished.Task.IsCompleted)
        {
            FailPending();
        }

        var results = new List<TResult>();
        foreach (var wait in waits)
        {
            var result = await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (result.Error is { } error)
            {
                throw Failure(error, function);
            }

            foreach (var value in result.Values)
            {
                results.Add(_session.Payloads.Decode<TResult>(value.Memory, cancellationToken));
            }
        }

        return results;
    }

    private async Task SubmitAsync(SubmitTasksRequest request, CancellationToken cancellationToken)
    {
        try
        {
            await _session.CallAsync(_session.Execution.SubmitTasksAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            foreach (var chunk in request.Tasks)
            {
                _pending.TryRemove(chunk.TaskId, out _);
            }

            throw;
        }
    }

    private async Task ReadEventsAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var poolEvent in _events.ResponseStream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                if (poolEvent.EventCase == PoolEvent.EventOneofCase.Result)
                {
                    if (_pending.TryRemove(poolEvent.Result.TaskId, out var pending))
                    {
                        pending.TrySetResult(poolEvent.Result);
                    }
                }
                else if (poolEvent.EventCase == PoolEvent.EventOneofCase.Output)
                {
                    var writer = poolEvent.Output.Stream == 2 ? _stderr : _stdout;
                    await writer.WriteAsync(poolEvent.Output.Text.AsMemory(), cancellationToken).ConfigureAwait(false);
                    await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (Exception ex) when (ex is RpcException or OperationCanceledException or IOException or ObjectDisposedException)
        {
            // The stream ended early (disposal, the session or host gone): what is pending fails below.
        }
        finally
        {
            // The pool finished (every worker left it): nothing pending can arrive any more.
            _finished.TrySetResult();
            FailPending();
        }
    }

    private void FailPending()
    {
        var message = Volatile.Read(ref _terminated) != 0
            ? "the pool was terminated before this task finished"
            : "the pool finished (or its session ended) before this task did";
        foreach (var taskId in _pending.Keys)
        {
            if (_pending.TryRemove(taskId, out var pending))
            {
                pending.TrySetResult(new TaskResult { TaskId = taskId, Error = new TaskError { WorkerDied = true, Message = message } });
            }
        }
    }

    private PoolTaskException Failure(TaskError error, BridgeFunction function)
    {
        if (error.WorkerDied || error.Type is "BrokenProcessPool" or "TerminatedError")
        {
            var message = string.IsNullOrEmpty(error.Message) ? "a worker process died while running this task" : error.Message;
            return new BrokenPoolException(Volatile.Read(ref _terminated) != 0 && !error.WorkerDied
                ? $"the pool was terminated before this task finished ({message})"
                : message);
        }

        return new PoolTaskException(error.Type, $"{error.Message} (in {function})", error.Traceback);
    }

    /// <summary>The items in tasks of <paramref name="chunkSize"/>; 0: the stdlib's size, about four tasks per worker.</summary>
    private List<List<ByteString>> Chunk(List<ByteString> payloads, int chunkSize)
    {
        if (chunkSize <= 0)
        {
            var tasks = Processes * 4;
            chunkSize = Math.Max(1, (payloads.Count + tasks - 1) / tasks);
        }

        return [.. payloads.Chunk(chunkSize).Select(chunk => chunk.ToList())];
    }

    private SubmitTasksRequest NewSubmit() => new() { SessionId = _session.SessionId, PoolId = PoolId };

    private PoolRequest Request() => new() { SessionId = _session.SessionId, PoolId = PoolId };
}

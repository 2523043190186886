namespace Bridge.Client;

/// <summary>
/// A FIFO queue living in the host, shared by name (Python's <c>multiprocessing.Queue(maxsize, name=...)</c>),
/// whose items are <typeparamref name="T"/> as MessagePack. Open one with
/// <see cref="BridgeSession.QueueAsync{T}(string?, long, CancellationToken)"/>.
/// </summary>
/// <remarks>
/// What a Python client puts arrives as the same plain data (None, bool, int, float, str,
/// bytes, list, tuple as a list, dict), read into <typeparamref name="T"/> by the session's
/// MessagePack options; an item Python had to pickle fails with <see cref="NotSupportedException"/>.
/// A put is one call, sent at once. A get is one call; the item is acknowledged with this
/// session's next get of the queue or when the session is disposed. Until then the host
/// leases it to this session: if the process dies first, the item goes back to the queue
/// for other consumers (at least once on a crash, exactly once on a clean exit).
/// </remarks>
/// <typeparam name="T">The items' type.</typeparam>
public class BridgeQueue<T>
{
    internal BridgeQueue(QueueCore core) => Core = core;

    /// <summary>The host's name of the queue.</summary>
    public string Name => Core.Name;

    /// <summary>The most items the queue holds; 0: unbounded.</summary>
    public long MaxSize => Core.MaxSize;

    internal QueueCore Core { get; }

    /// <summary>Puts <paramref name="item"/>, waiting for space as long as it takes (a bounded queue).</summary>
    public Task PutAsync(T item, CancellationToken cancellationToken = default) => PutAsync(item, null, cancellationToken);

    /// <summary>
    /// Puts <paramref name="item"/>, waiting for space at most <paramref name="timeout"/>
    /// (null: as long as it takes; zero: not at all); <see cref="TimeoutException"/> when a
    /// bounded queue stayed full (Python's queue.Full). <see cref="ArgumentException"/> when
    /// the item is larger than the host accepts.
    /// </summary>
    public async Task PutAsync(T item, TimeSpan? timeout, CancellationToken cancellationToken = default)
    {
        if (!await TryPutAsync(item, timeout, cancellationToken).ConfigureAwait(false))
        {
            throw Core.Full(timeout);
        }
    }

    /// <summary>Puts <paramref name="item"/>, waiting for space at most <paramref name="timeout"/>; false when the queue stayed full.</summary>
    public Task<bool> TryPutAsync(T item, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        TryPutAsync(item, (TimeSpan?)timeout, cancellationToken);

    /// <summary>Removes and returns the next item, waiting as long as it takes.</summary>
    public Task<T> GetAsync(CancellationToken cancellationToken = default) => GetAsync(null, cancellationToken);

    /// <summary>
    /// Removes and returns the next item, waiting at most <paramref name="timeout"/> (null:
    /// as long as it takes; zero: not at all); <see cref="TimeoutException"/> when the queue
    /// stayed empty (Python's queue.Empty).
    /// </summary>
    public async Task<T> GetAsync(TimeSpan? timeout, CancellationToken cancellationToken = default)
    {
        var (found, item) = await TryGetAsync(timeout, cancellationToken).ConfigureAwait(false);
        return found ? item! : throw Core.Empty(timeout);
    }

    /// <summary>Removes and returns the next item, waiting at most <paramref name="timeout"/>; Found is false when the queue stayed empty.</summary>
    public Task<(bool Found, T? Item)> TryGetAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        TryGetAsync((TimeSpan?)timeout, cancellationToken);

    /// <summary>Items waiting in the queue now (not counting items other consumers hold unacknowledged).</summary>
    public async Task<long> GetCountAsync(CancellationToken cancellationToken = default) =>
        (await Core.StateAsync(cancellationToken).ConfigureAwait(false)).Size;

    /// <summary>Whether no item waits in the queue now.</summary>
    public async Task<bool> IsEmptyAsync(CancellationToken cancellationToken = default) =>
        await GetCountAsync(cancellationToken).ConfigureAwait(false) == 0;

    /// <summary>Whether a bounded queue is full now (its items and the slots producers reserved fill it).</summary>
    public async Task<bool> IsFullAsync(CancellationToken cancellationToken = default)
    {
        var state = await Core.StateAsync(cancellationToken).ConfigureAwait(false);
        return state.Maxsize > 0 && state.Size + state.Reserved >= state.Maxsize;
    }

    private async Task<bool> TryPutAsync(T item, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var wait = Waits.Of(timeout);
        return await Core.PutAsync(Core.Session.Payloads.Encode(item, cancellationToken), wait, cancellationToken).ConfigureAwait(false);
    }

    private async Task<(bool Found, T? Item)> TryGetAsync(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var payload = await Core.GetAsync(Waits.Of(timeout), cancellationToken).ConfigureAwait(false);
        return payload is null ? (false, default) : (true, Core.Session.Payloads.Decode<T>(payload.Memory, cancellationToken));
    }
}

/// <summary>
/// A <see cref="BridgeQueue{T}"/> whose consumers mark items done and whose producers can
/// wait for that (Python's <c>multiprocessing.JoinableQueue(name=...)</c>). Open one with
/// <see cref="BridgeSession.JoinableQueueAsync{T}(string?, long, CancellationToken)"/>.
/// </summary>
/// <typeparam name="T">The items' type.</typeparam>
public sealed class BridgeJoinableQueue<T> : BridgeQueue<T>
{
    internal BridgeJoinableQueue(QueueCore core)
        : base(core)
    {
    }

    /// <summary>Marks one item done. <see cref="InvalidOperationException"/> when called more times than items were put.</summary>
    public Task TaskDoneAsync(CancellationToken cancellationToken = default) => Core.TaskDoneAsync(cancellationToken);

    /// <summary>Waits until every item ever put has been marked done.</summary>
    public Task JoinAsync(CancellationToken cancellationToken = default) => Core.JoinAsync(Waits.Forever, cancellationToken);

    /// <summary>Waits at most <paramref name="timeout"/> (null: as long as it takes) until every item put has been marked done; false on timeout.</summary>
    public Task<bool> JoinAsync(TimeSpan? timeout, CancellationToken cancellationToken = default) =>
        Core.JoinAsync(Waits.Of(timeout), cancellationToken);
}

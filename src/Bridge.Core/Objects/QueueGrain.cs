using Bridge.Core.Objects.Runtime;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Bridge.Core.Objects;

/// <summary>
/// Queue, JoinableQueue and SimpleQueue. Items are opaque and never copied. Get leases
/// items to the session until it acknowledges them, and a session that ends returns its
/// unacknowledged items to the head of the queue in order, so client-side prefetch never
/// loses an item. A bounded queue counts leased items against its size, so prefetch
/// cannot overfill it. Blocked getters and putters are served in arrival order.
/// </summary>
[Reentrant]
internal sealed class QueueGrain : ObjectGrain, IQueueGrain
{
    private readonly ILogger<QueueGrain> _logger;
    private readonly Deque<byte[]> _items = new();
    private readonly Dictionary<string, Deque<byte[]>> _leases = new(StringComparer.Ordinal);
    private readonly LinkedList<GetWaiter> _getters = new();
    private readonly LinkedList<PutWaiter> _putters = new();
    private readonly LinkedList<JoinWaiter> _joiners = new();
    private QueueKind _kind;

    // 0: unbounded.
    private long _maxSize;

    // Leased items, including those handed to a getter that has not returned yet.
    private long _leased;
    private long _unfinishedTasks;

    public QueueGrain(IGrainFactory grains, ILogger<QueueGrain> logger)
        : base(grains, ObjectFamily.Queue, "Queue", logger)
    {
        _logger = logger;
    }

    private string Name => Membership.Address.Name;

    private bool HasSpace => _maxSize == 0 || _items.Count + _leased < _maxSize;

    public async Task<QueueDescriptor> Open(string sessionId, OpenMode mode, QueueKind kind, long maxSize)
    {
        if (mode != OpenMode.Attach)
        {
            if (!Enum.IsDefined(kind))
            {
                throw BridgeException.InvalidArgument($"unknown queue kind {(int)kind}");
            }

            maxSize = Math.Max(maxSize, 0);
            if (kind == QueueKind.Simple && maxSize != 0)
            {
                throw BridgeException.InvalidArgument("a SimpleQueue is unbounded: maxsize must be 0");
            }
        }

        await Membership.Open(
            sessionId,
            mode,
            mismatch: () => _kind != kind
                ? $"a {KindName(_kind)}, not a {KindName(kind)}"
                : _maxSize != maxSize ? $"a {KindName(_kind)} with maxsize {_maxSize}, not {maxSize}" : null,
            create: () =>
            {
                _kind = kind;
                _maxSize = maxSize;
                Log.ObjectCreated(_logger, ObjectFamily.Queue, Name, sessionId);
            });
        return new QueueDescriptor(_kind, _maxSize);
    }

    public async Task<long> Put(string sessionId, PayloadBatch items, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        WaitTimeouts.Check(timeout);
        if (items?.Items is not { } batch)
        {
            throw BridgeException.InvalidArgument("items must not be null");
        }

        await Membership.EnsureMember(sessionId);
        if (_maxSize == 0)
        {
            for (var i = 0; i < batch.Count; i++)
            {
                _items.PushBack(batch[i]);
            }

            _unfinishedTasks += batch.Count;
            ServeGetters();
            return batch.Count;
        }

        var putter = new PutWaiter(sessionId, batch);

        // Blocked putters came first: this one queues behind them.
        if (_putters.Count == 0)
        {
            Fill(putter);
        }

        if (putter.Remaining == 0 || timeout == TimeSpan.Zero)
        {
            return putter.Accepted;
        }

        var node = _putters.AddLast(putter);
        if (!await putter.WaitAsync(timeout, cancellationToken))
        {
            putter.TryWithdraw();
            _putters.Remove(node);
            cancellationToken.ThrowIfCancellationRequested();
        }

        return putter.Accepted;
    }

    public async Task<PayloadBatch> Get(string sessionId, int maxItems, long ack, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        WaitTimeouts.Check(timeout);
        if (maxItems < 1)
        {
            throw BridgeException.InvalidArgument($"max_items must be >= 1, got {maxItems}");
        }

        await Membership.EnsureMember(sessionId);
        if (ack != 0)
        {
            Acknowledge(sessionId, ack);
        }

        if (_items.Count > 0)
        {
            var batch = Take(maxItems);
            Lease(sessionId, batch);
            return batch;
        }

        if (timeout == TimeSpan.Zero)
        {
            return PayloadBatch.Empty;
        }

        var getter = new GetWaiter(sessionId, maxItems);
        var node = _getters.AddLast(getter);
        if (await getter.WaitAsync(timeout, cancellationToken))
        {
            var handed = getter.Outcome;
            if (cancellationToken.IsCancellationRequested || !Membership.IsMember(sessionId))
            {
                // The caller will never see these items (cancelled, or its session ended
                // while the reply was on its way here): they go back to the head.
                Unreserve(handed);
                cancellationToken.ThrowIfCancellationRequested();
                throw BridgeException.SessionEnded(sessionId);
            }

            Lease(sessionId, handed, reserved: true);
            return handed;
        }

        getter.TryWithdraw();
        _getters.Remove(node);
        cancellationToken.ThrowIfCancellationRequested();
        return PayloadBatch.Empty;
    }

    public async Task Ack(string sessionId, long count)
    {
        await Membership.EnsureMember(sessionId);
        Acknowledge(sessionId, count);
    }

    public async Task<QueueSnapshot> GetState(string sessionId)
    {
        await Membership.EnsureMember(sessionId);
        return new QueueSnapshot(_items.Count, _maxSize, _leased, _unfinishedTasks);
    }

    public async Task TaskDone(string sessionId, long count)
    {
        await Membership.EnsureMember(sessionId);
        RequireJoinable("task_done");
        if (count < 1)
        {
            throw BridgeException.InvalidArgument($"count must be >= 1, got {count}");
        }

        if (count > _unfinishedTasks)
        {
            throw BridgeException.Precondition("ValueError", "task_done() called too many times");
        }

        _unfinishedTasks -= count;
        if (_unfinishedTasks == 0)
        {
            foreach (var joiner in _joiners)
            {
                joiner.TryComplete(true);
            }

            _joiners.Clear();
        }
    }

    public async Task<bool> Join(string sessionId, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        WaitTimeouts.Check(timeout);
        await Membership.EnsureMember(sessionId);
        RequireJoinable("join");
        if (_unfinishedTasks == 0)
        {
            return true;
        }

        if (timeout == TimeSpan.Zero)
        {
            return false;
        }

        var joiner = new JoinWaiter(sessionId);
        var node = _joiners.AddLast(joiner);
        if (await joiner.WaitAsync(timeout, cancellationToken))
        {
            return joiner.Outcome;
        }

        joiner.TryWithdraw();
        _joiners.Remove(node);
        cancellationToken.ThrowIfCancellationRequested();
        return false;
    }

    public Task SessionEnded(string sessionId)
    {
        _getters.EndSession(sessionId);
        _putters.EndSession(sessionId);
        _joiners.EndSession(sessionId);
        if (_leases.Remove(sessionId, out var leased) && leased.Count > 0)
        {
            Log.QueueLeasesReturned(_logger, Name, leased.Count, sessionId);
            _leased -= leased.Count;
            while (leased.Count > 0)
            {
                _items.PushFront(leased.PopBack());
            }

            ServeGetters();
        }

        // A putter of this session at the head may have been holding up the others.
        PumpPutters();
        Membership.Leave(sessionId, ended: true);
        return Task.CompletedTask;
    }


    private void Acknowledge(string sessionId, long count)
    {
        if (count < 0)
        {
            throw BridgeException.InvalidArgument($"ack count must be >= 0, got {count}");
        }

        if (count == 0)
        {
            return;
        }

        var held = _leases.TryGetValue(sessionId, out var leased) ? leased.Count : 0;
        if (count > held)
        {
            throw BridgeException.InvalidArgument($"cannot acknowledge {count} items: the session holds {held} unacknowledged");
        }

        for (var i = 0L; i < count; i++)
        {
            leased!.PopFront();
        }

        _leased -= count;
        PumpPutters();
    }

    private PayloadBatch Take(int maxItems)
    {
        var items = new byte[Math.Min(maxItems, _items.Count)][];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = _items.PopFront();
        }

        return new PayloadBatch(items);
    }

    /// <summary>Records items as leased to the session, in order.</summary>
    private void Lease(string sessionId, PayloadBatch batch, bool reserved = false)
    {
        if (!_leases.TryGetValue(sessionId, out var leased))
        {
            leased = new Deque<byte[]>();
            _leases[sessionId] = leased;
        }

        var items = batch.Items;
        for (var i = 0; i < items.Count; i++)
        {
            leased.PushBack(items[i]);
        }

        if (!reserved)
        {
            _leased += items.Count;
        }
    }

    /// <summary>Items handed to a getter that will not deliver them go back to the head.</summary>
    private void Unreserve(PayloadBatch batch)
    {
        if (!Membership.IsCreated)
        {
            return;
        }

        _leased -= batch.Items.Count;
        for (var i = batch.Items.Count - 1; i >= 0; i--)
        {
            _items.PushFront(batch.Items[i]);
        }

        ServeGetters();
    }

    /// <summary>Hands waiting items to blocked getters, first come first served.</summary>
    private void ServeGetters()
    {
        while (_items.Count > 0 && _getters.First is { } node)
        {
            _getters.RemoveFirst();
            var getter = node.Value;
            if (getter.IsPending)
            {
                // Reserved against the bound from now on; the getter leases them when it
                // resumes (or returns them).
                var batch = Take(getter.MaxItems);
                _leased += batch.Items.Count;
                getter.TryComplete(batch);
            }
        }
    }

    /// <summary>Takes the putter's items while there is space.</summary>
    private void Fill(PutWaiter putter)
    {
        var appended = 0;
        while (putter.Remaining > 0 && HasSpace)
        {
            _items.PushBack(putter.TakeNext());
            appended++;
        }

        if (appended > 0)
        {
            _unfinishedTasks += appended;
            ServeGetters();
        }
    }

    /// <summary>Space freed: blocked putters, in order, fill it.</summary>
    private void PumpPutters()
    {
        while (HasSpace && _putters.First is { } node)
        {
            var putter = node.Value;
            Fill(putter);
            if (putter.Remaining > 0)
            {
                return;
            }

            _putters.RemoveFirst();
            putter.TryComplete(true);
        }
    }

    private void RequireJoinable(string method)
    {
        if (_kind != QueueKind.Joinable)
        {
            throw BridgeException.Precondition("AttributeError", $"'{KindName(_kind)}' object has no attribute '{method}'");
        }
    }

    protected override void ResetState()
    {
        _items.Clear();
        _leases.Clear();
        _getters.Clear();
        _putters.Clear();
        _joiners.Clear();
        _leased = 0;
        _unfinishedTasks = 0;
    }

    private static string KindName(QueueKind kind) => kind switch
    {
        QueueKind.Joinable => "JoinableQueue",
        QueueKind.Simple => "SimpleQueue",
        _ => "Queue",
    };

    private sealed class GetWaiter(string sessionId, int maxItems) : Waiter<PayloadBatch>(sessionId)
    {
        public int MaxItems { get; } = maxItems;
    }

    /// <summary>A blocked Put: the items not yet accepted. Outcome true: all accepted.</summary>
    private sealed class PutWaiter(string sessionId, IReadOnlyList<byte[]> items) : Waiter<bool>(sessionId)
    {
        public int Accepted { get; private set; }

        public int Remaining => items.Count - Accepted;

        public byte[] TakeNext() => items[Accepted++];
    }

    private sealed class JoinWaiter(string sessionId) : Waiter<bool>(sessionId);
}

using Bridge.Core.Objects.Runtime;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Bridge.Core.Objects;

/// <summary>
/// Queue, JoinableQueue and SimpleQueue. Items are opaque and never copied. Get leases
/// items to the session until it acknowledges them, and a session that ends returns its
/// unacknowledged items to the head of the queue in order, so client-side prefetch never
/// loses an item. A bounded queue frees an item's space when it is handed out (as the
/// stdlib's get does), so consumers prefetch from bounded queues too; items of an ended
/// session go back even past maxsize. Producers may reserve slots ahead of their puts
/// (the stdlib's put acquires a semaphore before its feeder sends), so a bounded queue
/// batches like an unbounded one. Blocked getters and putters are served in arrival order.
/// </summary>
[Reentrant]
[Orleans.Placement.PreferLocalPlacementAttribute]
internal sealed class QueueGrain : ObjectGrain, IQueueGrain
{
    private readonly ILogger<QueueGrain> _logger;
    private readonly Deque<byte[]> _items = new();
    private readonly Dictionary<string, Deque<byte[]>> _leases = new(StringComparer.Ordinal);
    private readonly LinkedList<GetWaiter> _getters = new();
    private readonly LinkedList<PutWaiter> _putters = new();
    private readonly LinkedList<JoinWaiter> _joiners = new();
    private readonly Dictionary<string, long> _reservations = new(StringComparer.Ordinal);
    private QueueKind _kind;

    // 0: unbounded.
    private long _maxSize;

    // Leased items, including those handed to a getter that has not returned yet.
    private long _leased;

    // Slots reserved by sessions (the sum of _reservations): they count against maxsize.
    private long _reserved;
    private long _unfinishedTasks;

    public QueueGrain(IGrainFactory grains, ILogger<QueueGrain> logger)
        : base(grains, ObjectFamily.Queue, "Queue", logger)
    {
        _logger = logger;
    }

    private string Name => Membership.Address.Name;

    private bool HasSpace => FreeSlots > 0;

    private long FreeSlots => _maxSize == 0 ? long.MaxValue : _maxSize - _items.Count - _reserved;

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
        var batch = ItemsOf(items);
        await Membership.EnsureMember(sessionId);
        return await Append(sessionId, batch, 0, timeout, cancellationToken);
    }

    public async Task<PutOutcome> PutClaimed(string sessionId, PayloadBatch items, SlotClaim claim, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        WaitTimeouts.Check(timeout);
        var batch = ItemsOf(items);
        if (claim is null || claim.Reserved < 0 || claim.Reserve < 0 || claim.Release < 0)
        {
            throw BridgeException.InvalidArgument("reserved, reserve and release must be >= 0");
        }

        if (claim.Reserved > batch.Count)
        {
            throw BridgeException.InvalidArgument($"reserved ({claim.Reserved}) exceeds the {batch.Count} items given");
        }

        await Membership.EnsureMember(sessionId);
        if (_maxSize == 0)
        {
            return new PutOutcome(await Append(sessionId, batch, 0, timeout, cancellationToken), 0);
        }

        var held = _reservations.GetValueOrDefault(sessionId);
        if (claim.Release > held || claim.Reserved > held - claim.Release)
        {
            throw BridgeException.InvalidArgument(
                $"cannot release {claim.Release} and fill {claim.Reserved} reserved slots: the session holds {held}");
        }

        TakeReservation(sessionId, claim.Release + claim.Reserved);
        for (var i = 0; i < claim.Reserved; i++)
        {
            _items.PushBack(batch[i]);
        }

        _unfinishedTasks += claim.Reserved;
        Settle();
        var accepted = await Append(sessionId, batch, (int)claim.Reserved, timeout, cancellationToken);
        if (accepted < batch.Count || claim.Reserve == 0 || _putters.Count > 0
            || cancellationToken.IsCancellationRequested || !Membership.IsMember(sessionId))
        {
            return new PutOutcome(accepted, 0);
        }

        // Only what is free now (none while returned leases hold the queue past maxsize),
        // and never ahead of blocked puts (checked above).
        var granted = Math.Max(0, Math.Min(claim.Reserve, FreeSlots));
        if (granted > 0)
        {
            _reservations[sessionId] = _reservations.GetValueOrDefault(sessionId) + granted;
            _reserved += granted;
        }

        return new PutOutcome(accepted, granted);
    }

    private static IReadOnlyList<byte[]> ItemsOf(PayloadBatch? items) =>
        items?.Items ?? throw BridgeException.InvalidArgument("items must not be null");

    /// <summary>Appends batch[skip..], waiting for space as a bounded queue must; returns how many of the whole batch are in.</summary>
    private async Task<long> Append(string sessionId, IReadOnlyList<byte[]> batch, int skip, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        if (_maxSize == 0)
        {
            for (var i = skip; i < batch.Count; i++)
            {
                _items.PushBack(batch[i]);
            }

            _unfinishedTasks += batch.Count - skip;
            ServeGetters();
            return batch.Count;
        }

        var putter = new PutWaiter(sessionId, batch, skip);

        // Blocked putters came first: this one queues behind them.
        if (_putters.Count == 0)
        {
            Fill(putter);
            Settle();
        }

        if (putter.Remaining == 0 || timeout == TimeSpan.Zero)
        {
            return putter.Accepted;
        }

        var node = _putters.AddLast(putter);
        if (!await putter.WaitAsync(timeout, cancellationToken))
        {
            putter.TryWithdraw();
            _putters.RemoveIfListed(node);
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

            // The items' space is free: blocked putters fill it.
            Settle();
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
        _getters.RemoveIfListed(node);
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
        return new QueueSnapshot(_items.Count, _maxSize, _leased, _unfinishedTasks, _reserved);
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
        _joiners.RemoveIfListed(node);
        cancellationToken.ThrowIfCancellationRequested();
        return false;
    }

    protected override bool Holds(string sessionId) =>
        (_leases.TryGetValue(sessionId, out var leased) && leased.Count > 0)
        || _reservations.ContainsKey(sessionId)
        || _getters.HasPending(sessionId)
        || _putters.HasPending(sessionId)
        || _joiners.HasPending(sessionId);

    public override Task SessionEnded(string sessionId)
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
        }

        if (_reservations.Remove(sessionId, out var reserved))
        {
            _reserved -= reserved;
        }

        // A putter of this session at the head may have been holding up the others.
        Settle();
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
    }

    private void TakeReservation(string sessionId, long count)
    {
        if (count == 0)
        {
            return;
        }

        var left = _reservations[sessionId] - count;
        if (left == 0)
        {
            _reservations.Remove(sessionId);
        }
        else
        {
            _reservations[sessionId] = left;
        }

        _reserved -= count;
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

        Settle();
    }

    /// <summary>
    /// Items go to blocked getters and freed space to blocked putters until neither moves:
    /// in a bounded queue each frees the other.
    /// </summary>
    private void Settle()
    {
        while (ServeGetters() | PumpPutters())
        {
        }
    }

    /// <summary>Hands waiting items to blocked getters, first come first served; true if any moved.</summary>
    private bool ServeGetters()
    {
        var moved = false;
        while (_items.Count > 0 && _getters.First is { } node)
        {
            _getters.RemoveFirst();
            var getter = node.Value;
            if (getter.IsPending)
            {
                // Leased from now on; the getter records the lease when it resumes (or
                // returns the items).
                var batch = Take(getter.MaxItems);
                _leased += batch.Items.Count;
                getter.TryComplete(batch);
                moved = true;
            }
        }

        // Every change of the items ends here (directly or through Settle): the one place
        // that publishes the depth for metrics.
        if (CatalogEntry is { } entry)
        {
            entry.Depth = _items.Count;
        }

        return moved;
    }

    /// <summary>Appends the putter's items while there is space; true if any went in.</summary>
    private bool Fill(PutWaiter putter)
    {
        var appended = 0;
        while (putter.Remaining > 0 && HasSpace)
        {
            _items.PushBack(putter.TakeNext());
            appended++;
        }

        _unfinishedTasks += appended;
        return appended > 0;
    }

    /// <summary>Space freed: blocked putters, in order, fill it; true if any item went in.</summary>
    private bool PumpPutters()
    {
        var moved = false;
        while (HasSpace && _putters.First is { } node)
        {
            var putter = node.Value;
            moved |= Fill(putter);
            if (putter.Remaining > 0)
            {
                break;
            }

            _putters.RemoveFirst();
            putter.TryComplete(true);
        }

        return moved;
    }

    private void RequireJoinable(string method)
    {
        if (_kind != QueueKind.Joinable)
        {
            throw BridgeException.Precondition("AttributeError", $"'{KindName(_kind)}' object has no attribute '{method}'");
        }
    }

    private protected override ObjectDetail Inspect(out int waiters)
    {
        var getters = _getters.Pending();
        var putters = _putters.Pending();
        var joiners = _joiners.Pending();
        waiters = getters + putters + joiners;
        return new QueueDetail(_kind, _items.Count, _maxSize, _leased, _reserved, _unfinishedTasks, getters, putters, joiners);
    }

    protected override void ResetState()
    {
        _items.Clear();
        _leases.Clear();
        _getters.EndAll(Membership.NotFound);
        _putters.EndAll(Membership.NotFound);
        _joiners.EndAll(Membership.NotFound);
        _reservations.Clear();
        _leased = 0;
        _reserved = 0;
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
    private sealed class PutWaiter(string sessionId, IReadOnlyList<byte[]> items, int accepted) : Waiter<bool>(sessionId)
    {
        public int Accepted { get; private set; } = accepted;

        public int Remaining => items.Count - Accepted;

        public byte[] TakeNext() => items[Accepted++];
    }

    private sealed class JoinWaiter(string sessionId) : Waiter<bool>(sessionId);
}

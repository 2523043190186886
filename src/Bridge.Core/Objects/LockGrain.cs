using System.Diagnostics;
using Bridge.Core.Objects.Runtime;
using Bridge.Core.Sessions;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Bridge.Core.Objects;

/// <summary>
/// Lock, RLock, Semaphore and BoundedSemaphore with multiprocessing's semantics. Waiters
/// queue first come, first served and a release hands the unit straight to the first
/// waiter, so a newcomer can never overtake them. What a session holds is released when it
/// ends, so a dead client cannot keep others waiting forever.
/// <para>
/// Lock caching (Lock and RLock, for callers that opt in): an uncontended grant may be
/// <em>cached</em> by the acquiring session. The client then acquires and releases locally
/// while the host keeps the lock held by that session. When anyone else acquires it (or
/// releases it), the grain posts one LockRecall for the grant's token to the caching
/// session, which answers with <see cref="Surrender"/>: free (the lock goes to the first
/// waiter, FIFO) or held by one of its threads (it becomes a plain hold, released later by
/// an ordinary Release). Until then the lock counts as held. A caching session that ends
/// loses the lock like any holder. Tokens only grow, so a late or repeated surrender of an
/// old grant changes nothing.
/// </para>
/// </summary>
[Reentrant]
[Orleans.Placement.PreferLocalPlacementAttribute]
internal sealed class LockGrain : ObjectGrain, ILockGrain
{
    private readonly IGrainFactory _grains;
    private readonly ILogger<LockGrain> _logger;
    private readonly LinkedList<LockWaiter> _waiters = new();
    private readonly LockCachePolicy _cachePolicy = new();

    // Semaphores: units each session holds (its acquires minus releases), and since when,
    // so a release by a session holding none repays the longest holder.
    private readonly Dictionary<string, Holding> _holdings = new(StringComparer.Ordinal);
    private long _holdingSequence;

    private LockKind _kind;
    private long _initialValue;

    // Semaphores: units free. Lock and RLock: 1 free, 0 held.
    private long _value;

    // Lock: the last acquirer (any thread may release a Lock). RLock: the owner.
    private LockOwner? _holder;

    // RLock recursion depth.
    private int _depth;

    // Lock caching: the session caching the lock (then _value == 0 and _holder is that
    // session), its grant's token, whether the recall went out, and who waits for the
    // cache to end (a release or non-blocking acquire by another session).
    private string? _cachedBy;
    private long _cacheToken;
    private long _lastToken;
    private bool _recallSent;
    private TaskCompletionSource? _cacheEnded;

    public LockGrain(IGrainFactory grains, ILogger<LockGrain> logger)
        : base(grains, ObjectFamily.Lock, "Lock/RLock/Semaphore", logger)
    {
        _grains = grains;
        _logger = logger;
    }

    private string Name => Membership.Address.Name;

    private bool IsSemaphore => _kind is LockKind.Semaphore or LockKind.BoundedSemaphore;

    public async Task<LockDescriptor> Open(string sessionId, OpenMode mode, LockKind kind, long initialValue)
    {
        if (mode != OpenMode.Attach)
        {
            if (!Enum.IsDefined(kind))
            {
                throw BridgeException.InvalidArgument($"unknown lock kind {(int)kind}");
            }

            if (kind is LockKind.Semaphore or LockKind.BoundedSemaphore)
            {
                if (initialValue < 0)
                {
                    throw BridgeException.InvalidArgument("semaphore initial value must be >= 0");
                }
            }
            else
            {
                // Locks start released; a stray value must not make CreateOrAttach differ.
                initialValue = 1;
            }
        }

        await Membership.Open(
            sessionId,
            mode,
            mismatch: () => _kind != kind
                ? $"a {_kind}, not a {kind}"
                : _initialValue != initialValue ? $"a {_kind} with initial value {_initialValue}, not {initialValue}" : null,
            create: () =>
            {
                _kind = kind;
                _initialValue = initialValue;
                _value = initialValue;

                // Tokens keep growing across re-creations of the name within this host.
                _lastToken = Math.Max(_lastToken, Stopwatch.GetTimestamp());
                Log.ObjectCreated(_logger, ObjectFamily.Lock, Name, sessionId);
            });
        return new LockDescriptor(_kind, _initialValue);
    }

    public async Task<bool> Acquire(string sessionId, string owner, int count, TimeSpan? timeout, CancellationToken cancellationToken) =>
        (await AcquireGrant(sessionId, owner, count, timeout, cacheable: false, cancellationToken)).Acquired;

    public async Task<LockGrant> AcquireGrant(
        string sessionId, string owner, int count, TimeSpan? timeout, bool cacheable, CancellationToken cancellationToken)
    {
        WaitTimeouts.Check(timeout);
        if (count < 0)
        {
            throw BridgeException.InvalidArgument($"count must be >= 0, got {count}");
        }

        await Membership.EnsureMember(sessionId);
        var levels = Math.Max(count, 1);
        if (levels > 1 && _kind != LockKind.RLock)
        {
            throw BridgeException.InvalidArgument($"only an RLock can be acquired {levels} levels at once");
        }

        // Only a lock taken from free is cached: an RLock re-entered by its plain owner
        // stays a plain hold, its depth counted here.
        cacheable &= !IsSemaphore;
        var fromFree = _value == 1;
        var me = new LockOwner(sessionId, owner);
        if (TryTake(me, levels))
        {
            return cacheable && fromFree && MayCache() ? new LockGrant(true, CacheFor(sessionId)) : LockGrant.Plain;
        }

        if (timeout == TimeSpan.Zero && _cachedBy is null)
        {
            return LockGrant.NotAcquired;
        }

        var waiter = new LockWaiter(me, levels, cacheable);
        var node = _waiters.AddLast(waiter);
        Recall();
        bool granted;
        if (timeout == TimeSpan.Zero)
        {
            // Cached elsewhere, so possibly free: "do not wait" waits only for the caching
            // client to say (the recall), never for a holder to release.
            try
            {
                await WhenCacheEnds(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // Decided below, like any wait.
            }

            granted = await waiter.WaitAsync(TimeSpan.Zero, cancellationToken);
        }
        else
        {
            granted = await waiter.WaitAsync(timeout, cancellationToken);
        }

        if (granted)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                // The caller is gone and will never learn it got the lock: give it back.
                GiveBack(waiter);
                cancellationToken.ThrowIfCancellationRequested();
            }

            return new LockGrant(true, waiter.CacheToken);
        }

        waiter.TryWithdraw();
        _waiters.RemoveIfListed(node);
        cancellationToken.ThrowIfCancellationRequested();
        return LockGrant.NotAcquired;
    }

    public async Task<bool> Surrender(string sessionId, long cacheToken, bool held, string owner, int count)
    {
        await Membership.EnsureMember(sessionId);
        if (cacheToken == 0 || _cachedBy != sessionId || _cacheToken != cacheToken)
        {
            return false;
        }

        if (held)
        {
            EndCache();
            _holder = new LockOwner(sessionId, owner);
            _depth = Math.Max(count, 1);
        }
        else
        {
            ReleaseLock();
        }

        return true;
    }

    public async Task Release(string sessionId, string owner, CancellationToken cancellationToken = default)
    {
        await Membership.EnsureMember(sessionId);
        while (_cachedBy is { } cachedBy)
        {
            if (cachedBy == sessionId)
            {
                // The caching client released through the host instead of locally: it has
                // given its cache up (it lost track of it), and the lock with it.
                ReleaseLock();
                return;
            }

            if (_kind == LockKind.RLock)
            {
                break; // not the owner, whatever the caching client says
            }

            // Released from another session: stdlib semantics need to know whether the
            // lock is really held, which only the caching client can say.
            Recall();
            await WhenCacheEnds(cancellationToken);
            await Membership.EnsureMember(sessionId);
        }

        switch (_kind)
        {
            case LockKind.Lock:
                if (_value == 1)
                {
                    throw ReleasedTooManyTimes();
                }

                ReleaseLock();
                break;
            case LockKind.RLock:
                if (_holder != new LockOwner(sessionId, owner))
                {
                    throw BridgeException.Precondition("AssertionError", "attempt to release recursive lock not owned by thread");
                }

                if (--_depth == 0)
                {
                    ReleaseLock();
                }

                break;
            default:
                if (_kind == LockKind.BoundedSemaphore && _value >= _initialValue)
                {
                    throw ReleasedTooManyTimes();
                }

                RepayHolding(sessionId);
                GiveUnit();
                break;
        }
    }

    public async Task<int> ReleaseAll(string sessionId, string owner)
    {
        await Membership.EnsureMember(sessionId);
        if (IsSemaphore)
        {
            throw BridgeException.InvalidArgument($"'{Name}' is a {_kind}: a condition needs a Lock or RLock");
        }

        if (_value == 1 || _cachedBy is not null || _holder != new LockOwner(sessionId, owner))
        {
            throw BridgeException.Precondition("AssertionError", "cannot release un-acquired lock");
        }

        var levels = _kind == LockKind.RLock ? _depth : 1;
        ReleaseLock();
        return levels;
    }

    public async Task<LockSnapshot> GetState(string sessionId, string owner)
    {
        await Membership.EnsureMember(sessionId);
        var held = _value == 0;
        if (_cachedBy is not null)
        {
            return new LockSnapshot(0, false, 1, Cached: true);
        }

        return _kind switch
        {
            LockKind.Lock => new LockSnapshot(_value, held && _holder == new LockOwner(sessionId, owner), held ? 1 : 0),
            LockKind.RLock => new LockSnapshot(_value, _holder == new LockOwner(sessionId, owner), _depth),

            // Semaphores have no owning thread.
            _ => new LockSnapshot(_value, false, 0),
        };
    }

    protected override bool Holds(string sessionId) =>
        _holdings.ContainsKey(sessionId)
        || (_value == 0 && _holder?.SessionId == sessionId && !IsSemaphore)
        || _waiters.HasPending(sessionId);

    public override Task SessionEnded(string sessionId)
    {
        if (Membership.IsCreated)
        {
            _waiters.EndSession(sessionId);

            if (IsSemaphore)
            {
                if (_holdings.Remove(sessionId, out var holding))
                {
                    Log.LockReleasedForDeadSession(_logger, Name, holding.Units, sessionId);
                    for (var i = 0L; i < holding.Units; i++)
                    {
                        GiveUnit();
                    }
                }
            }
            else if (_value == 0 && _holder?.SessionId == sessionId)
            {
                Log.LockReleasedForDeadSession(_logger, Name, 1, sessionId);
                ReleaseLock();
            }
        }

        Membership.Leave(sessionId, ended: true);
        return Task.CompletedTask;
    }


    private bool TryTake(LockOwner me, int levels)
    {
        switch (_kind)
        {
            case LockKind.Lock or LockKind.RLock when _cachedBy is not null:
                return false;
            case LockKind.Lock when _value == 1:
                _value = 0;
                _holder = me;
                return true;
            case LockKind.RLock when _value == 1 || _holder == me:
                _value = 0;
                _holder = me;
                _depth += levels;
                return true;
            case LockKind.Semaphore or LockKind.BoundedSemaphore when _value > 0:
                _value--;
                AddHolding(me.SessionId);
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// Lock and RLock: the next waiter gets it (cached when it asked and nobody else waits
    /// behind it), or it becomes free. Ends any cached grant.
    /// </summary>
    private void ReleaseLock()
    {
        EndCache();
        _holder = null;
        _depth = 0;
        while (_waiters.First is { } node)
        {
            _waiters.RemoveFirst();
            var waiter = node.Value;
            if (waiter.TryComplete(true))
            {
                _holder = waiter.Owner;
                _depth = waiter.Levels;
                if (waiter.Cacheable && MayCache())
                {
                    waiter.CacheToken = CacheFor(waiter.SessionId);
                }

                return;
            }
        }

        _value = 1;
    }

    /// <summary>Nobody waits (they would recall it at once) and the lock is not contended lately.</summary>
    private bool MayCache() => !AnyPendingWaiter() && _cachePolicy.MayCache(Stopwatch.GetTimestamp());

    private bool AnyPendingWaiter()
    {
        foreach (var waiter in _waiters)
        {
            if (waiter.IsPending)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Marks the grant just made to <paramref name="sessionId"/> as cached; returns its token.</summary>
    private long CacheFor(string sessionId)
    {
        _cachedBy = sessionId;
        _cacheToken = ++_lastToken;
        _recallSent = false;
        _cachePolicy.Granted(Stopwatch.GetTimestamp());
        return _cacheToken;
    }

    /// <summary>Asks the caching session (once per grant) to surrender the lock.</summary>
    private void Recall()
    {
        if (_cachedBy is { } sessionId && !_recallSent)
        {
            _recallSent = true;
            _cachePolicy.Recalled(Stopwatch.GetTimestamp());
            _ = _grains.GetGrain<ISessionGrain>(sessionId).Post(new LockRecall(Name, _cacheToken));
        }
    }

    /// <summary>Completes when no cached grant stands (surrendered, or its session ended).</summary>
    private Task WhenCacheEnds(CancellationToken cancellationToken)
    {
        if (_cachedBy is null)
        {
            return Task.CompletedTask;
        }

        _cacheEnded ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return _cacheEnded.Task.WaitAsync(cancellationToken);
    }

    private void EndCache()
    {
        _cachedBy = null;
        _cacheToken = 0;
        _recallSent = false;
        var ended = _cacheEnded;
        _cacheEnded = null;
        ended?.TrySetResult();
    }

    /// <summary>Semaphores: the next waiter gets the unit, or it is added to the free ones.</summary>
    private void GiveUnit()
    {
        while (_waiters.First is { } node)
        {
            _waiters.RemoveFirst();
            if (node.Value.TryComplete(true))
            {
                AddHolding(node.Value.SessionId);
                return;
            }
        }

        // A dead session's units must not lift a BoundedSemaphore over its bound (they may
        // have been repaid by a release of another session already).
        if (_kind != LockKind.BoundedSemaphore || _value < _initialValue)
        {
            _value++;
        }
    }

    /// <summary>Undoes the grant a cancelled waiter received, if it still stands.</summary>
    private void GiveBack(LockWaiter waiter)
    {
        switch (_kind)
        {
            case LockKind.Lock when _value == 0 && _holder == waiter.Owner:
                ReleaseLock();
                break;
            case LockKind.RLock when _holder == waiter.Owner:
                _depth -= waiter.Levels;
                if (_depth <= 0)
                {
                    ReleaseLock();
                }

                break;
            case LockKind.Semaphore or LockKind.BoundedSemaphore
                when _holdings.TryGetValue(waiter.SessionId, out var holding) && holding.Units > 0:
                RepayHolding(waiter.SessionId);
                GiveUnit();
                break;
        }
    }

    private void AddHolding(string sessionId)
    {
        if (_holdings.TryGetValue(sessionId, out var holding))
        {
            holding.Units++;
        }
        else
        {
            _holdings[sessionId] = new Holding(++_holdingSequence) { Units = 1 };
        }
    }

    private void RepayHolding(string sessionId)
    {
        if (!_holdings.TryGetValue(sessionId, out var holding))
        {
            // Released by a session that holds none (a producer signalling a consumer):
            // it repays the longest holder, whose units are the likeliest to be in use.
            Holding? longest = null;
            foreach (var (session, candidate) in _holdings)
            {
                if (longest is null || candidate.Since < longest.Since)
                {
                    longest = candidate;
                    sessionId = session;
                }
            }

            if (longest is null)
            {
                return;
            }

            holding = longest;
        }

        if (--holding.Units == 0)
        {
            _holdings.Remove(sessionId);
        }
    }

    private protected override ObjectDetail Inspect(out int waiters)
    {
        waiters = _waiters.Pending();
        IReadOnlyList<string> holders = IsSemaphore
            ? [.. _holdings.Keys]
            : _value == 0 && _holder is { } holder ? [holder.SessionId] : [];
        return new LockDetail(_kind, _value, _initialValue, holders, _kind == LockKind.RLock ? _depth : 0, _cachedBy is not null);
    }

    protected override void ResetState()
    {
        EndCache();
        _waiters.EndAll(Membership.NotFound);
        _holdings.Clear();
        _holder = null;
        _depth = 0;
        _value = 0;
    }

    private static BridgeException ReleasedTooManyTimes() =>
        BridgeException.Precondition("ValueError", "semaphore or lock released too many times");

    private readonly record struct LockOwner(string SessionId, string Owner);

    private sealed class Holding(long since)
    {
        public long Since { get; } = since;

        public long Units { get; set; }
    }

    private sealed class LockWaiter(LockOwner owner, int levels, bool cacheable) : Waiter<bool>(owner.SessionId)
    {
        public LockOwner Owner { get; } = owner;

        public int Levels { get; } = levels;

        public bool Cacheable { get; } = cacheable;

        /// <summary>Set with the grant when it is cached.</summary>
        public long CacheToken { get; set; }
    }
}

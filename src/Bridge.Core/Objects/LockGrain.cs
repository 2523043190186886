using Bridge.Core.Objects.Runtime;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Bridge.Core.Objects;

/// <summary>
/// Lock, RLock, Semaphore and BoundedSemaphore with multiprocessing's semantics. Waiters
/// queue first come, first served and a release hands the unit straight to the first
/// waiter, so a newcomer can never overtake them. What a session holds is released when it
/// ends, so a dead client cannot keep others waiting forever.
/// </summary>
[Reentrant]
internal sealed class LockGrain : Grain, ILockGrain
{
    private readonly ObjectMembership _membership;
    private readonly ILogger<LockGrain> _logger;
    private readonly LinkedList<LockWaiter> _waiters = new();

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

    public LockGrain(IGrainFactory grains, ILogger<LockGrain> logger)
    {
        _logger = logger;
        _membership = new ObjectMembership(
            grains,
            new ObjectAddress(ObjectFamily.Lock, this.GetPrimaryKeyString()),
            "Lock/RLock/Semaphore",
            onCreated: () => DelayDeactivation(Timeout.InfiniteTimeSpan),
            onFreed: Free);
    }

    private string Name => _membership.Address.Name;

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

        await _membership.Open(
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
                Log.ObjectCreated(_logger, ObjectFamily.Lock, Name, sessionId);
            });
        return new LockDescriptor(_kind, _initialValue);
    }

    public async Task<bool> Acquire(string sessionId, string owner, int count, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        WaitTimeouts.Check(timeout);
        if (count < 0)
        {
            throw BridgeException.InvalidArgument($"count must be >= 0, got {count}");
        }

        await _membership.EnsureMember(sessionId);
        var levels = Math.Max(count, 1);
        if (levels > 1 && _kind != LockKind.RLock)
        {
            throw BridgeException.InvalidArgument($"only an RLock can be acquired {levels} levels at once");
        }

        var me = new LockOwner(sessionId, owner);
        if (TryTake(me, levels))
        {
            return true;
        }

        if (timeout == TimeSpan.Zero)
        {
            return false;
        }

        var waiter = new LockWaiter(me, levels);
        var node = _waiters.AddLast(waiter);
        if (await waiter.WaitAsync(timeout, cancellationToken))
        {
            if (waiter.Outcome && cancellationToken.IsCancellationRequested)
            {
                // The caller is gone and will never learn it got the lock: give it back.
                GiveBack(waiter);
                cancellationToken.ThrowIfCancellationRequested();
            }

            return waiter.Outcome;
        }

        waiter.TryWithdraw();
        _waiters.Remove(node);
        cancellationToken.ThrowIfCancellationRequested();
        return false;
    }

    public async Task Release(string sessionId, string owner)
    {
        await _membership.EnsureMember(sessionId);
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
        await _membership.EnsureMember(sessionId);
        if (IsSemaphore)
        {
            throw BridgeException.InvalidArgument($"'{Name}' is a {_kind}: a condition needs a Lock or RLock");
        }

        if (_value == 1 || _holder != new LockOwner(sessionId, owner))
        {
            throw BridgeException.Precondition("AssertionError", "cannot release un-acquired lock");
        }

        var levels = _kind == LockKind.RLock ? _depth : 1;
        ReleaseLock();
        return levels;
    }

    public async Task<LockSnapshot> GetState(string sessionId, string owner)
    {
        await _membership.EnsureMember(sessionId);
        var held = _value == 0;
        return _kind switch
        {
            LockKind.Lock => new LockSnapshot(_value, held && _holder == new LockOwner(sessionId, owner), held ? 1 : 0),
            LockKind.RLock => new LockSnapshot(_value, _holder == new LockOwner(sessionId, owner), _depth),

            // Semaphores have no owning thread.
            _ => new LockSnapshot(_value, false, 0),
        };
    }

    public Task SessionEnded(string sessionId)
    {
        if (_membership.IsCreated)
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

        _membership.Leave(sessionId, ended: true);
        return Task.CompletedTask;
    }

    public Task Detach(string sessionId)
    {
        _membership.Leave(sessionId, ended: false);
        return Task.CompletedTask;
    }

    private bool TryTake(LockOwner me, int levels)
    {
        switch (_kind)
        {
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

    /// <summary>Lock and RLock: the next waiter gets it, or it becomes free.</summary>
    private void ReleaseLock()
    {
        _holder = null;
        _depth = 0;
        while (_waiters.First is { } node)
        {
            _waiters.RemoveFirst();
            if (node.Value.TryComplete(true))
            {
                _holder = node.Value.Owner;
                _depth = node.Value.Levels;
                return;
            }
        }

        _value = 1;
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

    private void Free()
    {
        _waiters.Clear();
        _holdings.Clear();
        _holder = null;
        _depth = 0;
        _value = 0;
        Log.ObjectFreed(_logger, ObjectFamily.Lock, Name);
        DelayDeactivation(TimeSpan.Zero);
        if (!_membership.IsAttaching)
        {
            this.DeactivateOnIdle();
        }
    }

    private static BridgeException ReleasedTooManyTimes() =>
        BridgeException.Precondition("ValueError", "semaphore or lock released too many times");

    private readonly record struct LockOwner(string SessionId, string Owner);

    private sealed class Holding(long since)
    {
        public long Since { get; } = since;

        public long Units { get; set; }
    }

    private sealed class LockWaiter(LockOwner owner, int levels) : Waiter<bool>(owner.SessionId)
    {
        public LockOwner Owner { get; } = owner;

        public int Levels { get; } = levels;
    }
}

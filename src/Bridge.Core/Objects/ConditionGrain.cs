using Bridge.Core.Objects.Runtime;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Bridge.Core.Objects;

/// <summary>
/// multiprocessing.Condition over a Lock or RLock object of the lock family. Wait releases
/// the lock and waits for a notify; re-acquiring is the caller's job
/// (ILockGrain.Acquire(count = SavedCount)), so this grain never blocks on the lock.
/// </summary>
[Reentrant]
[Orleans.Placement.PreferLocalPlacementAttribute]
internal sealed class ConditionGrain : ObjectGrain, IConditionGrain
{
    private readonly IGrainFactory _grains;
    private readonly ILogger<ConditionGrain> _logger;
    private readonly LinkedList<ConditionWaiter> _waiters = new();
    private string _lockName = "";
    private LockKind _lockKind;

    public ConditionGrain(IGrainFactory grains, ILogger<ConditionGrain> logger)
        : base(grains, ObjectFamily.Condition, "Condition", logger)
    {
        _grains = grains;
        _logger = logger;
    }

    private ILockGrain Lock => _grains.GetGrain<ILockGrain>(_lockName);

    public async Task<ConditionDescriptor> Open(string sessionId, OpenMode mode, string lockName, LockKind lockKind)
    {
        if (mode != OpenMode.Attach)
        {
            if (lockKind is not (LockKind.Lock or LockKind.RLock))
            {
                throw BridgeException.InvalidArgument($"a condition needs a Lock or RLock, not a {lockKind}");
            }

            ObjectNames.Validate(lockName, creating: false);

            // The lock must exist and be what the caller says (NotFound propagates).
            var actual = await _grains.GetGrain<ILockGrain>(lockName).Open(sessionId, OpenMode.Attach, lockKind, 0);
            if (actual.Kind != lockKind)
            {
                throw BridgeException.InvalidArgument($"lock '{lockName}' is a {actual.Kind}, not a {lockKind}");
            }
        }

        await Membership.Open(
            sessionId,
            mode,
            mismatch: () => _lockName != lockName || _lockKind != lockKind
                ? $"a Condition over {_lockKind} '{_lockName}', not {lockKind} '{lockName}'"
                : null,
            create: () =>
            {
                _lockName = lockName;
                _lockKind = lockKind;
                Log.ObjectCreated(_logger, ObjectFamily.Condition, Membership.Address.Name, sessionId);
            });
        return new ConditionDescriptor(_lockName, _lockKind);
    }

    public async Task<ConditionWaitOutcome> Wait(string sessionId, string owner, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        WaitTimeouts.Check(timeout);
        await Membership.EnsureMember(sessionId);
        var lockGrain = Lock;
        var state = await lockGrain.GetState(sessionId, owner);
        if (!state.OwnedByCaller)
        {
            throw BridgeException.Precondition("AssertionError", "must acquire() condition before using wait()");
        }

        // The session may have ended (or the condition been freed) during that call; a
        // waiter enrolled now would never hear of it.
        if (!Membership.IsCreated)
        {
            throw Membership.NotFound();
        }

        if (!Membership.IsMember(sessionId))
        {
            throw BridgeException.SessionEnded(sessionId);
        }

        // Enrolled before the lock is released, so a notify right after the release
        // (by whoever takes the lock next) cannot be missed.
        var waiter = new ConditionWaiter(sessionId);
        var node = _waiters.AddLast(waiter);
        int saved;
        try
        {
            saved = await lockGrain.ReleaseAll(sessionId, owner);
        }
        catch
        {
            waiter.TryWithdraw();
            _waiters.Remove(node);
            throw;
        }

        if (await waiter.WaitAsync(timeout, cancellationToken))
        {
            return new ConditionWaitOutcome(waiter.Outcome, saved);
        }

        waiter.TryWithdraw();
        _waiters.Remove(node);
        cancellationToken.ThrowIfCancellationRequested();
        return new ConditionWaitOutcome(false, saved);
    }

    public async Task<int> Notify(string sessionId, string owner, int n)
    {
        await Membership.EnsureMember(sessionId);
        var state = await Lock.GetState(sessionId, owner);
        if (!state.OwnedByCaller)
        {
            throw BridgeException.Precondition("AssertionError", "lock is not owned");
        }

        var woken = 0;
        while ((n <= 0 || woken < n) && _waiters.First is { } first)
        {
            _waiters.RemoveFirst();
            if (first.Value.TryComplete(true))
            {
                woken++;
            }
        }

        return woken;
    }

    public Task SessionEnded(string sessionId)
    {
        _waiters.EndSession(sessionId);
        Membership.Leave(sessionId, ended: true);
        return Task.CompletedTask;
    }


    protected override void ResetState()
    {
        _waiters.Clear();
    }

    private sealed class ConditionWaiter(string sessionId) : Waiter<bool>(sessionId);
}

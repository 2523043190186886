using Bridge.Core.Objects.Runtime;
using Bridge.Core.Sessions;
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
        lockName ??= "";
        if (mode == OpenMode.Attach)
        {
            await Membership.Open(sessionId, mode, mismatch: static () => null, create: static () => { });
        }
        else if (lockName.Length == 0)
        {
            await OpenWithOwnLock(sessionId, mode);
        }
        else
        {
            await OpenOver(sessionId, mode, lockName, lockKind);
        }

        // Every session that opens the condition references its lock, so the lock lives as
        // long as the condition has users: not only while its creator does, when the others
        // have not touched the lock yet.
        var descriptor = new ConditionDescriptor(_lockName, _lockKind);
        await _grains.GetGrain<ILockGrain>(descriptor.LockName).Open(sessionId, OpenMode.Attach, descriptor.LockKind, 0);
        return descriptor;
    }

    /// <summary>Over the named lock, which must be the existing condition's.</summary>
    private async Task OpenOver(string sessionId, OpenMode mode, string lockName, LockKind lockKind)
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

        await Membership.Open(
            sessionId,
            mode,
            mismatch: () => _lockName != lockName || _lockKind != lockKind
                ? $"a Condition over {_lockKind} '{_lockName}', not {lockKind} '{lockName}'"
                : null,
            create: () => Created(sessionId, lockName, lockKind));
    }

    /// <summary>
    /// With no lock named (multiprocessing.Condition()): the condition's own new RLock when
    /// this call creates it; an existing condition is attached to whatever its lock, since
    /// every opener without a lock would otherwise bring a different one and never match.
    /// </summary>
    private async Task OpenWithOwnLock(string sessionId, OpenMode mode)
    {
        while (true)
        {
            // Made before the condition exists, so that no opener is ever told of a lock not
            // made yet; dropped when another call created the condition meanwhile.
            var made = Membership.IsCreated ? null : await NewOwnLock(sessionId);
            var createdHere = false;
            try
            {
                await Membership.Open(
                    sessionId,
                    mode,
                    mismatch: static () => null,
                    create: () =>
                    {
                        if (made is null)
                        {
                            throw new OwnLockMissingException();
                        }

                        Created(sessionId, made, LockKind.RLock);
                        createdHere = true;
                    });
            }
            catch (OwnLockMissingException)
            {
                // The condition was freed while this call attached: make a lock this time.
                continue;
            }
            catch when (made is not null)
            {
                await DropOwnLock(sessionId, made);
                throw;
            }

            if (made is not null && !createdHere)
            {
                await DropOwnLock(sessionId, made);
            }

            return;
        }
    }

    private async Task<string> NewOwnLock(string sessionId)
    {
        var name = ObjectNames.NewAnonymous();
        await _grains.GetGrain<ILockGrain>(name).Open(sessionId, OpenMode.Create, LockKind.RLock, 0);
        return name;
    }

    /// <summary>Frees an unused own lock (only this session references it), as a Detach would.</summary>
    private async Task DropOwnLock(string sessionId, string lockName)
    {
        if (await _grains.GetGrain<ILockGrain>(lockName).Detach(sessionId))
        {
            await _grains.GetGrain<ISessionGrain>(sessionId).Detached(new ObjectAddress(ObjectFamily.Lock, lockName));
        }
    }

    private void Created(string sessionId, string lockName, LockKind lockKind)
    {
        _lockName = lockName;
        _lockKind = lockKind;
        Log.ObjectCreated(_logger, ObjectFamily.Condition, Membership.Address.Name, sessionId);
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
            _waiters.RemoveIfListed(node);
            throw;
        }

        if (await waiter.WaitAsync(timeout, cancellationToken))
        {
            return new ConditionWaitOutcome(waiter.Outcome, saved);
        }

        waiter.TryWithdraw();
        _waiters.RemoveIfListed(node);
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

    protected override bool Holds(string sessionId) => _waiters.HasPending(sessionId);

    public override Task SessionEnded(string sessionId)
    {
        _waiters.EndSession(sessionId);
        Membership.Leave(sessionId, ended: true);
        return Task.CompletedTask;
    }


    private protected override ObjectDetail Inspect(out int waiters)
    {
        waiters = _waiters.Pending();
        return new ConditionDetail(_lockName, _lockKind);
    }

    protected override void ResetState()
    {
        _waiters.EndAll(Membership.NotFound);
    }

    private sealed class ConditionWaiter(string sessionId) : Waiter<bool>(sessionId);

    /// <summary>An own-lock open found the condition gone after deciding it need not make a lock.</summary>
    private sealed class OwnLockMissingException() : Exception("the condition was freed while it was being opened");
}

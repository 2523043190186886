using Bridge.Contracts.V1;

namespace Bridge.Client;

/// <summary>
/// A condition variable living in the host over a <see cref="BridgeLock"/> (Python's
/// <c>multiprocessing.Condition(lock, name=...)</c>). Open one with
/// <see cref="BridgeSession.ConditionAsync(string?, BridgeLock?, CancellationToken)"/>.
/// Wait and notify while holding <see cref="Lock"/> (acquired through this condition or that
/// lock handle: ownership is the handle's).
/// </summary>
public sealed class BridgeCondition
{
    private readonly BridgeSession _session;

    internal BridgeCondition(BridgeSession session, string name, BridgeLock conditionLock)
    {
        _session = session;
        Name = name;
        Lock = conditionLock;
    }

    /// <summary>The host's name of the condition.</summary>
    public string Name { get; }

    /// <summary>The condition's lock (an RLock unless the condition was created over a Lock).</summary>
    public BridgeLock Lock { get; }

    /// <summary>Acquires <see cref="Lock"/>; dispose the hold to release it.</summary>
    public Task<BridgeLockHold> AcquireAsync(CancellationToken cancellationToken = default) => Lock.AcquireAsync(cancellationToken);

    /// <summary>Acquires <see cref="Lock"/> within <paramref name="timeout"/> (<see cref="TimeoutException"/> otherwise).</summary>
    public Task<BridgeLockHold> AcquireAsync(TimeSpan? timeout, CancellationToken cancellationToken = default) => Lock.AcquireAsync(timeout, cancellationToken);

    /// <summary>Waits for a notify (see <see cref="WaitAsync(TimeSpan?, CancellationToken)"/>), as long as it takes.</summary>
    public Task WaitAsync(CancellationToken cancellationToken = default) => WaitAsync(null, cancellationToken);

    /// <summary>
    /// Releases the lock (every level), waits for a notify at most <paramref name="timeout"/>
    /// (null: as long as it takes), then re-acquires the lock, waiting as long as that
    /// takes (not cancellable: the method returns or throws with the lock held, as
    /// <c>Monitor.Wait</c> does). Returns false when the wait timed out.
    /// <see cref="System.Threading.SynchronizationLockException"/> when the caller's handle
    /// does not hold the lock. When <paramref name="cancellationToken"/> cancels the wait the
    /// lock is re-acquired before <see cref="OperationCanceledException"/> propagates (as
    /// <c>Monitor.Wait</c> re-acquires before an interrupt propagates), so the caller's hold
    /// stays balanced.
    /// </summary>
    public async Task<bool> WaitAsync(TimeSpan? timeout, CancellationToken cancellationToken = default)
    {
        var request = new WaitConditionRequest { Target = _session.Ref(Name), Owner = Lock.Owner, Wait = Waits.Of(timeout) };
        var depth = Math.Max(1, Lock.Core.Depth);
        WaitConditionReply reply;
        try
        {
            reply = await _session.CallAsync(_session.Synchronization.WaitConditionAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The host may or may not have released the lock before the cancel reached it.
            if (!await Lock.IsOwnedAsync(CancellationToken.None).ConfigureAwait(false))
            {
                Lock.Core.Forget(depth);
                await Lock.Core.AcquireAsync(Waits.Forever, depth, CancellationToken.None).ConfigureAwait(false);
            }

            throw;
        }

        var saved = Math.Max(1, reply.SavedCount);
        Lock.Core.Forget(saved);
        await Lock.Core.AcquireAsync(Waits.Forever, saved, CancellationToken.None).ConfigureAwait(false);
        return reply.Notified;
    }

    /// <summary>
    /// Waits until <paramref name="predicate"/> is true (evaluated with the lock held), at
    /// most <paramref name="timeout"/> in all (null: as long as it takes). Returns the
    /// predicate's last value.
    /// </summary>
    public async Task<bool> WaitForAsync(Func<CancellationToken, Task<bool>> predicate, TimeSpan? timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        Waits.Of(timeout);
        var deadline = timeout is { } limit && limit != Timeout.InfiniteTimeSpan ? DateTime.UtcNow + limit : (DateTime?)null;
        var result = await predicate(cancellationToken).ConfigureAwait(false);
        while (!result)
        {
            TimeSpan? left = null;
            if (deadline is { } end)
            {
                left = end - DateTime.UtcNow;
                if (left <= TimeSpan.Zero)
                {
                    break;
                }
            }

            await WaitAsync(left, cancellationToken).ConfigureAwait(false);
            result = await predicate(cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    /// <summary>Wakes up to <paramref name="count"/> waiters. <see cref="System.Threading.SynchronizationLockException"/> when the lock is not held by <see cref="Lock"/>'s handle.</summary>
    public Task NotifyAsync(int count = 1, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        return NotifyCoreAsync(count, cancellationToken);
    }

    /// <summary>Wakes every waiter. <see cref="System.Threading.SynchronizationLockException"/> when the lock is not held by <see cref="Lock"/>'s handle.</summary>
    public Task NotifyAllAsync(CancellationToken cancellationToken = default) => NotifyCoreAsync(0, cancellationToken);

    private Task NotifyCoreAsync(int count, CancellationToken cancellationToken) =>
        _session.CallAsync(
            _session.Synchronization.NotifyAsync(new NotifyRequest { Target = _session.Ref(Name), Owner = Lock.Owner, N = count }, cancellationToken: cancellationToken),
            cancellationToken);
}

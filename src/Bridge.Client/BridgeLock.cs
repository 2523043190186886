using Bridge.Contracts.V1;

namespace Bridge.Client;

/// <summary>
/// A Lock or RLock living in the host, shared by name with every client (Python's
/// <c>multiprocessing.Lock(name=...)</c> / <c>RLock(name=...)</c>). Open one with
/// <see cref="BridgeSession.LockAsync(string?, CancellationToken)"/> or
/// <see cref="BridgeSession.RLockAsync(string?, CancellationToken)"/>.
/// </summary>
/// <remarks>
/// The owner is this handle, not a thread (async code hops threads): an RLock is re-entrant
/// through the same handle, and a Condition checks ownership by the handle its lock came
/// from. Two handles of one name are two owners. A Lock may be released by any owner or
/// process, as in the stdlib. When the session ends (disposed, or its process died) the
/// host releases what it held.
/// </remarks>
public sealed class BridgeLock
{
    internal BridgeLock(LockCore core) => Core = core;

    /// <summary>The host's name of the lock (generated, starting with '~', for an anonymous one).</summary>
    public string Name => Core.Name;

    /// <summary>Whether this is an RLock (re-entrant for its owner).</summary>
    public bool IsRecursive => Core.Kind == ObjectKind.Rlock;

    /// <summary>The owner identity this handle acquires and releases as.</summary>
    public string Owner => Core.Owner;

    internal LockCore Core { get; }

    /// <summary>Acquires, waiting as long as it takes; dispose the hold to release.</summary>
    public Task<BridgeLockHold> AcquireAsync(CancellationToken cancellationToken = default) =>
        Core.HoldAsync(null, cancellationToken);

    /// <summary>
    /// Acquires, waiting at most <paramref name="timeout"/> (null: as long as it takes;
    /// zero: not at all); <see cref="TimeoutException"/> when the wait ends without the lock.
    /// </summary>
    public Task<BridgeLockHold> AcquireAsync(TimeSpan? timeout, CancellationToken cancellationToken = default) =>
        Core.HoldAsync(timeout, cancellationToken);

    /// <summary>
    /// Acquires, waiting at most <paramref name="timeout"/> (zero: not at all); null when the
    /// wait ended without the lock (the stdlib's <c>acquire()</c> returning False).
    /// </summary>
    public Task<BridgeLockHold?> TryAcquireAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        Core.TryHoldAsync(timeout, cancellationToken);

    /// <summary>
    /// Releases without a hold (a Lock acquired elsewhere, e.g. by another process).
    /// <see cref="InvalidOperationException"/> when the Lock is not held;
    /// <see cref="System.Threading.SynchronizationLockException"/> when this handle does not own the RLock.
    /// </summary>
    public Task ReleaseAsync(CancellationToken cancellationToken = default) => Core.ReleaseAsync(cancellationToken);

    /// <summary>Whether this handle holds the lock now (one call).</summary>
    public async Task<bool> IsOwnedAsync(CancellationToken cancellationToken = default) =>
        (await Core.StateAsync(cancellationToken).ConfigureAwait(false)).OwnedByCaller;
}

using Bridge.Contracts.V1;

namespace Bridge.Client;

/// <summary>
/// A Semaphore or BoundedSemaphore living in the host, shared by name (Python's
/// <c>multiprocessing.Semaphore(value, name=...)</c>). Open one with
/// <see cref="BridgeSession.SemaphoreAsync(string?, long, CancellationToken)"/> or
/// <see cref="BridgeSession.BoundedSemaphoreAsync(string?, long, CancellationToken)"/>. Units
/// the session holds when it ends go back to the semaphore.
/// </summary>
public sealed class BridgeSemaphore
{
    internal BridgeSemaphore(LockCore core, long initialValue)
    {
        Core = core;
        InitialValue = initialValue;
    }

    /// <summary>The host's name of the semaphore.</summary>
    public string Name => Core.Name;

    /// <summary>Whether releasing past the initial value fails (<see cref="InvalidOperationException"/>).</summary>
    public bool IsBounded => Core.Kind == ObjectKind.BoundedSemaphore;

    /// <summary>The value the semaphore was created with.</summary>
    public long InitialValue { get; }

    internal LockCore Core { get; }

    /// <summary>Takes a unit, waiting as long as it takes; dispose the hold to give it back.</summary>
    public Task<BridgeLockHold> AcquireAsync(CancellationToken cancellationToken = default) =>
        Core.HoldAsync(null, cancellationToken);

    /// <summary>
    /// Takes a unit, waiting at most <paramref name="timeout"/> (null: as long as it takes;
    /// zero: not at all); <see cref="TimeoutException"/> when none came.
    /// </summary>
    public Task<BridgeLockHold> AcquireAsync(TimeSpan? timeout, CancellationToken cancellationToken = default) =>
        Core.HoldAsync(timeout, cancellationToken);

    /// <summary>Takes a unit, waiting at most <paramref name="timeout"/>; null when none came.</summary>
    public Task<BridgeLockHold?> TryAcquireAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        Core.TryHoldAsync(timeout, cancellationToken);

    /// <summary>
    /// Adds a unit without a hold (a producer signalling a consumer).
    /// <see cref="InvalidOperationException"/> when a BoundedSemaphore would exceed its initial value.
    /// </summary>
    public Task ReleaseAsync(CancellationToken cancellationToken = default) => Core.ReleaseAsync(cancellationToken);

    /// <summary>The current value (one call).</summary>
    public async Task<long> GetValueAsync(CancellationToken cancellationToken = default) =>
        (await Core.StateAsync(cancellationToken).ConfigureAwait(false)).Value;
}

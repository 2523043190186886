namespace Bridge.Client;

/// <summary>
/// One acquisition of a <see cref="BridgeLock"/> or a unit of a <see cref="BridgeSemaphore"/>:
/// disposing it releases it, so <c>await using (await guard.AcquireAsync(ct)) { ... }</c>
/// holds the lock for the block.
/// </summary>
public sealed class BridgeLockHold : IAsyncDisposable
{
    private readonly LockCore _lock;
    private int _released;

    internal BridgeLockHold(LockCore owner) => _lock = owner;

    /// <summary>The held object's name.</summary>
    public string Name => _lock.Name;

    /// <summary>Whether this hold has been released (by <see cref="ReleaseAsync"/> or disposal).</summary>
    public bool IsReleased => Volatile.Read(ref _released) != 0;

    /// <summary>
    /// Releases now. <see cref="InvalidOperationException"/> when this hold was released
    /// already, or when the host finds the lock released (another process released it, as a
    /// Lock allows); <see cref="System.Threading.SynchronizationLockException"/> when an RLock's
    /// owner no longer holds it.
    /// </summary>
    public async Task ReleaseAsync(CancellationToken cancellationToken)
    {
        // A token cancelled before the call leaves the hold to its disposal; one cancelled
        // during the call cannot say whether the host released, so the hold counts as released.
        cancellationToken.ThrowIfCancellationRequested();
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            throw new InvalidOperationException($"this hold of '{_lock.Name}' was released already");
        }

        await _lock.ReleaseAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Releases unless released already (failures as <see cref="ReleaseAsync"/>).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            // Disposal takes no token: leaving a lock held because a token fired would be worse
            // than one short call.
            await _lock.ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }
}

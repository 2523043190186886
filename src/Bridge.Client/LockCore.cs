using System.Globalization;
using Bridge.Contracts.V1;

namespace Bridge.Client;

/// <summary>
/// The calls of the lock family (Lock, RLock, Semaphore, BoundedSemaphore) on behalf of one
/// owner. Grants are plain: the .NET client does not ask for cached grants (those need a
/// Sessions.Watch stream to answer recalls), so Python clients that cache a lock hand it
/// over when this client asks for it.
/// </summary>
internal sealed class LockCore(BridgeSession session, string name, ObjectKind kind, string owner)
{
    // Levels this owner holds, as far as this handle knows (an RLock's depth): what a
    // Condition wait restores when it is cancelled after the host released the lock.
    private int _depth;

    public BridgeSession Session => session;

    public string Name => name;

    public ObjectKind Kind => kind;

    public string Owner => owner;

    public int Depth => Volatile.Read(ref _depth);

    public async Task<bool> AcquireAsync(WaitPolicy wait, int count, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var request = new AcquireRequest { Target = session.Ref(name), Owner = owner, Wait = wait, Count = count };
        var reply = await session.CallAsync(session.Synchronization.AcquireAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        if (reply.Acquired)
        {
            Interlocked.Add(ref _depth, count);
        }

        return reply.Acquired;
    }

    public async Task ReleaseAsync(CancellationToken cancellationToken)
    {
        var request = new ReleaseRequest { Target = session.Ref(name), Owner = owner };
        await session.CallAsync(session.Synchronization.ReleaseAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        Forget(1);
    }

    /// <summary>The host released <paramref name="levels"/> levels on this owner's behalf (a Condition wait).</summary>
    public void Forget(int levels)
    {
        int depth, next;
        do
        {
            depth = Volatile.Read(ref _depth);
            next = Math.Max(0, depth - levels);
        }
        while (Interlocked.CompareExchange(ref _depth, next, depth) != depth);
    }

    public Task<LockState> StateAsync(CancellationToken cancellationToken) =>
        session.CallAsync(
            session.Synchronization.GetLockStateAsync(new LockStateRequest { Target = session.Ref(name), Owner = owner }, cancellationToken: cancellationToken),
            cancellationToken);

    public async Task<BridgeLockHold> HoldAsync(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var wait = Waits.Of(timeout);
        if (!await AcquireAsync(wait, 1, cancellationToken).ConfigureAwait(false))
        {
            throw new TimeoutException(string.Create(
                CultureInfo.InvariantCulture, $"the {Describe()} '{name}' was not acquired within {timeout.GetValueOrDefault().TotalSeconds:0.###} s"));
        }

        return new BridgeLockHold(this);
    }

    public async Task<BridgeLockHold?> TryHoldAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        await AcquireAsync(Waits.Of(timeout), 1, cancellationToken).ConfigureAwait(false) ? new BridgeLockHold(this) : null;

    public string Describe() => kind switch
    {
        ObjectKind.Rlock => "RLock",
        ObjectKind.Semaphore => "Semaphore",
        ObjectKind.BoundedSemaphore => "BoundedSemaphore",
        _ => "Lock",
    };
}

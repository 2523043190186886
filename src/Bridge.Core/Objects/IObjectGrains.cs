using Orleans.Concurrency;

namespace Bridge.Core.Objects;

// Every grain key is the object's name. Calls that name a session attach that session to
// the object on first use (NotFound when the session has ended); a call on an object that
// does not exist (never created, or freed) is NotFound. Blocking calls take
// timeout == null for "wait forever", TimeSpan.Zero for "do not wait", and honour the
// CancellationToken (the gRPC call's), removing the waiter when it fires.

/// <summary>What every object grain does for the session lifecycle.</summary>
public interface IBridgeObjectGrain : IGrainWithStringKey
{
    /// <summary>
    /// The session died or said goodbye: release what it holds (locks, semaphore units,
    /// leased queue items), cancel its waiters and drop its reference. An object no
    /// session references any more is freed.
    /// </summary>
    [AlwaysInterleave]
    Task SessionEnded(string sessionId);

    /// <summary>
    /// The host whose silo is <paramref name="silo"/> (a parsable silo address) was declared
    /// dead: every session it held ends here as if its lease had lapsed (the session grains
    /// that would say so died with it). Returns how many sessions that ended.
    /// </summary>
    [AlwaysInterleave]
    Task<int> HostDied(string silo);

    /// <summary>
    /// The session no longer uses the object: drop its reference only. False when the
    /// session stays a member until it ends, because it still holds something here that
    /// its end must give back (see <c>ObjectGrain.Detach</c>).
    /// </summary>
    [AlwaysInterleave]
    Task<bool> Detach(string sessionId);

    /// <summary>
    /// The object's state for an operator, read without waiting and without attaching
    /// anyone; null when it does not exist (never created, or freed).
    /// </summary>
    [AlwaysInterleave]
    Task<ObjectStatus?> GetStatus();
}

[Alias("Bridge.ILockGrain")]
public interface ILockGrain : IBridgeObjectGrain
{
    Task<LockDescriptor> Open(string sessionId, OpenMode mode, LockKind kind, long initialValue);

    /// <summary>
    /// Takes one unit (Lock, semaphores) or <paramref name="count"/> recursion levels
    /// (RLock, re-entering when <paramref name="owner"/> already holds it). False when the
    /// wait ended without it. Waiters are served first come, first served.
    /// </summary>
    [ResponseTimeout("3650.00:00:00")]
    Task<bool> Acquire(string sessionId, string owner, int count, TimeSpan? timeout, CancellationToken cancellationToken);

    /// <summary>
    /// <see cref="Acquire"/>, and with <paramref name="cacheable"/> (Lock and RLock only)
    /// the grant may be cached by the session (LockGrant.CacheToken != 0): see
    /// <see cref="Surrender"/>. While another session caches the lock, a non-blocking
    /// acquire waits for that session to surrender (never for a holder to release).
    /// </summary>
    [ResponseTimeout("3650.00:00:00")]
    Task<LockGrant> AcquireGrant(
        string sessionId, string owner, int count, TimeSpan? timeout, bool cacheable, CancellationToken cancellationToken);

    /// <summary>
    /// Ends the session's cached grant <paramref name="cacheToken"/>: releases the lock
    /// (first waiter first) unless <paramref name="held"/>, else keeps it held by
    /// (session, <paramref name="owner"/>) with <paramref name="count"/> recursion levels.
    /// False (nothing changes) when that grant no longer stands.
    /// </summary>
    Task<bool> Surrender(string sessionId, long cacheToken, bool held, string owner, int count);

    /// <summary>
    /// FailedPrecondition/ValueError "semaphore or lock released too many times" (Lock
    /// unheld, BoundedSemaphore at its initial value); FailedPrecondition/AssertionError
    /// "attempt to release recursive lock not owned by thread" (RLock, non-owner). A Lock
    /// cached by another session is recalled first (the call waits for that session's
    /// answer, or its end), so "unheld" means what the caching client says.
    /// </summary>
    [ResponseTimeout("3650.00:00:00")]
    Task Release(string sessionId, string owner, CancellationToken cancellationToken = default);

    /// <summary>
    /// For Condition.wait: the owner gives the lock up entirely; returns the recursion
    /// levels released (1 for Lock). FailedPrecondition/AssertionError when not the owner.
    /// </summary>
    Task<int> ReleaseAll(string sessionId, string owner);

    Task<LockSnapshot> GetState(string sessionId, string owner);
}

[Alias("Bridge.IEventGrain")]
public interface IEventGrain : IBridgeObjectGrain
{
    Task Open(string sessionId, OpenMode mode);

    Task Set(string sessionId);

    Task Clear(string sessionId);

    Task<bool> IsSet(string sessionId);

    /// <summary>Returns the flag when the wait ended: false only on timeout.</summary>
    [ResponseTimeout("3650.00:00:00")]
    Task<bool> Wait(string sessionId, TimeSpan? timeout, CancellationToken cancellationToken);
}

[Alias("Bridge.IConditionGrain")]
public interface IConditionGrain : IBridgeObjectGrain
{
    /// <summary>
    /// <paramref name="lockName"/> names an existing LOCK or RLOCK object in the lock family,
    /// which an existing condition must be over (AlreadyExists naming both otherwise). Empty
    /// (multiprocessing.Condition() with no lock): the condition's own RLock, an anonymous
    /// one made only when this call creates the condition; an existing condition is
    /// attached to over whatever lock it has. Both are ignored when attaching. The session
    /// is also attached to the lock, so that the lock lives while the condition has users.
    /// </summary>
    Task<ConditionDescriptor> Open(string sessionId, OpenMode mode, string lockName, LockKind lockKind);

    /// <summary>
    /// Checks the caller owns the lock (FailedPrecondition/AssertionError
    /// "must acquire() condition before using wait()"), enrols as a waiter, releases the
    /// lock entirely and waits for a notify. The caller re-acquires the lock afterwards
    /// with ILockGrain.Acquire(count = SavedCount), whatever the outcome.
    /// </summary>
    [ResponseTimeout("3650.00:00:00")]
    Task<ConditionWaitOutcome> Wait(string sessionId, string owner, TimeSpan? timeout, CancellationToken cancellationToken);

    /// <summary>
    /// Wakes up to <paramref name="n"/> waiters (all when n &lt;= 0) in arrival order;
    /// FailedPrecondition/AssertionError "lock is not owned" when the caller does not own
    /// the lock. Returns how many were woken.
    /// </summary>
    Task<int> Notify(string sessionId, string owner, int n);
}

[Alias("Bridge.IBarrierGrain")]
public interface IBarrierGrain : IBridgeObjectGrain
{
    Task<int> Open(string sessionId, OpenMode mode, int parties);

    /// <summary>
    /// threading.Barrier.wait: returns the arrival index. When the last party arrives with
    /// <paramref name="hasAction"/>, it returns at once with RunAction set and the others
    /// stay waiting until <see cref="CompleteAction"/>. A timeout breaks the barrier; a
    /// broken barrier fails every waiter with FailedPrecondition/BrokenBarrierError.
    /// </summary>
    [ResponseTimeout("3650.00:00:00")]
    Task<BarrierArrival> Wait(string sessionId, TimeSpan? timeout, bool hasAction, CancellationToken cancellationToken);

    /// <summary>Releases the waiting parties (succeeded) or breaks the barrier.</summary>
    Task<BarrierSnapshot> CompleteAction(string sessionId, long generation, bool succeeded);

    Task<BarrierSnapshot> Reset(string sessionId);

    Task<BarrierSnapshot> Abort(string sessionId);

    Task<BarrierSnapshot> GetState(string sessionId);
}

[Alias("Bridge.IQueueGrain")]
public interface IQueueGrain : IBridgeObjectGrain
{
    Task<QueueDescriptor> Open(string sessionId, OpenMode mode, QueueKind kind, long maxSize);

    /// <summary>
    /// Appends in order; bounded queues take items one by one as space frees within the
    /// timeout. Returns how many were accepted (fewer than given: the queue stayed full).
    /// </summary>
    [ResponseTimeout("3650.00:00:00")]
    Task<long> Put(string sessionId, PayloadBatch items, TimeSpan? timeout, CancellationToken cancellationToken);

    /// <summary>
    /// <see cref="Put"/> with reserved slots (bounded queues): releases
    /// <see cref="SlotClaim.Release"/> of the session's unused slots, appends the first
    /// <see cref="SlotClaim.Reserved"/> items into held slots without waiting, the rest as
    /// <see cref="Put"/> does, and once all are in reserves up to
    /// <see cref="SlotClaim.Reserve"/> free slots for the session. InvalidArgument when
    /// the session holds fewer slots than it releases or fills.
    /// </summary>
    [ResponseTimeout("3650.00:00:00")]
    Task<PutOutcome> PutClaimed(string sessionId, PayloadBatch items, SlotClaim claim, TimeSpan? timeout, CancellationToken cancellationToken);

    /// <summary>
    /// First acknowledges <paramref name="ack"/> of the session's oldest leased items, then
    /// waits for at least one item and returns up to <paramref name="maxItems"/>, leased
    /// to the session. Empty: the wait ended with the queue empty.
    /// </summary>
    [ResponseTimeout("3650.00:00:00")]
    Task<PayloadBatch> Get(string sessionId, int maxItems, long ack, TimeSpan? timeout, CancellationToken cancellationToken);

    Task Ack(string sessionId, long count);

    Task<QueueSnapshot> GetState(string sessionId);

    /// <summary>FailedPrecondition/ValueError "task_done() called too many times".</summary>
    Task TaskDone(string sessionId, long count);

    /// <summary>True once every item put has been marked done.</summary>
    [ResponseTimeout("3650.00:00:00")]
    Task<bool> Join(string sessionId, TimeSpan? timeout, CancellationToken cancellationToken);
}

[Alias("Bridge.IValueGrain")]
public interface IValueGrain : IBridgeObjectGrain
{
    /// <summary>
    /// <paramref name="initial"/> is length * item size bytes, or empty for zeros.
    /// InvalidArgument/TypeError for an unknown typecode.
    /// </summary>
    Task<ValueDescriptor> Open(
        string sessionId,
        OpenMode mode,
        string typecode,
        long length,
        bool isArray,
        byte[] initial,
        string lockName,
        LockKind lockKind);

    /// <summary>count &lt;= 0 reads to the end. IndexError-style InvalidArgument out of range.</summary>
    Task<byte[]> Read(string sessionId, long index, long count);

    Task Write(string sessionId, long index, byte[] data);
}

using System.Runtime.InteropServices;
using Bridge.Contracts.V1;
using Google.Protobuf;

namespace Bridge.Client;

// Opening shared objects by name: one Create* call each. A null name creates a new
// anonymous object (its handle's Name is the host's name for it, to pass to other
// clients). A name is 1-200 characters of letters, digits and _ . - : / and unique within
// its family (locks and semaphores, events, conditions, barriers, queues, values).
public sealed partial class BridgeSession
{
    /// <summary>Opens the Lock <paramref name="name"/> (creating it when absent).</summary>
    public Task<BridgeLock> LockAsync(string? name, CancellationToken cancellationToken = default) =>
        LockAsync(name, BridgeOpenMode.CreateOrAttach, cancellationToken);

    /// <summary>Opens the Lock <paramref name="name"/> as <paramref name="mode"/> says.</summary>
    public async Task<BridgeLock> LockAsync(string? name, BridgeOpenMode mode, CancellationToken cancellationToken = default) =>
        new(await OpenLockCoreAsync(name, ObjectKind.Lock, 0, mode, cancellationToken).ConfigureAwait(false));

    /// <summary>Opens the RLock (re-entrant lock) <paramref name="name"/> (creating it when absent).</summary>
    public Task<BridgeLock> RLockAsync(string? name, CancellationToken cancellationToken = default) =>
        RLockAsync(name, BridgeOpenMode.CreateOrAttach, cancellationToken);

    /// <summary>Opens the RLock <paramref name="name"/> as <paramref name="mode"/> says.</summary>
    public async Task<BridgeLock> RLockAsync(string? name, BridgeOpenMode mode, CancellationToken cancellationToken = default) =>
        new(await OpenLockCoreAsync(name, ObjectKind.Rlock, 0, mode, cancellationToken).ConfigureAwait(false));

    /// <summary>Opens the Semaphore <paramref name="name"/> (creating it with <paramref name="initialValue"/> units when absent).</summary>
    public Task<BridgeSemaphore> SemaphoreAsync(string? name, long initialValue, CancellationToken cancellationToken = default) =>
        SemaphoreAsync(name, initialValue, BridgeOpenMode.CreateOrAttach, cancellationToken);

    /// <summary>Opens the Semaphore <paramref name="name"/> as <paramref name="mode"/> says.</summary>
    public Task<BridgeSemaphore> SemaphoreAsync(string? name, long initialValue, BridgeOpenMode mode, CancellationToken cancellationToken = default) =>
        OpenSemaphoreAsync(name, ObjectKind.Semaphore, initialValue, mode, cancellationToken);

    /// <summary>Opens the BoundedSemaphore <paramref name="name"/> (creating it with <paramref name="initialValue"/> units when absent).</summary>
    public Task<BridgeSemaphore> BoundedSemaphoreAsync(string? name, long initialValue, CancellationToken cancellationToken = default) =>
        BoundedSemaphoreAsync(name, initialValue, BridgeOpenMode.CreateOrAttach, cancellationToken);

    /// <summary>Opens the BoundedSemaphore <paramref name="name"/> as <paramref name="mode"/> says.</summary>
    public Task<BridgeSemaphore> BoundedSemaphoreAsync(string? name, long initialValue, BridgeOpenMode mode, CancellationToken cancellationToken = default) =>
        OpenSemaphoreAsync(name, ObjectKind.BoundedSemaphore, initialValue, mode, cancellationToken);

    /// <summary>Opens the Event <paramref name="name"/> (creating it, unset, when absent).</summary>
    public Task<BridgeEvent> EventAsync(string? name, CancellationToken cancellationToken = default) =>
        EventAsync(name, BridgeOpenMode.CreateOrAttach, cancellationToken);

    /// <summary>Opens the Event <paramref name="name"/> as <paramref name="mode"/> says.</summary>
    public async Task<BridgeEvent> EventAsync(string? name, BridgeOpenMode mode, CancellationToken cancellationToken = default)
    {
        var request = new CreateEventRequest { SessionId = SessionId, Name = NameToOpen(name, mode), Mode = Wire(mode) };
        var info = await CallAsync(Synchronization.CreateEventAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        return new BridgeEvent(this, info.Name);
    }

    /// <summary>
    /// Opens the Condition <paramref name="name"/> (creating it when absent) over
    /// <paramref name="conditionLock"/>, a Lock or RLock; null: the condition's own lock, a
    /// new RLock when this call creates it, else whatever lock the existing condition has
    /// (as Python's <c>Condition(name=...)</c> does).
    /// </summary>
    public Task<BridgeCondition> ConditionAsync(string? name, BridgeLock? conditionLock = null, CancellationToken cancellationToken = default) =>
        ConditionAsync(name, conditionLock, BridgeOpenMode.CreateOrAttach, cancellationToken);

    /// <summary>Opens the Condition <paramref name="name"/> as <paramref name="mode"/> says (see <see cref="ConditionAsync(string?, BridgeLock?, CancellationToken)"/>).</summary>
    public async Task<BridgeCondition> ConditionAsync(string? name, BridgeLock? conditionLock, BridgeOpenMode mode, CancellationToken cancellationToken = default)
    {
        var request = new CreateConditionRequest { SessionId = SessionId, Name = NameToOpen(name, mode), Mode = Wire(mode) };
        if (conditionLock is not null)
        {
            request.LockName = conditionLock.Name;
            request.LockKind = conditionLock.Core.Kind;
        }

        var info = await CallAsync(Synchronization.CreateConditionAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        var used = conditionLock is not null && string.Equals(info.LockName, conditionLock.Name, StringComparison.Ordinal)
            ? conditionLock
            : new BridgeLock(new LockCore(this, info.LockName, info.LockKind == ObjectKind.Lock ? ObjectKind.Lock : ObjectKind.Rlock, NewOwner()));
        return new BridgeCondition(this, info.Name, used);
    }

    /// <summary>Opens the Barrier <paramref name="name"/> for <paramref name="parties"/> parties (creating it when absent).</summary>
    public Task<BridgeBarrier> BarrierAsync(string? name, int parties, CancellationToken cancellationToken = default) =>
        BarrierAsync(name, parties, null, BridgeOpenMode.CreateOrAttach, cancellationToken);

    /// <summary>
    /// Opens the Barrier <paramref name="name"/> as <paramref name="mode"/> says;
    /// <paramref name="action"/> (may be null) runs in whichever of this handle's waits
    /// arrives last, before the other parties are released (Python's <c>Barrier(parties, action)</c>).
    /// </summary>
    public async Task<BridgeBarrier> BarrierAsync(
        string? name, int parties, Func<CancellationToken, Task>? action, BridgeOpenMode mode, CancellationToken cancellationToken = default)
    {
        var request = new CreateBarrierRequest { SessionId = SessionId, Name = NameToOpen(name, mode), Mode = Wire(mode), Parties = parties };
        var info = await CallAsync(Synchronization.CreateBarrierAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        return new BridgeBarrier(this, info.Name, info.Parties, action);
    }

    /// <summary>Opens the Queue <paramref name="name"/> of <typeparamref name="T"/> items (creating it when absent; <paramref name="maxSize"/> &lt;= 0: unbounded).</summary>
    public Task<BridgeQueue<T>> QueueAsync<T>(string? name, long maxSize = 0, CancellationToken cancellationToken = default) =>
        QueueAsync<T>(name, maxSize, BridgeOpenMode.CreateOrAttach, cancellationToken);

    /// <summary>Opens the Queue <paramref name="name"/> as <paramref name="mode"/> says.</summary>
    public async Task<BridgeQueue<T>> QueueAsync<T>(string? name, long maxSize, BridgeOpenMode mode, CancellationToken cancellationToken = default)
    {
        var info = await OpenQueueCoreAsync(name, ObjectKind.Queue, maxSize, mode, cancellationToken).ConfigureAwait(false);
        return new BridgeQueue<T>(new QueueCore(this, info.Name, info.Maxsize));
    }

    /// <summary>Opens the JoinableQueue <paramref name="name"/> of <typeparamref name="T"/> items (creating it when absent; <paramref name="maxSize"/> &lt;= 0: unbounded).</summary>
    public Task<BridgeJoinableQueue<T>> JoinableQueueAsync<T>(string? name, long maxSize = 0, CancellationToken cancellationToken = default) =>
        JoinableQueueAsync<T>(name, maxSize, BridgeOpenMode.CreateOrAttach, cancellationToken);

    /// <summary>Opens the JoinableQueue <paramref name="name"/> as <paramref name="mode"/> says.</summary>
    public async Task<BridgeJoinableQueue<T>> JoinableQueueAsync<T>(string? name, long maxSize, BridgeOpenMode mode, CancellationToken cancellationToken = default)
    {
        var info = await OpenQueueCoreAsync(name, ObjectKind.JoinableQueue, maxSize, mode, cancellationToken).ConfigureAwait(false);
        return new BridgeJoinableQueue<T>(new QueueCore(this, info.Name, info.Maxsize));
    }

    /// <summary>Opens the shared Value <paramref name="name"/> (creating it with <paramref name="initial"/> and an RLock when absent).</summary>
    public Task<BridgeValue<T>> ValueAsync<T>(string? name, T initial, CancellationToken cancellationToken = default)
        where T : unmanaged => ValueAsync(name, initial, BridgeOpenMode.CreateOrAttach, cancellationToken);

    /// <summary>Opens the shared Value <paramref name="name"/> as <paramref name="mode"/> says (attaching accepts any typecode of <typeparamref name="T"/>'s size and kind).</summary>
    public async Task<BridgeValue<T>> ValueAsync<T>(string? name, T initial, BridgeOpenMode mode, CancellationToken cancellationToken = default)
        where T : unmanaged =>
        new(await OpenValueCoreAsync<T>(name, 1, isArray: false, new[] { initial }, mode, cancellationToken).ConfigureAwait(false));

    /// <summary>Opens the shared Array <paramref name="name"/> of <paramref name="length"/> elements (creating it, zeroed, with an RLock when absent).</summary>
    public Task<BridgeArray<T>> ArrayAsync<T>(string? name, int length, CancellationToken cancellationToken = default)
        where T : unmanaged => ArrayAsync<T>(name, length, BridgeOpenMode.CreateOrAttach, cancellationToken);

    /// <summary>Opens the shared Array <paramref name="name"/> as <paramref name="mode"/> says (attaching takes the array's own length).</summary>
    public async Task<BridgeArray<T>> ArrayAsync<T>(string? name, int length, BridgeOpenMode mode, CancellationToken cancellationToken = default)
        where T : unmanaged =>
        new(await OpenValueCoreAsync<T>(name, length, isArray: true, ReadOnlyMemory<T>.Empty, mode, cancellationToken).ConfigureAwait(false));

    /// <summary>Opens the shared Array <paramref name="name"/> (creating it with <paramref name="initial"/> and an RLock when absent).</summary>
    public async Task<BridgeArray<T>> ArrayAsync<T>(string? name, T[] initial, CancellationToken cancellationToken = default)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(initial);
        return new(await OpenValueCoreAsync<T>(name, initial.Length, isArray: true, initial, BridgeOpenMode.CreateOrAttach, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>A kernel-only pool of <paramref name="processes"/> workers (C# kernels, no Python).</summary>
    public Task<BridgePool> PoolAsync(int processes, CancellationToken cancellationToken = default) =>
        BridgePool.CreateAsync(this, processes, new BridgePoolOptions(), cancellationToken);

    /// <summary>A pool of <paramref name="processes"/> workers as <paramref name="options"/> say (with <see cref="BridgePoolOptions.Python"/> for Python functions).</summary>
    public Task<BridgePool> PoolAsync(int processes, BridgePoolOptions options, CancellationToken cancellationToken = default) =>
        BridgePool.CreateAsync(this, processes, options, cancellationToken);

    internal async Task<QueueInfo> OpenQueueCoreAsync(string? name, ObjectKind kind, long maxSize, BridgeOpenMode mode, CancellationToken cancellationToken)
    {
        var request = new CreateQueueRequest { SessionId = SessionId, Name = NameToOpen(name, mode), Mode = Wire(mode), Kind = kind, Maxsize = Math.Max(0, maxSize) };
        var info = await CallAsync(Queues.CreateQueueAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        return info.Kind == kind ? info : throw KindMismatch(info.Name, info.Kind, kind);
    }

    private async Task<BridgeSemaphore> OpenSemaphoreAsync(string? name, ObjectKind kind, long initialValue, BridgeOpenMode mode, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(initialValue);
        var (core, info) = await OpenLockAsync(name, kind, initialValue, mode, cancellationToken).ConfigureAwait(false);
        return new BridgeSemaphore(core, info.InitialValue);
    }

    private async Task<LockCore> OpenLockCoreAsync(string? name, ObjectKind kind, long initialValue, BridgeOpenMode mode, CancellationToken cancellationToken) =>
        (await OpenLockAsync(name, kind, initialValue, mode, cancellationToken).ConfigureAwait(false)).Core;

    private async Task<(LockCore Core, LockInfo Info)> OpenLockAsync(string? name, ObjectKind kind, long initialValue, BridgeOpenMode mode, CancellationToken cancellationToken)
    {
        var request = new CreateLockRequest { SessionId = SessionId, Name = NameToOpen(name, mode), Mode = Wire(mode), Kind = kind, InitialValue = initialValue };
        var info = await CallAsync(Synchronization.CreateLockAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        if (info.Kind != kind)
        {
            throw KindMismatch(info.Name, info.Kind, kind);
        }

        return (new LockCore(this, info.Name, kind, NewOwner()), info);
    }

    private async Task<ValueCore<T>> OpenValueCoreAsync<T>(
        string? name, long length, bool isArray, ReadOnlyMemory<T> initial, BridgeOpenMode mode, CancellationToken cancellationToken)
        where T : unmanaged
    {
        var request = new CreateValueRequest
        {
            SessionId = SessionId,
            Name = NameToOpen(name, mode),
            Mode = Wire(mode),
            Typecode = ValueTypes.Typecode<T>(),
            Length = length,
            IsArray = isArray,
            Initial = ByteString.CopyFrom(MemoryMarshal.AsBytes(initial.Span)),
        };
        if (mode != BridgeOpenMode.Attach)
        {
            // Guarded by an RLock, as Python's Value()/Array() are; a named value's lock is
            // "<name>.lock", as Python names it.
            var guard = await OpenLockCoreAsync(name is null ? null : name + ".lock", ObjectKind.Rlock, 0, BridgeOpenMode.CreateOrAttach, cancellationToken).ConfigureAwait(false);
            request.LockName = guard.Name;
            request.LockKind = ObjectKind.Rlock;
        }

        var info = await CallAsync(SharedValues.CreateValueAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        if (info.IsArray != isArray)
        {
            throw new ArgumentException($"the value '{info.Name}' is {(info.IsArray ? "an Array" : "a scalar Value")}");
        }

        return new ValueCore<T>(this, info);
    }

    private static string NameToOpen(string? name, BridgeOpenMode mode) =>
        name ?? (mode == BridgeOpenMode.Attach
            ? throw new ArgumentNullException(nameof(name), "attaching needs the name of an existing object")
            : "");

    private static OpenMode Wire(BridgeOpenMode mode) => mode switch
    {
        BridgeOpenMode.CreateOrAttach => OpenMode.CreateOrAttach,
        BridgeOpenMode.Attach => OpenMode.Attach,
        BridgeOpenMode.Create => OpenMode.Create,
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "not a BridgeOpenMode"),
    };

    private static ArgumentException KindMismatch(string name, ObjectKind actual, ObjectKind expected) =>
        new($"the object '{name}' is a {actual}, not a {expected}");
}

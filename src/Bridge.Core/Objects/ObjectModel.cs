namespace Bridge.Core.Objects;

/// <summary>A name is unique within its family; each family is one grain type.</summary>
public enum ObjectFamily
{
    Lock,
    Event,
    Condition,
    Barrier,
    Queue,
    Value,
}

public enum LockKind
{
    Lock,
    RLock,
    Semaphore,
    BoundedSemaphore,
}

public enum QueueKind
{
    Queue,
    Joinable,
    Simple,
}

/// <summary>How opening a name treats an object that already exists.</summary>
public enum OpenMode
{
    /// <summary>Create, or attach when kind and parameters match (AlreadyExists otherwise).</summary>
    CreateOrAttach,

    /// <summary>Attach only; NotFound when absent. Parameters are ignored.</summary>
    Attach,

    /// <summary>Create only; AlreadyExists when the name is taken.</summary>
    Create,
}

[GenerateSerializer, Immutable, Alias("Bridge.ObjectAddress")]
public readonly record struct ObjectAddress([property: Id(0)] ObjectFamily Family, [property: Id(1)] string Name);

[GenerateSerializer, Immutable, Alias("Bridge.LockDescriptor")]
public sealed record LockDescriptor([property: Id(0)] LockKind Kind, [property: Id(1)] long InitialValue);

/// <param name="Cached">The lock is cached by a client session (see <see cref="LockGrant"/>).</param>
[GenerateSerializer, Immutable, Alias("Bridge.LockSnapshot")]
public sealed record LockSnapshot(
    [property: Id(0)] long Value,
    [property: Id(1)] bool OwnedByCaller,
    [property: Id(2)] int Count,
    [property: Id(3)] bool Cached = false);

/// <summary>
/// The outcome of an acquire. A non-zero <paramref name="CacheToken"/> means the session
/// holds the lock cached: its client acquires and releases locally until the host recalls
/// that token (a <see cref="Sessions.LockRecall"/>), then surrenders it.
/// </summary>
[GenerateSerializer, Immutable, Alias("Bridge.LockGrant")]
public readonly record struct LockGrant([property: Id(0)] bool Acquired, [property: Id(1)] long CacheToken)
{
    public static LockGrant NotAcquired => default;

    public static LockGrant Plain => new(true, 0);
}

[GenerateSerializer, Immutable, Alias("Bridge.ConditionDescriptor")]
public sealed record ConditionDescriptor([property: Id(0)] string LockName, [property: Id(1)] LockKind LockKind);

[GenerateSerializer, Immutable, Alias("Bridge.ConditionWaitOutcome")]
public sealed record ConditionWaitOutcome([property: Id(0)] bool Notified, [property: Id(1)] int SavedCount);

[GenerateSerializer, Immutable, Alias("Bridge.BarrierArrival")]
public sealed record BarrierArrival([property: Id(0)] int Index, [property: Id(1)] bool RunAction, [property: Id(2)] long Generation);

[GenerateSerializer, Immutable, Alias("Bridge.BarrierSnapshot")]
public sealed record BarrierSnapshot([property: Id(0)] int Parties, [property: Id(1)] int Waiting, [property: Id(2)] bool Broken);

[GenerateSerializer, Immutable, Alias("Bridge.QueueDescriptor")]
public sealed record QueueDescriptor([property: Id(0)] QueueKind Kind, [property: Id(1)] long MaxSize);

[GenerateSerializer, Immutable, Alias("Bridge.QueueSnapshot")]
public sealed record QueueSnapshot(
    [property: Id(0)] long Size,
    [property: Id(1)] long MaxSize,
    [property: Id(2)] long Leased,
    [property: Id(3)] long UnfinishedTasks,
    [property: Id(4)] long Reserved = 0);

/// <summary>
/// A bounded put's use of reserved slots (see queues.proto, PutRequest): release unused
/// ones, fill <see cref="Reserved"/> of the items into held ones, reserve more after.
/// </summary>
[GenerateSerializer, Immutable, Alias("Bridge.SlotClaim")]
public sealed record SlotClaim([property: Id(0)] long Reserved, [property: Id(1)] long Reserve, [property: Id(2)] long Release);

[GenerateSerializer, Immutable, Alias("Bridge.PutOutcome")]
public sealed record PutOutcome([property: Id(0)] long Accepted, [property: Id(1)] long Reserved);

/// <summary>
/// Queue items are opaque MessagePack documents; marked immutable so in-process grain
/// calls hand the arrays over instead of deep-copying them. Callers must not mutate them.
/// </summary>
[GenerateSerializer, Immutable, Alias("Bridge.PayloadBatch")]
public sealed record PayloadBatch([property: Id(0)] IReadOnlyList<byte[]> Items)
{
    public static PayloadBatch Empty { get; } = new(Array.Empty<byte[]>());
}

[GenerateSerializer, Immutable, Alias("Bridge.ValueDescriptor")]
public sealed record ValueDescriptor(
    [property: Id(0)] string Typecode,
    [property: Id(1)] int ItemSize,
    [property: Id(2)] long Length,
    [property: Id(3)] bool IsArray,
    [property: Id(4)] string LockName,
    [property: Id(5)] LockKind LockKind,
    [property: Id(6)] string SegmentPath);

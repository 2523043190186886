namespace Bridge.Core.Objects;

// What an object grain tells an operator about itself (host status): read in one turn of
// the grain, never waiting, so a busy object still answers.

/// <param name="Sessions">Sessions referencing the object.</param>
/// <param name="Waiters">Calls blocked on it now (acquire, wait, get, put, join).</param>
[GenerateSerializer, Immutable, Alias("Bridge.ObjectStatus")]
public sealed record ObjectStatus(
    [property: Id(0)] ObjectAddress Address,
    [property: Id(1)] int Sessions,
    [property: Id(2)] int Waiters,
    [property: Id(3)] ObjectDetail Detail);

/// <summary>The family's own part of an <see cref="ObjectStatus"/>.</summary>
[GenerateSerializer, Immutable, Alias("Bridge.ObjectDetail")]
public abstract record ObjectDetail;

/// <param name="Value">Semaphores: units free. Lock and RLock: 1 free, 0 held.</param>
/// <param name="HolderSessions">Sessions holding it (a semaphore: those holding units), in no order.</param>
/// <param name="Depth">RLock: recursion levels of its owner.</param>
/// <param name="Cached">Held cached by a client session (see LockGrant).</param>
[GenerateSerializer, Immutable, Alias("Bridge.LockDetail")]
public sealed record LockDetail(
    [property: Id(0)] LockKind Kind,
    [property: Id(1)] long Value,
    [property: Id(2)] long InitialValue,
    [property: Id(3)] IReadOnlyList<string> HolderSessions,
    [property: Id(4)] int Depth,
    [property: Id(5)] bool Cached) : ObjectDetail;

[GenerateSerializer, Immutable, Alias("Bridge.EventDetail")]
public sealed record EventDetail([property: Id(0)] bool IsSet) : ObjectDetail;

[GenerateSerializer, Immutable, Alias("Bridge.ConditionDetail")]
public sealed record ConditionDetail([property: Id(0)] string LockName, [property: Id(1)] LockKind LockKind) : ObjectDetail;

/// <param name="Waiting">Parties arrived in the current generation.</param>
[GenerateSerializer, Immutable, Alias("Bridge.BarrierDetail")]
public sealed record BarrierDetail([property: Id(0)] int Parties, [property: Id(1)] int Waiting, [property: Id(2)] bool Broken) : ObjectDetail;

/// <param name="Size">Items waiting in the queue (what qsize() counts).</param>
/// <param name="Leased">Items handed to consumers (prefetched) and not yet acknowledged.</param>
/// <param name="Reserved">Slots producers reserved ahead of their puts (bounded queues).</param>
[GenerateSerializer, Immutable, Alias("Bridge.QueueDetail")]
public sealed record QueueDetail(
    [property: Id(0)] QueueKind Kind,
    [property: Id(1)] long Size,
    [property: Id(2)] long MaxSize,
    [property: Id(3)] long Leased,
    [property: Id(4)] long Reserved,
    [property: Id(5)] long UnfinishedTasks,
    [property: Id(6)] int Getters,
    [property: Id(7)] int Putters,
    [property: Id(8)] int Joiners) : ObjectDetail;

[GenerateSerializer, Immutable, Alias("Bridge.ValueDetail")]
public sealed record ValueDetail(
    [property: Id(0)] string Typecode,
    [property: Id(1)] long Length,
    [property: Id(2)] bool IsArray,
    [property: Id(3)] string LockName) : ObjectDetail;

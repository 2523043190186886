namespace Bridge.Core.Sessions;

/// <summary>
/// The lock named <paramref name="LockName"/>, cached by the session under
/// <paramref name="CacheToken"/>, is wanted by someone else: the client must surrender it.
/// </summary>
[GenerateSerializer, Immutable, Alias("Bridge.LockRecall")]
public sealed record LockRecall([property: Id(0)] string LockName, [property: Id(1)] long CacheToken);

/// <summary>
/// What one pull of a session's event stream got: the events queued for it, or
/// <paramref name="Superseded"/> when a newer Watch took the stream over.
/// </summary>
[GenerateSerializer, Immutable, Alias("Bridge.SessionEventBatch")]
public sealed record SessionEventBatch([property: Id(0)] bool Superseded, [property: Id(1)] IReadOnlyList<LockRecall> Recalls)
{
    public static SessionEventBatch Empty { get; } = new(false, []);

    public static SessionEventBatch SupersededBatch { get; } = new(true, []);
}

using Bridge.Core.Objects;
using Orleans.Concurrency;

namespace Bridge.Core.Sessions;

/// <summary>
/// One client process. Its lease lapses unless renewed; when it lapses or the client says
/// goodbye, every object the session attached to hears SessionEnded.
/// </summary>
[Alias("Bridge.ISessionGrain")]
public interface ISessionGrain : IGrainWithStringKey
{
    Task Start(SessionStart start);

    /// <summary>Renews the lease; NotFound (SessionEnded) when the session has ended.</summary>
    Task KeepAlive();

    /// <summary>
    /// Records that the session uses an object (Added false when it was recorded already:
    /// the session used it before), and says which host's silo holds the session, so the
    /// object can end it if that host dies. NotFound when the session has ended.
    /// </summary>
    [AlwaysInterleave]
    Task<SessionAttachment> Attached(ObjectAddress address);

    [AlwaysInterleave]
    Task Detached(ObjectAddress address);

    /// <summary>Ends the session now (goodbye). Idempotent.</summary>
    Task End();

    /// <summary>
    /// Queues a recall for the session's Watch stream (kept until a watcher pulls it;
    /// dropped when the session has ended). Never waits.
    /// </summary>
    [AlwaysInterleave, OneWay]
    Task Post(LockRecall recall);

    /// <summary>
    /// Starts watching: returns the watch's generation, which its pulls pass along. A
    /// newer watch supersedes older ones (their pulls return Superseded). NotFound
    /// (SessionEnded) when the session has ended.
    /// </summary>
    [AlwaysInterleave]
    Task<long> Watch();

    /// <summary>
    /// The events queued for the session, waiting up to <paramref name="maxWait"/> for the
    /// first (empty after that). NotFound (SessionEnded) once the session has ended.
    /// </summary>
    [AlwaysInterleave, ResponseTimeout("3650.00:00:00")]
    Task<SessionEventBatch> NextEvents(long generation, TimeSpan maxWait, CancellationToken cancellationToken);
}

[GenerateSerializer, Immutable, Alias("Bridge.SessionStart")]
public sealed record SessionStart(
    [property: Id(0)] string ClientName,
    [property: Id(1)] int Pid,
    [property: Id(2)] string Language,
    [property: Id(3)] TimeSpan Lease);

/// <summary>
/// What <see cref="ISessionGrain.Attached"/> answers: whether the object was new to the
/// session, and the silo holding the session (<c>SiloAddress.ToParsableString()</c>).
/// </summary>
[GenerateSerializer, Immutable, Alias("Bridge.SessionAttachment")]
public readonly record struct SessionAttachment([property: Id(0)] bool Added, [property: Id(1)] string Silo);

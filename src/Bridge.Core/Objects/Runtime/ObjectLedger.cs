namespace Bridge.Core.Objects;

/// <summary>
/// A record, kept outside the silos, of which objects exist and which host holds each
/// one's state (its incarnation). An object's grain lives in one host's memory: when
/// that host dies, Orleans activates the grain afresh elsewhere, empty. The record
/// outliving the host is how the new activation knows that an object existed and was
/// lost, instead of passing for one never created (or, once its name is created again,
/// for the same object). A single host has no such records (<see cref="NoObjectLedger"/>):
/// its objects end with it and its clients.
/// </summary>
public interface IObjectLedger
{
    /// <summary>The incarnation recorded for <paramref name="address"/> and not erased since; null when none.</summary>
    Task<ObjectIncarnation?> Recorded(ObjectAddress address, CancellationToken cancellationToken);

    /// <summary>Records <paramref name="incarnation"/> as the object's live one.</summary>
    Task Record(ObjectAddress address, ObjectIncarnation incarnation, CancellationToken cancellationToken);

    /// <summary>Erases the record, only while it is still <paramref name="incarnation"/> (the object was freed).</summary>
    Task Erase(ObjectAddress address, ObjectIncarnation incarnation, CancellationToken cancellationToken);
}

/// <summary>One life of an object: the host that holds its state, and a unique id.</summary>
public readonly record struct ObjectIncarnation(string Host, string Id)
{
    private const char Separator = '|';

    public static ObjectIncarnation New(string host) => new(host, Guid.NewGuid().ToString("N"));

    public override string ToString() => Host + Separator + Id;

    /// <summary>The form <see cref="ToString"/> writes; null for anything else.</summary>
    public static ObjectIncarnation? Parse(string? text)
    {
        var cut = text?.LastIndexOf(Separator) ?? -1;
        return cut <= 0 ? null : new ObjectIncarnation(text![..cut], text[(cut + 1)..]);
    }
}

/// <summary>The ledger of a host that is not in a cluster: nothing to record.</summary>
internal sealed class NoObjectLedger : IObjectLedger
{
    public Task<ObjectIncarnation?> Recorded(ObjectAddress address, CancellationToken cancellationToken) =>
        Task.FromResult<ObjectIncarnation?>(null);

    public Task Record(ObjectAddress address, ObjectIncarnation incarnation, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task Erase(ObjectAddress address, ObjectIncarnation incarnation, CancellationToken cancellationToken) => Task.CompletedTask;
}

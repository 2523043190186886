using System.Collections.Concurrent;

namespace Bridge.Core.Tests;

/// <summary>The object ledger a cluster keeps in Redis, in memory: what the tests write into it stands for a dead host's records.</summary>
public sealed class MemoryObjectLedger : IObjectLedger
{
    private readonly ConcurrentDictionary<ObjectAddress, ObjectIncarnation> _records = new();

    /// <summary>The objects that exist now (created, not yet freed).</summary>
    public IReadOnlyCollection<ObjectAddress> Existing => [.. _records.Keys];

    public Task<ObjectIncarnation?> Recorded(ObjectAddress address, CancellationToken cancellationToken) =>
        Task.FromResult(_records.TryGetValue(address, out var incarnation) ? incarnation : (ObjectIncarnation?)null);

    public Task Record(ObjectAddress address, ObjectIncarnation incarnation, CancellationToken cancellationToken)
    {
        _records[address] = incarnation;
        return Task.CompletedTask;
    }

    public Task Erase(ObjectAddress address, ObjectIncarnation incarnation, CancellationToken cancellationToken)
    {
        _records.TryRemove(KeyValuePair.Create(address, incarnation));
        return Task.CompletedTask;
    }
}

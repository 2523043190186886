using System.Collections.Concurrent;

namespace Bridge.Core.Objects;

/// <summary>
/// The objects that exist on this silo (created and not freed yet), for host status and
/// metrics. A DI singleton that object grains report to; cluster-wide objects live on
/// several silos, each listing its own.
/// </summary>
public sealed class ObjectCatalog
{
    private readonly ConcurrentDictionary<ObjectAddress, CatalogEntry> _objects = new();

    public int Count => _objects.Count;

    /// <summary>The objects now, in no order.</summary>
    public IReadOnlyList<ObjectAddress> Addresses() => [.. _objects.Keys];

    /// <summary>
    /// The named queues with the most items waiting, deepest first (anonymous queues are
    /// left out: their names mean nothing to an operator and would only grow the tag set).
    /// </summary>
    public IReadOnlyList<(string Name, long Depth)> DeepestNamedQueues(int count) =>
        [.. _objects.Values
            .Where(entry => entry.Address.Family == ObjectFamily.Queue && !ObjectNames.IsAnonymous(entry.Address.Name))
            .Select(entry => (entry.Address.Name, entry.Depth))
            .OrderByDescending(queue => queue.Depth)
            .ThenBy(queue => queue.Name, StringComparer.Ordinal)
            .Take(count)];

    internal CatalogEntry Created(ObjectAddress address)
    {
        var entry = new CatalogEntry(address);
        _objects[address] = entry;
        return entry;
    }

    internal void Freed(CatalogEntry entry) => _objects.TryRemove(new KeyValuePair<ObjectAddress, CatalogEntry>(entry.Address, entry));
}

/// <summary>One object in the <see cref="ObjectCatalog"/>.</summary>
internal sealed class CatalogEntry(ObjectAddress address)
{
    private long _depth;

    public ObjectAddress Address { get; } = address;

    /// <summary>
    /// A queue's items waiting, published by its grain as they change: metrics read it from
    /// their own thread, where a grain call would block the collection.
    /// </summary>
    public long Depth
    {
        get => Volatile.Read(ref _depth);
        set => Volatile.Write(ref _depth, value);
    }
}

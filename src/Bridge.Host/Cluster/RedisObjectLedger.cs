using Bridge.Core.Objects;
using StackExchange.Redis;

namespace Bridge.Host.Cluster;

/// <summary>
/// The cluster's object ledger in the Redis that also holds its membership table: one
/// hash per cluster id, a field per object ("family:name"), the value its incarnation
/// ("host|id"). The connection opens on first use and is shared by every grain.
/// </summary>
internal sealed class RedisObjectLedger(string endpoint, string clusterId) : IObjectLedger, IAsyncDisposable
{
    // Deletes the field only while it still holds the incarnation being erased: a free
    // racing a new creation of the name must not erase the new record.
    private const string EraseIfSame =
        "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0";

    private readonly RedisKey _key = $"bridge:{clusterId}:objects";
    private readonly Lazy<Task<ConnectionMultiplexer>> _connection = new(
        () => ConnectionMultiplexer.ConnectAsync(ConfigurationOptions.Parse(endpoint)));

    public async Task<ObjectIncarnation?> Recorded(ObjectAddress address, CancellationToken cancellationToken)
    {
        var database = await DatabaseAsync(cancellationToken);
        var value = await database.HashGetAsync(_key, Field(address)).WaitAsync(cancellationToken);
        return ObjectIncarnation.Parse(value.IsNull ? null : value.ToString());
    }

    public async Task Record(ObjectAddress address, ObjectIncarnation incarnation, CancellationToken cancellationToken)
    {
        var database = await DatabaseAsync(cancellationToken);
        await database.HashSetAsync(_key, Field(address), incarnation.ToString()).WaitAsync(cancellationToken);
    }

    public async Task Erase(ObjectAddress address, ObjectIncarnation incarnation, CancellationToken cancellationToken)
    {
        var database = await DatabaseAsync(cancellationToken);
        await database.ScriptEvaluateAsync(EraseIfSame, [_key], [Field(address), incarnation.ToString()]).WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection.IsValueCreated && _connection.Value.IsCompletedSuccessfully)
        {
            await _connection.Value.Result.DisposeAsync();
        }
    }

    private static RedisValue Field(ObjectAddress address) => $"{address.Family}:{address.Name}";

    private async Task<IDatabase> DatabaseAsync(CancellationToken cancellationToken) =>
        (await _connection.Value.WaitAsync(cancellationToken)).GetDatabase();
}

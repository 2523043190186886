using Bridge.Client;
using Bridge.Contracts.V1;
using Google.Protobuf;
using MessagePack;

namespace Bridge.Host.Tests;

public sealed partial class BridgeClientTests
{
    [Fact(Timeout = TestTimeout)]
    public async Task A_typed_queue_carries_records_between_sessions_in_order()
    {
        await using var producer = await OpenAsync();
        await using var consumer = await OpenAsync();
        var name = Unique("typed");
        var outgoing = await producer.QueueAsync<Reading>(name, cancellationToken: Token);
        var incoming = await consumer.QueueAsync<Reading>(name, 0, BridgeOpenMode.Attach, Token);
        for (var i = 0; i < 3; i++)
        {
            await outgoing.PutAsync(new Reading($"sensor-{i}", i * 1.5, [i, i + 1]), Token);
        }

        Assert.Equal(3, await incoming.GetCountAsync(Token));
        for (var i = 0; i < 3; i++)
        {
            var reading = await incoming.GetAsync(TimeSpan.FromSeconds(5), Token);
            Assert.Equal(($"sensor-{i}", i * 1.5), (reading.Name, reading.Value));
            Assert.Equal([i, i + 1], reading.Tags);
        }

        Assert.True(await incoming.IsEmptyAsync(Token));
        await Assert.ThrowsAsync<TimeoutException>(() => incoming.GetAsync(TimeSpan.FromMilliseconds(50), Token));
        Assert.Equal((false, null), await incoming.TryGetAsync(TimeSpan.Zero, Token));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_bounded_queue_times_out_full_and_an_item_got_is_not_delivered_again_after_disposal()
    {
        var name = Unique("bounded");
        await using var producer = await OpenAsync();
        var queue = await producer.QueueAsync<int>(name, 2, Token);
        Assert.Equal(2, queue.MaxSize);
        await queue.PutAsync(1, Token);
        await queue.PutAsync(2, TimeSpan.Zero, Token);
        Assert.True(await queue.IsFullAsync(Token));
        await Assert.ThrowsAsync<TimeoutException>(() => queue.PutAsync(3, TimeSpan.FromMilliseconds(50), Token));
        Assert.False(await queue.TryPutAsync(3, TimeSpan.Zero, Token));

        await using (var consumer = await OpenAsync())
        {
            Assert.Equal(1, await (await consumer.QueueAsync<int>(name, 2, Token)).GetAsync(Token));
        }

        // The consumer's goodbye acknowledged its item: only the second is left.
        Assert.Equal(2, await queue.GetAsync(TimeSpan.FromSeconds(5), Token));
        Assert.True(await queue.IsEmptyAsync(Token));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_joinable_queue_joins_once_every_item_is_done()
    {
        await using var session = await OpenAsync();
        var queue = await session.JoinableQueueAsync<string>(Unique("joinable"), cancellationToken: Token);
        await queue.PutAsync("a", Token);
        await queue.PutAsync("b", Token);
        Assert.False(await queue.JoinAsync(TimeSpan.FromMilliseconds(50), Token));
        var joined = queue.JoinAsync(Token);
        Assert.Equal("a", await queue.GetAsync(Token));
        await queue.TaskDoneAsync(Token);
        Assert.Equal("b", await queue.GetAsync(Token));
        Assert.False(joined.IsCompleted);
        await queue.TaskDoneAsync(Token);
        await joined;
        await Assert.ThrowsAsync<InvalidOperationException>(() => queue.TaskDoneAsync(Token));
        await Assert.ThrowsAsync<ArgumentException>(() => session.QueueAsync<string>(queue.Name, cancellationToken: Token));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Python_tuples_read_as_arrays_and_pickles_fail_with_a_clear_error()
    {
        await using var session = await OpenAsync();
        var queue = await session.QueueAsync<int[]>(Unique("payloads"), cancellationToken: Token);
        var put = new PutRequest { Target = session.Ref(queue.Name) };
        put.Items.Add(ByteString.CopyFrom(0xc7, 3, 2, 0x92, 1, 2));   // ext 2 (a tuple) of [1, 2]
        put.Items.Add(ByteString.CopyFrom(0xd4, 1, 0x2e));            // ext 1 (a pickle)
        put.Items.Add(ByteString.CopyFrom(MessagePackSerializer.Serialize(new[] { 3 })));
        await session.Queues.PutAsync(put, cancellationToken: Token);

        Assert.Equal(new[] { 1, 2 }, await queue.GetAsync(Token));
        var error = await Assert.ThrowsAsync<NotSupportedException>(() => queue.GetAsync(Token));
        Assert.Contains("pickled by a Python client", error.Message, StringComparison.Ordinal);
        Assert.Equal(new[] { 3 }, await queue.GetAsync(Token));
        // Over the host's payload limit (64 KiB here): the host's ValueError.
        await Assert.ThrowsAsync<ArgumentException>(() => queue.PutAsync(new int[70_000], Token));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Shared_values_and_arrays_update_under_their_lock_from_two_sessions()
    {
        await using var first = await OpenAsync();
        await using var second = await OpenAsync();
        var name = Unique("counter");
        var counter = await first.ValueAsync(name, 10L, Token);
        var same = await second.ValueAsync(name, 0L, BridgeOpenMode.Attach, Token);
        Assert.Equal("q", same.Typecode);
        Assert.Equal(name + ".lock", same.Lock!.Name);
        await Task.WhenAll(Enumerable.Range(0, 10).Select(i => (i % 2 == 0 ? counter : same).UpdateAsync(v => v + 1, Token)));
        Assert.Equal(20L, await same.GetAsync(Token));
        await counter.SetAsync(-1, Token);
        Assert.Equal(-1L, await same.GetAsync(Token));
        await Assert.ThrowsAsync<ArgumentException>(() => second.ValueAsync(name, 0.0, BridgeOpenMode.Attach, Token));

        var samples = await first.ArrayAsync(Unique("samples"), new[] { 0.5, 1.5, 2.5 }, Token);
        Assert.Equal(3, samples.Length);
        await samples.SetAsync(1, 9.0, Token);
        await samples.WriteAsync(2, new[] { 7.0 }, Token);
        Assert.Equal(new[] { 0.5, 9.0, 7.0 }, await samples.ReadAsync(Token));
        Assert.Equal(9.0, await samples.GetAsync(1, Token));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => samples.GetAsync(3, Token));
    }

    [MessagePackObject]
    public sealed record Reading([property: Key("name")] string Name, [property: Key("value")] double Value, [property: Key("tags")] int[] Tags);

    [Fact(Timeout = TestTimeout)]
    public async Task A_long_value_opens_a_value_python_made_with_c_long_and_keeps_its_typecode()
    {
        await using var python = await OpenAsync();
        await using var dotnet = await OpenAsync();
        var name = Unique("c-long");
        // What Python's Value("l", 41, name=...) sends.
        await python.RLockAsync(name + ".lock", Token);
        await python.SharedValues.CreateValueAsync(
            new CreateValueRequest
            {
                SessionId = python.SessionId,
                Name = name,
                Typecode = "l",
                Length = 1,
                Initial = ByteString.CopyFrom(BitConverter.GetBytes(41L)),
                LockName = name + ".lock",
                LockKind = ObjectKind.Rlock,
            },
            cancellationToken: Token);

        var counter = await dotnet.ValueAsync(name, 0L, Token);

        Assert.Equal("l", counter.Typecode);
        Assert.Equal(42L, await counter.UpdateAsync(v => v + 1, Token));
        var read = await python.SharedValues.ReadAsync(new ReadRequest { Target = python.Ref(name) }, cancellationToken: Token);
        Assert.Equal(42L, BitConverter.ToInt64(read.Data.Span));
        await Assert.ThrowsAsync<ArgumentException>(() => dotnet.ValueAsync(name, 0UL, Token));
        await Assert.ThrowsAsync<ArgumentException>(() => dotnet.ValueAsync(name, 0, Token));
    }
}

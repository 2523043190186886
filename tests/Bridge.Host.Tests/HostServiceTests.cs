using Bridge.Client;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;

namespace Bridge.Host.Tests;

/// <summary>The gRPC services of a real host process: statuses, trailers, and that bad input leaves it serving.</summary>
public sealed class HostServiceTests(HostFixture fixture) : IClassFixture<HostFixture>, IDisposable
{
    private const int TestTimeout = 30_000;

    private readonly CancellationTokenSource _testTimeout = new(TimeSpan.FromMilliseconds(TestTimeout));

    private HostProcess Host => fixture.Host;

    [Fact(Timeout = TestTimeout)]
    public async Task Hello_reports_the_host_and_a_lease()
    {
        await using var session = await OpenAsync();
        Assert.False(string.IsNullOrEmpty(session.SessionId));
        Assert.Equal(Host.Pid, session.Host.Pid);
        Assert.Equal(Environment.ProcessorCount, session.Host.CpuCount);
        Assert.Equal(64 * 1024, session.Host.MaxPayloadBytes);
        Assert.True((await Host.InfoAsync(Token())).ActiveSessions >= 1);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Queue_round_trips_items_in_order_between_two_sessions()
    {
        await using var producer = await OpenAsync();
        await using var consumer = await OpenAsync();
        var name = UniqueName("fifo");
        var outgoing = await producer.OpenQueueAsync(name, 0, Token());
        var incoming = await consumer.OpenQueueAsync(name, 0, Token());
        for (var i = 0; i < 5; i++)
        {
            await outgoing.PutAsync($"item-{i}", Token());
        }

        for (var i = 0; i < 5; i++)
        {
            var (found, item) = await incoming.GetAsync<string>(TimeSpan.FromSeconds(5), Token());
            Assert.True(found);
            Assert.Equal($"item-{i}", item);
        }

        var (more, _) = await incoming.GetAsync<string>(TimeSpan.FromMilliseconds(100), Token());
        Assert.False(more);
    }

    [Theory(Timeout = TestTimeout)]
    [InlineData("bad name!")]
    [InlineData("~reserved")]
    public async Task Invalid_names_are_InvalidArgument_with_ValueError(string name)
    {
        await using var session = await OpenAsync();
        var error = await Assert.ThrowsAsync<RpcException>(() => session.Synchronization.CreateLockAsync(
            new CreateLockRequest { SessionId = session.SessionId, Name = name, Kind = ObjectKind.Lock }).ResponseAsync);
        AssertStatus(error, StatusCode.InvalidArgument, "ValueError");
        await AssertStillServingAsync();
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Attaching_to_an_unknown_name_is_NotFound_with_FileNotFoundError()
    {
        await using var session = await OpenAsync();
        var error = await Assert.ThrowsAsync<RpcException>(() => session.Queues.CreateQueueAsync(
            new CreateQueueRequest { SessionId = session.SessionId, Name = UniqueName("absent"), Mode = OpenMode.Attach }).ResponseAsync);
        AssertStatus(error, StatusCode.NotFound, "FileNotFoundError");
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_name_taken_by_another_kind_is_AlreadyExists()
    {
        await using var session = await OpenAsync();
        var name = UniqueName("taken");
        await session.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = session.SessionId, Name = name, Kind = ObjectKind.Lock });
        var error = await Assert.ThrowsAsync<RpcException>(() => session.Synchronization.CreateLockAsync(
            new CreateLockRequest { SessionId = session.SessionId, Name = name, Kind = ObjectKind.Semaphore, InitialValue = 2 }).ResponseAsync);
        Assert.Equal(StatusCode.AlreadyExists, error.StatusCode);
    }

    [Theory(Timeout = TestTimeout)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    public async Task Negative_or_NaN_timeouts_are_InvalidArgument(double timeout)
    {
        await using var session = await OpenAsync();
        var info = await session.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = session.SessionId, Kind = ObjectKind.Lock });
        var error = await Assert.ThrowsAsync<RpcException>(() => session.Synchronization.AcquireAsync(new AcquireRequest
        {
            Target = session.Ref(info.Name),
            Owner = "t1",
            Wait = new WaitPolicy { Block = true, TimeoutSeconds = timeout },
        }).ResponseAsync);
        AssertStatus(error, StatusCode.InvalidArgument, "ValueError");
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Releasing_an_unheld_lock_is_FailedPrecondition_with_ValueError()
    {
        await using var session = await OpenAsync();
        var info = await session.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = session.SessionId, Kind = ObjectKind.Lock });
        var error = await Assert.ThrowsAsync<RpcException>(() => session.Synchronization.ReleaseAsync(
            new ReleaseRequest { Target = session.Ref(info.Name), Owner = "t1" }).ResponseAsync);
        AssertStatus(error, StatusCode.FailedPrecondition, "ValueError");
        Assert.Contains("released too many times", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Acquire_times_out_without_the_lock_and_honours_the_timeout()
    {
        await using var holder = await OpenAsync();
        await using var waiter = await OpenAsync();
        var info = await holder.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = holder.SessionId, Kind = ObjectKind.Lock });
        Assert.True((await holder.Synchronization.AcquireAsync(new AcquireRequest { Target = holder.Ref(info.Name), Owner = "a" })).Acquired);
        var started = DateTime.UtcNow;
        var reply = await waiter.Synchronization.AcquireAsync(new AcquireRequest
        {
            Target = waiter.Ref(info.Name),
            Owner = "b",
            Wait = new WaitPolicy { Block = true, TimeoutSeconds = 0.3 },
        });
        Assert.False(reply.Acquired);
        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(10));
        var nonBlocking = await waiter.Synchronization.AcquireAsync(new AcquireRequest
        {
            Target = waiter.Ref(info.Name),
            Owner = "b",
            Wait = new WaitPolicy { Block = false },
        });
        Assert.False(nonBlocking.Acquired);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_unit_held_by_a_session_that_detached_goes_back_at_its_goodbye()
    {
        // A forked child holds the unit through the proxy it inherited while its own copy,
        // collected, detaches: its Goodbye must still give the unit back.
        await using var parent = await OpenAsync();
        await using var child = await OpenAsync();
        var name = (await parent.Synchronization.CreateLockAsync(new CreateLockRequest
        {
            SessionId = parent.SessionId, Kind = ObjectKind.Semaphore, InitialValue = 1,
        })).Name;
        var noWait = new WaitPolicy { Block = false };
        Assert.True((await child.Synchronization.AcquireAsync(new AcquireRequest { Target = child.Ref(name), Owner = "c", Wait = noWait })).Acquired);
        await child.Sessions.DetachAsync(new DetachRequest { SessionId = child.SessionId, Kind = ObjectKind.Semaphore, Name = name });
        Assert.False((await parent.Synchronization.AcquireAsync(new AcquireRequest { Target = parent.Ref(name), Owner = "p", Wait = noWait })).Acquired);

        await child.Sessions.GoodbyeAsync(new GoodbyeRequest { SessionId = child.SessionId });
        Assert.True((await parent.Synchronization.AcquireAsync(new AcquireRequest { Target = parent.Ref(name), Owner = "p", Wait = noWait })).Acquired);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_lock_held_by_a_session_whose_lease_lapses_goes_to_the_waiter()
    {
        await using var waiter = await OpenAsync();
        using var deadChannel = Host.Address.CreateChannel();
        var dead = new Sessions.SessionsClient(deadChannel);
        var deadSession = (await dead.HelloAsync(new HelloRequest { ClientName = "dies", Language = "test" })).SessionId;
        var sync = new Synchronization.SynchronizationClient(deadChannel);
        var name = UniqueName("orphan");
        await sync.CreateLockAsync(new CreateLockRequest { SessionId = deadSession, Name = name, Kind = ObjectKind.Lock });
        Assert.True((await sync.AcquireAsync(new AcquireRequest { Target = new ObjectRef { SessionId = deadSession, Name = name }, Owner = "x" })).Acquired);

        // The dead session never renews its 1.5 s lease.
        await waiter.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = waiter.SessionId, Name = name, Kind = ObjectKind.Lock });
        var reply = await waiter.Synchronization.AcquireAsync(new AcquireRequest
        {
            Target = waiter.Ref(name),
            Owner = "y",
            Wait = new WaitPolicy { Block = true, TimeoutSeconds = 10 },
        });
        Assert.True(reply.Acquired);
        var lapsed = await Assert.ThrowsAsync<RpcException>(() => dead.KeepAliveAsync(new KeepAliveRequest { SessionId = deadSession }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, lapsed.StatusCode);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Malformed_MessagePack_is_InvalidArgument_and_nothing_is_enqueued()
    {
        await using var session = await OpenAsync();
        var queue = await session.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = session.SessionId, Kind = ObjectKind.Queue });
        var put = new PutRequest { Target = session.Ref(queue.Name), Wait = new WaitPolicy { Block = true } };
        put.Items.Add(ByteString.CopyFrom(0x92, 0x01)); // an array of two elements with only one
        var error = await Assert.ThrowsAsync<RpcException>(() => session.Queues.PutAsync(put).ResponseAsync);
        AssertStatus(error, StatusCode.InvalidArgument, "ValueError");

        var neverType = new PutRequest { Target = session.Ref(queue.Name) };
        neverType.Items.Add(ByteString.CopyFrom(0xc1));
        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => session.Queues.PutAsync(neverType).ResponseAsync)).StatusCode);

        var state = await session.Queues.GetQueueStateAsync(new QueueStateRequest { Target = session.Ref(queue.Name) });
        Assert.Equal(0, state.Size);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Reserved_slots_over_the_wire_and_bad_claims_are_InvalidArgument()
    {
        await using var session = await OpenAsync();
        var queue = await session.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = session.SessionId, Kind = ObjectKind.Queue, Maxsize = 3 });
        var first = new PutRequest { Target = session.Ref(queue.Name), Reserve = 5 };
        first.Items.Add(ByteString.CopyFrom(0x01));
        Assert.Equal((1L, 2L), ((await session.Queues.PutAsync(first)).Accepted, (await session.Queues.GetQueueStateAsync(new QueueStateRequest { Target = session.Ref(queue.Name) })).Reserved));

        foreach (var bad in new[]
        {
            new PutRequest { Target = session.Ref(queue.Name), Release = -1 },
            new PutRequest { Target = session.Ref(queue.Name), Reserve = -1 },
            new PutRequest { Target = session.Ref(queue.Name), Release = 3 },
            new PutRequest { Target = session.Ref(queue.Name), Reserved = 1 },
        })
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => session.Queues.PutAsync(bad).ResponseAsync);
            AssertStatus(error, StatusCode.InvalidArgument, "ValueError");
        }

        var filled = new PutRequest { Target = session.Ref(queue.Name), Reserved = 1, Release = 1, Wait = new WaitPolicy { Block = false } };
        filled.Items.Add(ByteString.CopyFrom(0x02));
        Assert.Equal(1, (await session.Queues.PutAsync(filled)).Accepted);
        var state = await session.Queues.GetQueueStateAsync(new QueueStateRequest { Target = session.Ref(queue.Name) });
        Assert.Equal((2L, 0L), (state.Size, state.Reserved));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Deeply_nested_MessagePack_is_checked_without_recursion()
    {
        await using var session = await OpenAsync();
        var queue = await session.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = session.SessionId, Kind = ObjectKind.Queue });
        var nested = Enumerable.Repeat((byte)0x91, 60_000).Append((byte)0xc0).ToArray();
        var put = new PutRequest { Target = session.Ref(queue.Name) };
        put.Items.Add(ByteString.CopyFrom(nested));
        Assert.Equal(1, (await session.Queues.PutAsync(put)).Accepted);
        await AssertStillServingAsync();
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Payloads_over_the_limit_are_ResourceExhausted()
    {
        await using var session = await OpenAsync();
        var queue = await session.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = session.SessionId, Kind = ObjectKind.Queue });
        var big = new byte[(64 * 1024) + 10];
        big[0] = 0xc6; // bin 32
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(big.AsSpan(1), (uint)(big.Length - 5));
        var put = new PutRequest { Target = session.Ref(queue.Name) };
        put.Items.Add(ByteString.CopyFrom(big));
        var error = await Assert.ThrowsAsync<RpcException>(() => session.Queues.PutAsync(put).ResponseAsync);
        AssertStatus(error, StatusCode.ResourceExhausted, "ValueError");
        await AssertStillServingAsync();
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Unknown_typecodes_are_InvalidArgument_with_TypeError()
    {
        await using var session = await OpenAsync();
        var error = await Assert.ThrowsAsync<RpcException>(() => session.SharedValues.CreateValueAsync(new CreateValueRequest
        {
            SessionId = session.SessionId,
            Typecode = "z",
            Length = 1,
        }).ResponseAsync);
        AssertStatus(error, StatusCode.InvalidArgument, "TypeError");
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_named_condition_opened_without_a_lock_from_two_sessions_is_one_condition_over_one_rlock()
    {
        await using var first = await OpenAsync();
        await using var second = await OpenAsync();
        var name = UniqueName("cond");

        // What Python's Condition(name=...) sends from each process: create-or-attach, no lock.
        var created = await first.Synchronization.CreateConditionAsync(new CreateConditionRequest { SessionId = first.SessionId, Name = name });
        var attached = await second.Synchronization.CreateConditionAsync(new CreateConditionRequest { SessionId = second.SessionId, Name = name });

        Assert.Equal(ObjectKind.Rlock, created.LockKind);
        Assert.Equal(created, attached);
        Assert.True((await second.Synchronization.AcquireAsync(new AcquireRequest { Target = second.Ref(attached.LockName), Owner = "t" })).Acquired);
        var notify = await second.Synchronization.NotifyAsync(new NotifyRequest { Target = second.Ref(name), Owner = "t", N = 1 });
        Assert.Equal(0, notify.Woken);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_named_condition_opened_over_another_lock_is_AlreadyExists_naming_both_locks()
    {
        await using var session = await OpenAsync();
        var name = UniqueName("cond");
        var own = await session.Synchronization.CreateConditionAsync(new CreateConditionRequest { SessionId = session.SessionId, Name = name });
        var other = await session.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = session.SessionId, Kind = ObjectKind.Lock });

        var error = await Assert.ThrowsAsync<RpcException>(() => session.Synchronization.CreateConditionAsync(new CreateConditionRequest
        {
            SessionId = session.SessionId,
            Name = name,
            LockName = other.Name,
            LockKind = ObjectKind.Lock,
        }).ResponseAsync);

        AssertStatus(error, StatusCode.AlreadyExists, "FileExistsError");
        Assert.Contains(own.LockName, error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(other.Name, error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_value_attaches_with_a_typecode_of_the_same_kind_and_size_and_answers_its_own()
    {
        await using var python = await OpenAsync();
        await using var dotnet = await OpenAsync();
        var name = UniqueName("value");
        await python.SharedValues.CreateValueAsync(new CreateValueRequest
        {
            SessionId = python.SessionId,
            Name = name,
            Typecode = "l",
            Length = 1,
            Initial = ByteString.CopyFrom(BitConverter.GetBytes(-5L)),
        });

        var attached = await dotnet.SharedValues.CreateValueAsync(new CreateValueRequest { SessionId = dotnet.SessionId, Name = name, Typecode = "q", Length = 1 });

        Assert.Equal(("l", 8), (attached.Typecode, attached.ItemSize));
        var read = await dotnet.SharedValues.ReadAsync(new ReadRequest { Target = dotnet.Ref(name) });
        Assert.Equal(-5L, BitConverter.ToInt64(read.Data.Span));
        foreach (var other in new[] { "i", "Q", "d" })
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => dotnet.SharedValues.CreateValueAsync(
                new CreateValueRequest { SessionId = dotnet.SessionId, Name = name, Typecode = other, Length = 1 }).ResponseAsync);
            AssertStatus(error, StatusCode.AlreadyExists, "FileExistsError");
            Assert.Contains($"a Value of type 'l', not a Value of type '{other}'", error.Status.Detail, StringComparison.Ordinal);
        }
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Calls_without_a_session_are_rejected()
    {
        using var channel = Host.Address.CreateChannel();
        var queues = new Queues.QueuesClient(channel);
        var error = await Assert.ThrowsAsync<RpcException>(() => queues.CreateQueueAsync(new CreateQueueRequest { Kind = ObjectKind.Queue }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => queues.CreateQueueAsync(
            new CreateQueueRequest { SessionId = "no-such-session", Kind = ObjectKind.Queue }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Health_service_reports_serving()
    {
        using var channel = Host.Address.CreateChannel();
        var reply = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
    }

    private Task<BridgeSession> OpenAsync() => BridgeSession.OpenAsync(Host.Address, "host-tests", Token());

    private async Task AssertStillServingAsync()
    {
        Assert.False(Host.HasExited);
        Assert.Equal(Host.Pid, (await Host.InfoAsync(Token())).Pid);
    }

    private static void AssertStatus(RpcException error, StatusCode code, string pythonException)
    {
        Assert.Equal(code, error.StatusCode);
        Assert.Equal(pythonException, error.Trailers.GetValue("bridge-exception"));
        Assert.False(string.IsNullOrWhiteSpace(error.Status.Detail));
    }

    private static string UniqueName(string stem) => $"{stem}-{Guid.NewGuid():N}";

    public void Dispose() => _testTimeout.Dispose();

    private CancellationToken Token() => _testTimeout.Token;
}

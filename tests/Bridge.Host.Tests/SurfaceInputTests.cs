using Bridge.Client;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Grpc.Core;
using Xunit.Abstractions;

namespace Bridge.Host.Tests;

/// <summary>
/// Bad input at the gRPC surface, sent by a raw client (no Bridge.Client or Python checks in
/// between): oversized messages, bad names, bad timeouts, unknown or ended sessions and
/// objects, malformed MessagePack. Each gets a precise status with its Python exception
/// (never UNKNOWN or INTERNAL), and the host keeps serving and keeps its objects.
/// </summary>
public sealed class SurfaceInputTests(HostFixture fixture, ITestOutputHelper output) : IClassFixture<HostFixture>, IDisposable
{
    private const int TestTimeout = 30_000;

    private const int MiB = 1024 * 1024;

    private readonly CancellationTokenSource _testTimeout = new(TimeSpan.FromMilliseconds(TestTimeout));

    private HostProcess Host => fixture.Host;

    /// <summary>Names no object may have (created, attached or targeted): what the rule in ObjectNames refuses.</summary>
    public static TheoryData<string, string> BadNames() => new()
    {
        { "nul", "a\0b" },
        { "newline", "a\nb" },
        { "tab", "a\tb" },
        { "escape", "\u001b[31mred" },
        { "delete", "a\u007fb" },
        { "C1 next line", "a\u0085b" },
        { "no-break space", "a\u00a0b" },
        { "zero-width space", "a\u200bb" },
        { "replacement char", "a\ufffdb" },
        { "non-ASCII letter", "caf\u00e9" },
        { "space", " " },
        { "spaces", "   " },
        { "inner space", "a b" },
        { "201 chars", new string('n', 201) },
        { "10 kB", new string('n', 10 * 1024) },
        { "10 kB of NUL", new string('\0', 10 * 1024) },
    };

    [Theory(Timeout = TestTimeout)]
    [MemberData(nameof(BadNames))]
    public async Task Bad_names_are_InvalidArgument_on_every_way_in(string label, string name)
    {
        await using var session = await OpenAsync();
        var id = session.SessionId;
        var existing = (await session.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = id, Kind = ObjectKind.Queue }, cancellationToken: Token())).Name;
        var calls = new (string Call, Func<Task> Run)[]
        {
            ("CreateLock", () => session.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = id, Name = name, Kind = ObjectKind.Lock }, cancellationToken: Token()).ResponseAsync),
            ("CreateLock attach", () => session.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = id, Name = name, Mode = OpenMode.Attach }, cancellationToken: Token()).ResponseAsync),
            ("CreateEvent", () => session.Synchronization.CreateEventAsync(new CreateEventRequest { SessionId = id, Name = name }, cancellationToken: Token()).ResponseAsync),
            ("CreateBarrier", () => session.Synchronization.CreateBarrierAsync(new CreateBarrierRequest { SessionId = id, Name = name, Parties = 2 }, cancellationToken: Token()).ResponseAsync),
            ("CreateCondition", () => session.Synchronization.CreateConditionAsync(new CreateConditionRequest { SessionId = id, Name = name }, cancellationToken: Token()).ResponseAsync),
            ("CreateCondition lock_name", () => session.Synchronization.CreateConditionAsync(new CreateConditionRequest { SessionId = id, LockName = name, LockKind = ObjectKind.Rlock }, cancellationToken: Token()).ResponseAsync),
            ("CreateQueue", () => session.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = id, Name = name, Kind = ObjectKind.Queue }, cancellationToken: Token()).ResponseAsync),
            ("CreateValue", () => session.SharedValues.CreateValueAsync(new CreateValueRequest { SessionId = id, Name = name, Typecode = "i", Length = 1 }, cancellationToken: Token()).ResponseAsync),
            ("CreateValue lock_name", () => session.SharedValues.CreateValueAsync(new CreateValueRequest { SessionId = id, Typecode = "i", Length = 1, LockName = name, LockKind = ObjectKind.Rlock }, cancellationToken: Token()).ResponseAsync),
            ("Acquire", () => session.Synchronization.AcquireAsync(new AcquireRequest { Target = session.Ref(name), Owner = "t" }, cancellationToken: Token()).ResponseAsync),
            ("SetEvent", () => session.Synchronization.SetEventAsync(new EventRequest { Target = session.Ref(name) }, cancellationToken: Token()).ResponseAsync),
            ("Put", () => session.Queues.PutAsync(new PutRequest { Target = session.Ref(name), Items = { ByteString.CopyFrom(0xc0) } }, cancellationToken: Token()).ResponseAsync),
            ("Read", () => session.SharedValues.ReadAsync(new ReadRequest { Target = session.Ref(name) }, cancellationToken: Token()).ResponseAsync),
            ("Detach", () => session.Sessions.DetachAsync(new DetachRequest { SessionId = id, Kind = ObjectKind.Queue, Name = name }, cancellationToken: Token()).ResponseAsync),
        };

        foreach (var (call, run) in calls)
        {
            var error = await RefusedAsync(call, run);
            Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{label}, {call}: {error.StatusCode} {error.Status.Detail}");
            Assert.Equal("ValueError", error.Trailers.GetValue("bridge-exception"));
            Assert.Contains("object name", error.Status.Detail, StringComparison.Ordinal);

            // The reason is readable: bounded, and no control character of the name is echoed.
            Assert.True(error.Status.Detail.Length < 400, $"{call}: a {error.Status.Detail.Length}-character message");
            Assert.DoesNotContain(error.Status.Detail, char.IsControl);
        }

        // Nothing was made, and the host keeps the session's queue.
        var state = await session.Queues.GetQueueStateAsync(new QueueStateRequest { Target = session.Ref(existing) }, cancellationToken: Token());
        Assert.Equal(0, state.Size);
        await AssertServingAsync();
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Empty_names_create_anonymous_objects_but_cannot_attach_or_be_targeted()
    {
        await using var session = await OpenAsync();
        var created = await session.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = session.SessionId, Kind = ObjectKind.Lock }, cancellationToken: Token());
        Assert.StartsWith("~", created.Name, StringComparison.Ordinal);

        foreach (var run in new Func<Task>[]
        {
            () => session.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = session.SessionId, Mode = OpenMode.Attach }, cancellationToken: Token()).ResponseAsync,
            () => session.Synchronization.AcquireAsync(new AcquireRequest { Target = session.Ref("") }, cancellationToken: Token()).ResponseAsync,
            () => session.Synchronization.AcquireAsync(new AcquireRequest(), cancellationToken: Token()).ResponseAsync,
            () => session.Sessions.DetachAsync(new DetachRequest { SessionId = session.SessionId, Kind = ObjectKind.Lock }, cancellationToken: Token()).ResponseAsync,
            () => session.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = session.SessionId, Name = "~" + Guid.NewGuid().ToString("N"), Kind = ObjectKind.Lock }, cancellationToken: Token()).ResponseAsync,
        })
        {
            AssertStatus(await Assert.ThrowsAsync<RpcException>(run), StatusCode.InvalidArgument, "ValueError");
        }
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_name_that_is_not_UTF8_is_InvalidArgument()
    {
        await using var session = await OpenAsync();

        // CreateLockRequest { session_id = 1, name = 2 (0xff 0xfe: not UTF-8), kind = 4 (LOCK) }.
        var id = System.Text.Encoding.ASCII.GetBytes(session.SessionId);
        byte[] body = [0x0a, (byte)id.Length, .. id, 0x12, 0x03, (byte)'a', 0xff, 0xfe, 0x20, 0x01];
        using var channel = Host.Address.CreateChannel();
        var method = new Method<byte[], byte[]>(MethodType.Unary, "bridge.v1.Synchronization", "CreateLock", Raw, Raw);
        var error = await Assert.ThrowsAsync<RpcException>(() => channel.CreateCallInvoker().AsyncUnaryCall(method, null, Options(), body).ResponseAsync);
        AssertStatus(error, StatusCode.InvalidArgument, "ValueError");
        output.WriteLine(error.Status.Detail);
    }

    public static TheoryData<double> BadTimeouts() => new() { -1.0, -1e-9, double.NaN, double.NegativeInfinity, double.MinValue };

    /// <summary>+inf and anything too long for a TimeSpan or Task.WaitAsync (4294967 s) is forever.</summary>
    public static TheoryData<double> HugeTimeouts() => new() { double.PositiveInfinity, double.MaxValue, 1e300, 1e12, 1e9, 4294968.0, 1e-300 };

    [Theory(Timeout = TestTimeout)]
    [MemberData(nameof(BadTimeouts))]
    public async Task Negative_and_NaN_timeouts_are_InvalidArgument_on_every_blocking_call(double timeout)
    {
        await using var session = await OpenAsync();
        var wait = new WaitPolicy { Block = true, TimeoutSeconds = timeout };
        foreach (var (call, run) in await BlockingCallsAsync(session, satisfied: false))
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Token());
            deadline.CancelAfter(TimeSpan.FromSeconds(5));
            var error = await Assert.ThrowsAsync<RpcException>(() => run(wait, deadline.Token));
            Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{call}, timeout {timeout}: {error.StatusCode} {error.Status.Detail}");
            Assert.Equal("ValueError", error.Trailers.GetValue("bridge-exception"));
            Assert.Contains("timeout", error.Status.Detail, StringComparison.Ordinal);
        }

        // block = false ignores the timeout, as the stdlib does.
        foreach (var (call, run) in await BlockingCallsAsync(session, satisfied: true))
        {
            await run(new WaitPolicy { Block = false, TimeoutSeconds = timeout }, Token());
        }

        await AssertServingAsync();
    }

    [Theory(Timeout = TestTimeout)]
    [MemberData(nameof(HugeTimeouts))]
    public async Task Huge_and_infinite_timeouts_wait_without_overflow(double timeout)
    {
        await using var session = await OpenAsync();
        var wait = new WaitPolicy { Block = true, TimeoutSeconds = timeout };

        // Satisfied at once: answered at once.
        foreach (var (call, run) in await BlockingCallsAsync(session, satisfied: true))
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Token());
            deadline.CancelAfter(TimeSpan.FromSeconds(5));
            await run(wait, deadline.Token);
        }

        // Not satisfied: each waits (no overflow into an error, no zero wait) until the
        // client cancels it. 1e-300 s is a zero wait: it ends at once, not with an error.
        var calls = await BlockingCallsAsync(session, satisfied: false);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Token());
        var pending = calls.Select(c => (c.Call, Task: c.Run(wait, cancel.Token))).ToArray();
        await Task.Delay(timeout < 1 ? 1000 : 400, Token());
        foreach (var (call, task) in pending)
        {
            if (timeout < 1)
            {
                Assert.True(task.IsCompleted, $"{call} with a timeout of {timeout} s is still waiting");
                if (call == "WaitBarrier")
                {
                    // A party's timeout breaks the barrier, as threading.Barrier's does.
                    AssertStatus(await Assert.ThrowsAsync<RpcException>(() => task), StatusCode.FailedPrecondition, "BrokenBarrierError");
                }
                else
                {
                    await task;
                }
            }
            else
            {
                Assert.False(task.IsCompleted, $"{call} with a timeout of {timeout} s ended: {task.Exception?.InnerException?.Message}");
            }
        }

        await cancel.CancelAsync();
        foreach (var (call, task) in pending.Where(_ => timeout >= 1))
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => task);
            Assert.True(error.StatusCode == StatusCode.Cancelled, $"{call}: {error.StatusCode} {error.Status.Detail}");
        }

        await AssertServingAsync();
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Oversized_messages_and_payloads_are_ResourceExhausted_and_the_host_keeps_its_objects()
    {
        await using var session = await OpenAsync();
        var limit = (await Host.InfoAsync(Token())).MaxPayloadBytes;
        Assert.Equal(64 * 1024, limit);
        var (kept, keptRef) = await KeptQueueAsync(session);

        // The gRPC message limit is the payload limit plus 4 MiB (HostingExtensions): a
        // larger request is refused before it is parsed, on every kind of method.
        var tooBig = new PutRequest { Target = keptRef, Items = { Bin((int)limit + (4 * MiB) + 16) } };
        AssertStatus(await Assert.ThrowsAsync<RpcException>(() => session.Queues.PutAsync(tooBig, cancellationToken: Token()).ResponseAsync), StatusCode.ResourceExhausted);
        using var channel = Host.Address.CreateChannel();
        var invoker = channel.CreateCallInvoker();
        var hugeBody = new byte[(int)limit + (4 * MiB) + 16];
        var watch = new Method<byte[], byte[]>(MethodType.ServerStreaming, "bridge.v1.Sessions", "Watch", Raw, Raw);
        using (var call = invoker.AsyncServerStreamingCall(watch, null, Options(), hugeBody))
        {
            AssertStatus(await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(Token())), StatusCode.ResourceExhausted);
        }

        var work = new Method<byte[], byte[]>(MethodType.DuplexStreaming, "bridge.v1.Execution", "Work", Raw, Raw);
        using (var call = invoker.AsyncDuplexStreamingCall(work, null, Options()))
        {
            try
            {
                await call.RequestStream.WriteAsync(hugeBody, Token());
            }
            catch (RpcException)
            {
                // The host may refuse the call before the client has finished writing; its
                // status comes with the response.
            }

            AssertStatus(await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(Token())), StatusCode.ResourceExhausted);
        }

        // One item over the payload limit, in a message under the gRPC limit: the item's
        // size is named, nothing of the batch is enqueued.
        var overItem = new PutRequest { Target = keptRef, Items = { ByteString.CopyFrom(0xc0), Bin((int)limit + 1) } };
        var itemError = await Assert.ThrowsAsync<RpcException>(() => session.Queues.PutAsync(overItem, cancellationToken: Token()).ResponseAsync);
        AssertStatus(itemError, StatusCode.ResourceExhausted, "ValueError");
        Assert.Contains($"item 1: payload of {limit + 1} bytes exceeds the limit of {limit} bytes", itemError.Status.Detail, StringComparison.Ordinal);
        await session.Queues.PutAsync(new PutRequest { Target = keptRef, Items = { Bin((int)limit) } }, cancellationToken: Token());

        // Shared values: a write, an initial content and a size over the limit; sizes whose
        // product overflows a long are refused too, not allocated.
        var value = await session.SharedValues.CreateValueAsync(new CreateValueRequest { SessionId = session.SessionId, Typecode = "B", Length = 16, IsArray = true }, cancellationToken: Token());
        foreach (var run in new Func<Task>[]
        {
            () => session.SharedValues.WriteAsync(new WriteRequest { Target = session.Ref(value.Name), Data = ByteString.CopyFrom(new byte[limit + 1]) }, cancellationToken: Token()).ResponseAsync,
            () => session.SharedValues.CreateValueAsync(new CreateValueRequest { SessionId = session.SessionId, Typecode = "d", Length = (limit / 8) + 1, IsArray = true }, cancellationToken: Token()).ResponseAsync,
            () => session.SharedValues.CreateValueAsync(new CreateValueRequest { SessionId = session.SessionId, Typecode = "B", Length = 4, IsArray = true, Initial = ByteString.CopyFrom(new byte[limit + 1]) }, cancellationToken: Token()).ResponseAsync,
            () => session.SharedValues.CreateValueAsync(new CreateValueRequest { SessionId = session.SessionId, Typecode = "q", Length = long.MaxValue, IsArray = true }, cancellationToken: Token()).ResponseAsync,
            () => session.SharedValues.CreateValueAsync(new CreateValueRequest { SessionId = session.SessionId, Typecode = "q", Length = 1L << 61, IsArray = true }, cancellationToken: Token()).ResponseAsync,
            () => session.SharedValues.CreateValueAsync(new CreateValueRequest { SessionId = session.SessionId, Typecode = "u", Length = (1L << 62) + 1, IsArray = true }, cancellationToken: Token()).ResponseAsync,
        })
        {
            AssertStatus(await Assert.ThrowsAsync<RpcException>(run), StatusCode.ResourceExhausted, "ValueError");
        }

        // A Get's prefetch and a Read's count far over anything are bounded, not errors.
        var state = await session.Queues.GetQueueStateAsync(new QueueStateRequest { Target = keptRef }, cancellationToken: Token());
        Assert.Equal(2, state.Size);
        var read = await session.SharedValues.ReadAsync(new ReadRequest { Target = session.Ref(value.Name), Count = 0 }, cancellationToken: Token());
        Assert.Equal(16, read.Data.Length);
        AssertStatus(
            await Assert.ThrowsAsync<RpcException>(() => session.SharedValues.ReadAsync(new ReadRequest { Target = session.Ref(value.Name), Count = long.MaxValue }, cancellationToken: Token()).ResponseAsync),
            StatusCode.InvalidArgument, "IndexError");

        await AssertKeptAsync(kept, extra: 1);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Unknown_and_ended_sessions_are_NotFound_and_malformed_ids_InvalidArgument()
    {
        await using var session = await OpenAsync();
        var (kept, keptRef) = await KeptQueueAsync(session);
        using var channel = Host.Address.CreateChannel();
        var sessions = new Sessions.SessionsClient(channel);
        var ended = (await sessions.HelloAsync(new HelloRequest { ClientName = "ends", Language = "test" }, cancellationToken: Token())).SessionId;
        await new Queues.QueuesClient(channel).CreateQueueAsync(new CreateQueueRequest { SessionId = ended, Name = kept, Kind = ObjectKind.Queue }, cancellationToken: Token());
        await sessions.GoodbyeAsync(new GoodbyeRequest { SessionId = ended }, cancellationToken: Token());

        foreach (var id in new[] { ended, Guid.NewGuid().ToString("N"), "never-issued", "\0\n", new string('s', 10 * 1024) })
        {
            var target = new ObjectRef { SessionId = id, Name = kept };
            var queues = new Queues.QueuesClient(channel);
            var sync = new Synchronization.SynchronizationClient(channel);
            foreach (var (call, run) in new (string, Func<Task>)[]
            {
                ("KeepAlive", () => sessions.KeepAliveAsync(new KeepAliveRequest { SessionId = id }, cancellationToken: Token()).ResponseAsync),
                ("CreateLock", () => sync.CreateLockAsync(new CreateLockRequest { SessionId = id, Kind = ObjectKind.Lock }, cancellationToken: Token()).ResponseAsync),
                ("CreateQueue attach", () => queues.CreateQueueAsync(new CreateQueueRequest { SessionId = id, Name = kept, Mode = OpenMode.Attach }, cancellationToken: Token()).ResponseAsync),
                ("Put", () => queues.PutAsync(new PutRequest { Target = target, Items = { ByteString.CopyFrom(0x01) } }, cancellationToken: Token()).ResponseAsync),
                ("Get", () => queues.GetAsync(new GetRequest { Target = target, MaxItems = 1, Wait = new WaitPolicy { Block = false } }, cancellationToken: Token()).ResponseAsync),
                ("GetQueueState", () => queues.GetQueueStateAsync(new QueueStateRequest { Target = target }, cancellationToken: Token()).ResponseAsync),
                ("Watch", async () =>
                {
                    using var watch = sessions.Watch(new WatchRequest { SessionId = id }, cancellationToken: Token());
                    await watch.ResponseStream.MoveNext(Token());
                }),
            })
            {
                // An id the host issued or could have (ASCII letters, digits, '-' and '_', at
                // most 64): NOT_FOUND. Anything else was never an id: INVALID_ARGUMENT.
                var wellFormed = id.Length <= 64 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');
                var error = await RefusedAsync($"session '{id[..Math.Min(id.Length, 20)]}', {call}", run);
                var expected = wellFormed ? (StatusCode.NotFound, "ConnectionResetError") : (StatusCode.InvalidArgument, "ValueError");
                Assert.True(error.StatusCode == expected.Item1, $"session '{id[..Math.Min(id.Length, 20)]}', {call}: {error.StatusCode} {error.Status.Detail}");
                Assert.Equal(expected.Item2, error.Trailers.GetValue("bridge-exception"));
                Assert.True(error.Status.Detail.Length < 400, $"{call}: a {error.Status.Detail.Length}-character message");
            }
        }

        // Goodbye and Detach are idempotent: after the end, or for a session never issued,
        // they change nothing and are not errors.
        await sessions.GoodbyeAsync(new GoodbyeRequest { SessionId = ended }, cancellationToken: Token());
        await sessions.DetachAsync(new DetachRequest { SessionId = ended, Kind = ObjectKind.Queue, Name = kept }, cancellationToken: Token());
        await sessions.GoodbyeAsync(new GoodbyeRequest { SessionId = Guid.NewGuid().ToString("N") }, cancellationToken: Token());
        AssertStatus(await Assert.ThrowsAsync<RpcException>(() => sessions.GoodbyeAsync(new GoodbyeRequest(), cancellationToken: Token()).ResponseAsync), StatusCode.InvalidArgument, "ValueError");
        await AssertKeptAsync(kept);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Unknown_freed_and_misused_objects_are_NotFound_or_FailedPrecondition()
    {
        await using var session = await OpenAsync();
        var (kept, keptRef) = await KeptQueueAsync(session);
        var id = session.SessionId;
        var sync = session.Synchronization;
        var absent = Ref(session, "never-created");

        // Never created, or freed after the last user detached: NOT_FOUND.
        var freed = (await sync.CreateEventAsync(new CreateEventRequest { SessionId = id }, cancellationToken: Token())).Name;
        await session.Sessions.DetachAsync(new DetachRequest { SessionId = id, Kind = ObjectKind.Event, Name = freed }, cancellationToken: Token());
        foreach (var (call, run) in new (string, Func<Task>)[]
        {
            ("Acquire", () => sync.AcquireAsync(new AcquireRequest { Target = absent, Owner = "t" }, cancellationToken: Token()).ResponseAsync),
            ("Release", () => sync.ReleaseAsync(new ReleaseRequest { Target = absent, Owner = "t" }, cancellationToken: Token()).ResponseAsync),
            ("SetEvent", () => sync.SetEventAsync(new EventRequest { Target = absent }, cancellationToken: Token()).ResponseAsync),
            ("SetEvent freed", () => sync.SetEventAsync(new EventRequest { Target = session.Ref(freed) }, cancellationToken: Token()).ResponseAsync),
            ("WaitEvent freed", () => sync.WaitEventAsync(new WaitEventRequest { Target = session.Ref(freed) }, cancellationToken: Token()).ResponseAsync),
            ("WaitBarrier", () => sync.WaitBarrierAsync(new WaitBarrierRequest { Target = absent }, cancellationToken: Token()).ResponseAsync),
            ("Notify", () => sync.NotifyAsync(new NotifyRequest { Target = absent, Owner = "t" }, cancellationToken: Token()).ResponseAsync),
            ("Get", () => session.Queues.GetAsync(new GetRequest { Target = absent, MaxItems = 1 }, cancellationToken: Token()).ResponseAsync),
            ("Read", () => session.SharedValues.ReadAsync(new ReadRequest { Target = absent }, cancellationToken: Token()).ResponseAsync),
            ("Acquire a queue's name", () => sync.AcquireAsync(new AcquireRequest { Target = keptRef, Owner = "t" }, cancellationToken: Token()).ResponseAsync),
            ("Attach", () => sync.CreateBarrierAsync(new CreateBarrierRequest { SessionId = id, Name = "never-created", Mode = OpenMode.Attach }, cancellationToken: Token()).ResponseAsync),
        })
        {
            var error = await RefusedAsync(call, run);
            Assert.True(error.StatusCode == StatusCode.NotFound, $"{call}: {error.StatusCode} {error.Status.Detail}");
            Assert.Equal("FileNotFoundError", error.Trailers.GetValue("bridge-exception"));
        }

        // Detach drops a reference the session may not hold: a no-op, as Goodbye is twice.
        await session.Sessions.DetachAsync(new DetachRequest { SessionId = id, Kind = ObjectKind.Lock, Name = "never-created" }, cancellationToken: Token());
        await session.Sessions.DetachAsync(new DetachRequest { SessionId = id, Kind = ObjectKind.Event, Name = freed }, cancellationToken: Token());

        // Pools: an id the host never issued, for every pool call.
        var execution = session.Execution;
        foreach (var pool in new[] { "no-such-pool", "", new string('p', 10 * 1024), "\0" })
        {
            foreach (var (call, run) in new (string, Func<Task>)[]
            {
                ("SubmitTasks", () => execution.SubmitTasksAsync(new SubmitTasksRequest { SessionId = id, PoolId = pool }, cancellationToken: Token()).ResponseAsync),
                ("ClosePool", () => execution.ClosePoolAsync(new PoolRequest { SessionId = id, PoolId = pool }, cancellationToken: Token()).ResponseAsync),
                ("TerminatePool", () => execution.TerminatePoolAsync(new PoolRequest { SessionId = id, PoolId = pool }, cancellationToken: Token()).ResponseAsync),
                ("GetPoolState", () => execution.GetPoolStateAsync(new PoolRequest { SessionId = id, PoolId = pool }, cancellationToken: Token()).ResponseAsync),
                ("SignalWorker", () => execution.SignalWorkerAsync(new SignalWorkerRequest { SessionId = id, PoolId = pool, Pid = 1, Signal = 9 }, cancellationToken: Token()).ResponseAsync),
                ("WatchPool", async () =>
                {
                    using var watch = execution.WatchPool(new WatchPoolRequest { SessionId = id, PoolId = pool }, cancellationToken: Token());
                    await watch.ResponseStream.MoveNext(Token());
                }),
            })
            {
                var error = await RefusedAsync($"pool '{pool[..Math.Min(pool.Length, 20)]}', {call}", run);
                var expected = pool == "no-such-pool" ? StatusCode.NotFound : StatusCode.InvalidArgument;
                Assert.True(error.StatusCode == expected, $"pool '{pool[..Math.Min(pool.Length, 20)]}', {call}: {error.StatusCode} {error.Status.Detail}");
                Assert.True(error.Status.Detail.Length < 400, $"{call}: a {error.Status.Detail.Length}-character message");
            }
        }

        // The object's state forbids the call: FAILED_PRECONDITION with the stdlib's exception.
        var lockName = (await sync.CreateLockAsync(new CreateLockRequest { SessionId = id, Kind = ObjectKind.Lock }, cancellationToken: Token())).Name;
        var rlock = (await sync.CreateLockAsync(new CreateLockRequest { SessionId = id, Kind = ObjectKind.Rlock }, cancellationToken: Token())).Name;
        var bounded = (await sync.CreateLockAsync(new CreateLockRequest { SessionId = id, Kind = ObjectKind.BoundedSemaphore, InitialValue = 1 }, cancellationToken: Token())).Name;
        var condition = await sync.CreateConditionAsync(new CreateConditionRequest { SessionId = id }, cancellationToken: Token());
        var barrier = (await sync.CreateBarrierAsync(new CreateBarrierRequest { SessionId = id, Parties = 2 }, cancellationToken: Token())).Name;
        await sync.AbortBarrierAsync(new BarrierRequest { Target = session.Ref(barrier) }, cancellationToken: Token());
        var joinable = (await session.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = id, Kind = ObjectKind.JoinableQueue }, cancellationToken: Token())).Name;
        var plain = (await session.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = id, Kind = ObjectKind.Queue }, cancellationToken: Token())).Name;
        foreach (var (call, run, python) in new (string, Func<Task>, string)[]
        {
            ("Release unheld Lock", () => sync.ReleaseAsync(new ReleaseRequest { Target = session.Ref(lockName), Owner = "t" }, cancellationToken: Token()).ResponseAsync, "ValueError"),
            ("Release unowned RLock", () => sync.ReleaseAsync(new ReleaseRequest { Target = session.Ref(rlock), Owner = "t" }, cancellationToken: Token()).ResponseAsync, "AssertionError"),
            ("Release BoundedSemaphore", () => sync.ReleaseAsync(new ReleaseRequest { Target = session.Ref(bounded), Owner = "t" }, cancellationToken: Token()).ResponseAsync, "ValueError"),
            ("WaitCondition unowned", () => sync.WaitConditionAsync(new WaitConditionRequest { Target = session.Ref(condition.Name), Owner = "t" }, cancellationToken: Token()).ResponseAsync, "AssertionError"),
            ("Notify unowned", () => sync.NotifyAsync(new NotifyRequest { Target = session.Ref(condition.Name), Owner = "t" }, cancellationToken: Token()).ResponseAsync, "AssertionError"),
            ("WaitBarrier broken", () => sync.WaitBarrierAsync(new WaitBarrierRequest { Target = session.Ref(barrier) }, cancellationToken: Token()).ResponseAsync, "BrokenBarrierError"),
            ("TaskDone too often", () => session.Queues.TaskDoneAsync(new TaskDoneRequest { Target = session.Ref(joinable), Count = 1 }, cancellationToken: Token()).ResponseAsync, "ValueError"),
            ("TaskDone plain queue", () => session.Queues.TaskDoneAsync(new TaskDoneRequest { Target = session.Ref(plain), Count = 1 }, cancellationToken: Token()).ResponseAsync, ""),
            ("Ack unleased", () => session.Queues.AckAsync(new AckRequest { Target = session.Ref(plain), Count = 5 }, cancellationToken: Token()).ResponseAsync, ""),
        })
        {
            var error = await RefusedAsync(call, run);
            Assert.True(error.StatusCode is StatusCode.FailedPrecondition or StatusCode.InvalidArgument, $"{call}: {error.StatusCode} {error.Status.Detail}");
            output.WriteLine($"{call}: {error.StatusCode} {error.Trailers.GetValue("bridge-exception")} {error.Status.Detail}");
            if (python.Length > 0)
            {
                Assert.Equal(python, error.Trailers.GetValue("bridge-exception"));
            }
        }

        await AssertKeptAsync(kept);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Malformed_MessagePack_items_are_InvalidArgument_and_value_bytes_are_opaque()
    {
        await using var session = await OpenAsync();
        var (kept, keptRef) = await KeptQueueAsync(session);

        // Queue items are checked to be one well-formed MessagePack value (PayloadRules).
        var bad = new (string Why, byte[] Item)[]
        {
            ("empty", []),
            ("never-used type 0xc1", [0xc1]),
            ("array of 2 with 1", [0x92, 0x01]),
            ("str 8 cut short", [0xd9, 0x10, 0x61]),
            ("bin 32 header cut", [0xc6, 0x00, 0x00]),
            ("bin 32 of 4 GiB", [0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]),
            ("array 32 of 4G elements", [0xdd, 0xff, 0xff, 0xff, 0xff]),
            ("map 32 of 4G pairs", [0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0]),
            ("ext 8 cut", [0xc7, 0x05, 0x01, 0x00]),
            ("fixext 16 cut", [0xd8, 0x01, 0x00]),
            ("float 64 cut", [0xcb, 0x00, 0x00]),
            ("two values", [0x01, 0x02]),
            ("trailing garbage", [0x91, 0xc0, 0xff, 0xc1]),
            ("60k nested arrays, unterminated", [.. Enumerable.Repeat((byte)0x91, 60_000)]),
        };
        foreach (var (why, item) in bad)
        {
            var put = new PutRequest { Target = keptRef, Items = { ByteString.CopyFrom(0xc0), ByteString.CopyFrom(item) } };
            var error = await RefusedAsync(why, () => session.Queues.PutAsync(put, cancellationToken: Token()).ResponseAsync);
            Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{why}: {error.StatusCode} {error.Status.Detail}");
            Assert.Equal("ValueError", error.Trailers.GetValue("bridge-exception"));
            Assert.StartsWith("item 1: payload ", error.Status.Detail, StringComparison.Ordinal);
        }

        // Deep nesting that is well-formed is an item like any other (no recursion in the host).
        byte[] deep = [.. Enumerable.Repeat((byte)0x91, 60_000), 0xc0];
        await session.Queues.PutAsync(new PutRequest { Target = keptRef, Items = { ByteString.CopyFrom(deep) } }, cancellationToken: Token());

        // Shared values are C memory, not MessagePack: any bytes round-trip unchanged.
        var random = new Random(20261203);
        var garbage = new byte[4096];
        random.NextBytes(garbage);
        garbage[0] = 0xc1;
        var value = await session.SharedValues.CreateValueAsync(
            new CreateValueRequest { SessionId = session.SessionId, Typecode = "d", Length = garbage.Length / 8, IsArray = true, Initial = ByteString.CopyFrom(garbage) },
            cancellationToken: Token());
        Assert.Equal(garbage, (await session.SharedValues.ReadAsync(new ReadRequest { Target = session.Ref(value.Name) }, cancellationToken: Token())).Data.ToByteArray());
        random.NextBytes(garbage);
        await session.SharedValues.WriteAsync(new WriteRequest { Target = session.Ref(value.Name), Data = ByteString.CopyFrom(garbage) }, cancellationToken: Token());
        Assert.Equal(garbage, (await session.SharedValues.ReadAsync(new ReadRequest { Target = session.Ref(value.Name) }, cancellationToken: Token())).Data.ToByteArray());
        AssertStatus(
            await Assert.ThrowsAsync<RpcException>(() => session.SharedValues.WriteAsync(new WriteRequest { Target = session.Ref(value.Name), Data = ByteString.CopyFrom(garbage, 0, 7) }, cancellationToken: Token()).ResponseAsync),
            StatusCode.InvalidArgument, "ValueError");
        foreach (var (index, count) in new[] { (-1L, 0L), (long.MaxValue, 1L), (long.MinValue, 1L), (1L, long.MaxValue), (long.MaxValue, long.MaxValue) })
        {
            var error = await RefusedAsync($"Read at {index}, {count}", () => session.SharedValues.ReadAsync(new ReadRequest { Target = session.Ref(value.Name), Index = index, Count = count }, cancellationToken: Token()).ResponseAsync);
            AssertStatus(error, StatusCode.InvalidArgument, "IndexError");
            if (index != 1)
            {
                var write = await RefusedAsync($"Write at {index}", () => session.SharedValues.WriteAsync(new WriteRequest { Target = session.Ref(value.Name), Index = index, Data = ByteString.CopyFrom(new byte[8]) }, cancellationToken: Token()).ResponseAsync);
                AssertStatus(write, StatusCode.InvalidArgument, "IndexError");
            }
        }

        await AssertKeptAsync(kept, extra: 1);
    }

    /// <summary>Owners no call may name: longer than 64 characters, or with a character outside ASCII letters, digits and _ . - : /.</summary>
    public static TheoryData<string, string> BadOwners() => new()
    {
        { "65 chars", new string('o', 65) },
        { "10 kB", new string('o', 10 * 1024) },
        { "newline", "a\nb" },
        { "nul", "\0" },
        { "escape", "\u001b[2J" },
        { "space", "a b" },
        { "non-ASCII letter", "caf\u00e9" },
    };

    [Theory(Timeout = TestTimeout)]
    [MemberData(nameof(BadOwners))]
    public async Task Owners_over_64_characters_or_with_other_characters_are_InvalidArgument_on_every_call(string label, string owner)
    {
        await using var session = await OpenAsync();
        var (kept, _) = await KeptQueueAsync(session);
        var id = session.SessionId;
        var sync = session.Synchronization;
        var rlock = (await sync.CreateLockAsync(new CreateLockRequest { SessionId = id, Kind = ObjectKind.Rlock }, cancellationToken: Token())).Name;
        var condition = await sync.CreateConditionAsync(new CreateConditionRequest { SessionId = id }, cancellationToken: Token());

        // The longest owner there may be holds the RLock: the bad owner's calls must not touch it.
        var longest = new string('o', 64);
        Assert.True((await sync.AcquireAsync(new AcquireRequest { Target = session.Ref(rlock), Owner = longest }, cancellationToken: Token())).Acquired);
        var free = new WaitPolicy { Block = false };
        foreach (var (call, run) in new (string, Func<Task>)[]
        {
            ("Acquire", () => sync.AcquireAsync(new AcquireRequest { Target = session.Ref(rlock), Owner = owner, Wait = free }, cancellationToken: Token()).ResponseAsync),
            ("Release", () => sync.ReleaseAsync(new ReleaseRequest { Target = session.Ref(rlock), Owner = owner }, cancellationToken: Token()).ResponseAsync),
            ("GetLockState", () => sync.GetLockStateAsync(new LockStateRequest { Target = session.Ref(rlock), Owner = owner }, cancellationToken: Token()).ResponseAsync),
            ("SurrenderLock", () => sync.SurrenderLockAsync(new SurrenderLockRequest { Target = session.Ref(rlock), Owner = owner, CacheToken = 1, Held = true }, cancellationToken: Token()).ResponseAsync),
            ("WaitCondition", () => sync.WaitConditionAsync(new WaitConditionRequest { Target = session.Ref(condition.Name), Owner = owner, Wait = free }, cancellationToken: Token()).ResponseAsync),
            ("Notify", () => sync.NotifyAsync(new NotifyRequest { Target = session.Ref(condition.Name), Owner = owner, N = 1 }, cancellationToken: Token()).ResponseAsync),
        })
        {
            var error = await RefusedAsync($"{label}, {call}", run);
            Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{label}, {call}: {error.StatusCode} {error.Status.Detail}");
            Assert.Equal("ValueError", error.Trailers.GetValue("bridge-exception"));
            Assert.StartsWith("owner ", error.Status.Detail, StringComparison.Ordinal);
            Assert.True(error.Status.Detail.Length < 200, $"{call}: a {error.Status.Detail.Length}-character message");
            Assert.DoesNotContain(error.Status.Detail, char.IsControl);
        }

        // The holder still holds it once; an empty owner and every allowed character are owners.
        var state = await sync.GetLockStateAsync(new LockStateRequest { Target = session.Ref(rlock), Owner = longest }, cancellationToken: Token());
        Assert.True(state.OwnedByCaller && state.Count == 1, state.ToString());
        await sync.ReleaseAsync(new ReleaseRequest { Target = session.Ref(rlock), Owner = longest }, cancellationToken: Token());
        foreach (var allowed in new[] { "", "140234", "dotnet-42-1", "a_b.c-d:e/f" })
        {
            Assert.True((await sync.AcquireAsync(new AcquireRequest { Target = session.Ref(rlock), Owner = allowed, Wait = free }, cancellationToken: Token())).Acquired, allowed);
            await sync.ReleaseAsync(new ReleaseRequest { Target = session.Ref(rlock), Owner = allowed }, cancellationToken: Token());
        }

        await AssertKeptAsync(kept);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_pools_interpreter_with_NUL_or_a_bad_variable_is_InvalidArgument_and_a_start_failure_is_printable()
    {
        await using var session = await OpenAsync();
        foreach (var (label, python) in new (string, PythonEnvironment)[]
        {
            ("NUL in executable", new PythonEnvironment { Executable = "/usr/bin/python3\0x" }),
            ("NUL in sys_path", new PythonEnvironment { Executable = "/usr/bin/python3", SysPath = { "/a\0b" } }),
            ("NUL in argv", new PythonEnvironment { Executable = "/usr/bin/python3", Argv = { "\0" } }),
            ("NUL in a variable", new PythonEnvironment { Executable = "/usr/bin/python3", Environment = { ["A"] = "\0" } }),
            ("'=' in a variable's name", new PythonEnvironment { Executable = "/usr/bin/python3", Environment = { ["A=B"] = "c" } }),
            ("empty variable name", new PythonEnvironment { Executable = "/usr/bin/python3", Environment = { [""] = "c" } }),
        })
        {
            var error = await RefusedAsync(label, () => session.Execution.CreatePoolAsync(
                new CreatePoolRequest { SessionId = session.SessionId, Processes = 1, Python = python }, cancellationToken: Token()).ResponseAsync);
            Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{label}: {error.StatusCode} {error.Status.Detail}");
            Assert.StartsWith("python.", error.Status.Detail, StringComparison.Ordinal);
            Assert.DoesNotContain(error.Status.Detail, char.IsControl);
        }

        // An executable that does not exist: the reason names it, cut and printable.
        var missing = "/nonexistent/\u001b[2J" + new string('p', 1024);
        var failed = await RefusedAsync("missing executable", () => session.Execution.CreatePoolAsync(
            new CreatePoolRequest { SessionId = session.SessionId, Processes = 1, Python = new PythonEnvironment { Executable = missing } }, cancellationToken: Token()).ResponseAsync);
        AssertStatus(failed, StatusCode.FailedPrecondition, "RuntimeError");
        Assert.StartsWith("a worker process did not start: ", failed.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(failed.Status.Detail, char.IsControl);
        Assert.True(failed.Status.Detail.Length < 400, $"a {failed.Status.Detail.Length}-character message");
        await AssertServingAsync();
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_client_name_with_control_characters_or_10_kB_long_is_kept_cut_and_printable()
    {
        using var channel = Host.Address.CreateChannel();
        var sessions = new Sessions.SessionsClient(channel);
        var forged = "python x.py\n2026-12-03 ERROR forged log line\u001b[2J\0" + new string('n', 10 * 1024);
        var id = (await sessions.HelloAsync(new HelloRequest { ClientName = forged, Language = "py\nthon", Pid = -1 }, cancellationToken: Token())).SessionId;
        try
        {
            var status = await sessions.GetHostStatusAsync(new HostStatusRequest(), cancellationToken: Token());
            var listed = Assert.Single(status.Sessions, s => s.SessionId == id);
            Assert.Equal(256, listed.ClientName.Length);
            Assert.StartsWith("python x.py?2026-12-03 ERROR forged log line?[2J?nnn", listed.ClientName, StringComparison.Ordinal);
            Assert.EndsWith("n\u2026", listed.ClientName, StringComparison.Ordinal);
            Assert.Equal("py?thon", listed.Language);
        }
        finally
        {
            await sessions.GoodbyeAsync(new GoodbyeRequest { SessionId = id }, cancellationToken: Token());
        }
    }

    public void Dispose() => _testTimeout.Dispose();

    private static async Task<RpcException> RefusedAsync(string call, Func<Task> run)
    {
        try
        {
            await run();
        }
        catch (RpcException error)
        {
            return error;
        }

        Assert.Fail($"{call} succeeded; it should have been refused");
        throw new InvalidOperationException("unreachable");
    }

    private static ObjectRef Ref(BridgeSession session, string name) => session.Ref(name);

    /// <summary>MessagePack bin 32 of <paramref name="total"/> bytes in all.</summary>
    private static ByteString Bin(int total)
    {
        var bytes = new byte[total];
        bytes[0] = 0xc6;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(1), total - 5);
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    /// <summary>A named queue holding one item "kept" (MessagePack fixstr), which the test's bad input must not disturb.</summary>
    private async Task<(string Name, ObjectRef Ref)> KeptQueueAsync(BridgeSession session)
    {
        var name = $"kept-{Guid.NewGuid():N}";
        await session.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = session.SessionId, Name = name, Kind = ObjectKind.Queue }, cancellationToken: Token());
        await session.Queues.PutAsync(new PutRequest { Target = session.Ref(name), Items = { ByteString.CopyFrom(Kept) } }, cancellationToken: Token());
        return (name, session.Ref(name));
    }

    private static readonly byte[] Kept = [0xa4, (byte)'k', (byte)'e', (byte)'p', (byte)'t'];

    /// <summary>The host still serves, and the queue's first item is still "kept" (with <paramref name="extra"/> items after it).</summary>
    private async Task AssertKeptAsync(string name, int extra = 0)
    {
        await AssertServingAsync();
        await using var reader = await OpenAsync();
        var target = reader.Ref(name);
        var info = await reader.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = reader.SessionId, Name = name, Mode = OpenMode.Attach }, cancellationToken: Token());
        Assert.Equal(ObjectKind.Queue, info.Kind);
        Assert.Equal(1 + extra, (await reader.Queues.GetQueueStateAsync(new QueueStateRequest { Target = target }, cancellationToken: Token())).Size);
        var got = await reader.Queues.GetAsync(new GetRequest { Target = target, MaxItems = 1, Wait = new WaitPolicy { Block = true, TimeoutSeconds = 5 } }, cancellationToken: Token());
        Assert.Equal(Kept, Assert.Single(got.Items).ToByteArray());
    }

    /// <summary>
    /// One call of every blocking method on new objects of <paramref name="session"/>: each
    /// returns at once when <paramref name="satisfied"/> (a free lock, a set event, a
    /// barrier of one party, an unbounded queue, a queue with an item, a joinable queue with
    /// nothing unfinished), and would wait otherwise (Condition.wait only ever waits, so it
    /// is only among those).
    /// </summary>
    private async Task<(string Call, Func<WaitPolicy, CancellationToken, Task> Run)[]> BlockingCallsAsync(BridgeSession session, bool satisfied)
    {
        var sync = session.Synchronization;
        var queues = session.Queues;
        var id = session.SessionId;
        var lockName = (await sync.CreateLockAsync(new CreateLockRequest { SessionId = id, Kind = ObjectKind.Lock }, cancellationToken: Token())).Name;
        var eventName = (await sync.CreateEventAsync(new CreateEventRequest { SessionId = id }, cancellationToken: Token())).Name;
        var barrier = (await sync.CreateBarrierAsync(new CreateBarrierRequest { SessionId = id, Parties = satisfied ? 1 : 2 }, cancellationToken: Token())).Name;
        var putQueue = (await queues.CreateQueueAsync(new CreateQueueRequest { SessionId = id, Kind = ObjectKind.Queue, Maxsize = satisfied ? 0 : 1 }, cancellationToken: Token())).Name;
        var getQueue = (await queues.CreateQueueAsync(new CreateQueueRequest { SessionId = id, Kind = ObjectKind.Queue }, cancellationToken: Token())).Name;
        var joinQueue = (await queues.CreateQueueAsync(new CreateQueueRequest { SessionId = id, Kind = ObjectKind.JoinableQueue }, cancellationToken: Token())).Name;
        var condition = await sync.CreateConditionAsync(new CreateConditionRequest { SessionId = id }, cancellationToken: Token());
        if (satisfied)
        {
            await sync.SetEventAsync(new EventRequest { Target = session.Ref(eventName) }, cancellationToken: Token());
            await queues.PutAsync(new PutRequest { Target = session.Ref(getQueue), Items = { ByteString.CopyFrom(0x01) } }, cancellationToken: Token());
        }
        else
        {
            await sync.AcquireAsync(new AcquireRequest { Target = session.Ref(lockName), Owner = "holder" }, cancellationToken: Token());
            await queues.PutAsync(new PutRequest { Target = session.Ref(putQueue), Items = { ByteString.CopyFrom(0x01) } }, cancellationToken: Token());
            await queues.PutAsync(new PutRequest { Target = session.Ref(joinQueue), Items = { ByteString.CopyFrom(0x01) } }, cancellationToken: Token());
            await sync.AcquireAsync(new AcquireRequest { Target = session.Ref(condition.LockName), Owner = "t" }, cancellationToken: Token());
        }

        List<(string, Func<WaitPolicy, CancellationToken, Task>)> calls =
        [
            ("Acquire", (wait, ct) => sync.AcquireAsync(new AcquireRequest { Target = session.Ref(lockName), Owner = "t", Wait = wait }, cancellationToken: ct).ResponseAsync),
            ("WaitEvent", (wait, ct) => sync.WaitEventAsync(new WaitEventRequest { Target = session.Ref(eventName), Wait = wait }, cancellationToken: ct).ResponseAsync),
            ("WaitBarrier", (wait, ct) => sync.WaitBarrierAsync(new WaitBarrierRequest { Target = session.Ref(barrier), Wait = wait }, cancellationToken: ct).ResponseAsync),
            ("Put", (wait, ct) => queues.PutAsync(new PutRequest { Target = session.Ref(putQueue), Items = { ByteString.CopyFrom(0x02) }, Wait = wait }, cancellationToken: ct).ResponseAsync),
            ("Get", (wait, ct) => queues.GetAsync(new GetRequest { Target = session.Ref(getQueue), MaxItems = 1, Wait = wait }, cancellationToken: ct).ResponseAsync),
            ("JoinQueue", (wait, ct) => queues.JoinQueueAsync(new JoinQueueRequest { Target = session.Ref(joinQueue), Wait = wait }, cancellationToken: ct).ResponseAsync),
        ];
        if (!satisfied)
        {
            calls.Add(("WaitCondition", (wait, ct) => sync.WaitConditionAsync(new WaitConditionRequest { Target = session.Ref(condition.Name), Owner = "t", Wait = wait }, cancellationToken: ct).ResponseAsync));
        }

        return [.. calls];
    }

    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(b => b, b => b);

    private static void AssertStatus(RpcException error, StatusCode code, string? pythonException = null)
    {
        Assert.True(error.StatusCode == code, $"expected {code}, got {error.StatusCode}: {error.Status.Detail}");
        if (pythonException is not null)
        {
            Assert.Equal(pythonException, error.Trailers.GetValue("bridge-exception"));
        }
    }

    private async Task AssertServingAsync()
    {
        Assert.False(Host.HasExited);
        Assert.Equal(Host.Pid, (await Host.InfoAsync(Token())).Pid);
    }

    private Task<BridgeSession> OpenAsync() => BridgeSession.OpenAsync(Host.Address, "surface-input", Token());

    private CallOptions Options() => new(deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: Token());

    private CancellationToken Token() => _testTimeout.Token;
}

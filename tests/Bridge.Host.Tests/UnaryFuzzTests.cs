using System.Diagnostics;
using Bridge.Client;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Xunit.Abstractions;

namespace Bridge.Host.Tests;

/// <summary>
/// A seeded fuzz of every unary method of every Bridge service (enumerated from the
/// generated descriptors, so a new method is covered without a change here) with requests
/// that parse: random field values chosen by the field's name and type (valid, ended,
/// unknown and malformed session and pool ids; names of live, freed, wrong-kind and absent
/// objects, empty, overlong or with control characters; owners of any length; negative,
/// NaN, huge and infinite timeouts; MessagePack, garbage or oversized bytes; unknown enum
/// values). Every answer is a precise status, never UNKNOWN or INTERNAL, and the host
/// keeps a named queue's item and an RLock held by another session. Its own host: the
/// fuzz may start pools.
/// </summary>
public sealed class UnaryFuzzTests(HostFixture fixture, ITestOutputHelper output) : IClassFixture<HostFixture>
{
    private const int DefaultSeed = 20261207;

    // The xunit ceiling; the fuzz's own budget (below) scales with GILBRIDGE_LOAD_SCALE.
    private const int TestTimeout = 600_000;

    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(b => b, b => b);

    private static readonly ServiceDescriptor[] BridgeServices =
        [Sessions.Descriptor, Synchronization.Descriptor, Queues.Descriptor, SharedValues.Descriptor, Contracts.V1.Execution.Descriptor];

    /// <summary>What a request may be answered with: the documented statuses (no DATA_LOSS: there is no cluster here).</summary>
    private static readonly HashSet<StatusCode> Precise =
    [
        StatusCode.OK, StatusCode.InvalidArgument, StatusCode.NotFound, StatusCode.FailedPrecondition, StatusCode.ResourceExhausted,
        StatusCode.Unauthenticated, StatusCode.AlreadyExists, StatusCode.DeadlineExceeded, StatusCode.OutOfRange, StatusCode.Cancelled,
    ];

    private HostProcess Host => fixture.Host;

    /// <summary>GILBRIDGE_LOAD_SCALE as the load tests read it: 0.02 in CI (2,000 calls), 1 for 100,000.</summary>
    private static int CallCount()
    {
        var scale = double.TryParse(Environment.GetEnvironmentVariable("GILBRIDGE_LOAD_SCALE"), System.Globalization.CultureInfo.InvariantCulture, out var s) ? s : 0.02;
        return Math.Max(500, (int)(100_000 * scale));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Fuzzed_well_formed_unary_requests_get_a_precise_status_and_the_host_keeps_its_objects()
    {
        var calls = CallCount();
        var seed = int.TryParse(Environment.GetEnvironmentVariable("GILBRIDGE_FUZZ_SEED"), out var chosen) ? chosen : DefaultSeed;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60 + calls / 50.0));
        var token = timeout.Token;

        // Kept: a queue item and an RLock held by a session the fuzz never names. The
        // holder also opens every object the fuzz works on, so a fuzzed Detach frees none.
        await using var holder = await BridgeSession.OpenAsync(Host.Address, "fuzz-holder", token);
        var keptQueue = $"kept-{Guid.NewGuid():N}";
        await (await holder.OpenQueueAsync(keptQueue, 0, token)).PutAsync("still here", token);
        var heldLock = $"held-{Guid.NewGuid():N}";
        await holder.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = holder.SessionId, Name = heldLock, Kind = ObjectKind.Rlock }, cancellationToken: token);
        Assert.True((await holder.Synchronization.AcquireAsync(new AcquireRequest { Target = holder.Ref(heldLock), Owner = "holder" }, cancellationToken: token)).Acquired);

        await using var fuzz = await BridgeSession.OpenAsync(Host.Address, "fuzz", token);
        var world = await FuzzWorldAsync(holder, fuzz, heldLock, token);

        using var channel = Host.Address.CreateChannel();
        var invoker = channel.CreateCallInvoker();
        var methods = BridgeServices.SelectMany(s => s.Methods).Where(m => !m.IsClientStreaming && !m.IsServerStreaming).ToArray();
        Assert.True(methods.Length >= 30, $"only {methods.Length} unary methods found");

        var random = new Random(seed);
        var requests = Enumerable.Range(0, calls).Select(i =>
        {
            var method = methods[i % methods.Length];
            return (Method: method, Body: world.Message(random, method, method.InputType, depth: 0).ToByteArray());
        }).ToArray();

        var statuses = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var byMethod = new SortedDictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        var failures = new List<string>();
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(requests, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = token }, async (call, cancellationToken) =>
        {
            var (code, detail) = await UnaryAsync(invoker, call.Method, call.Body, cancellationToken);
            lock (statuses)
            {
                statuses[code.ToString()] = statuses.GetValueOrDefault(code.ToString()) + 1;
                if (!byMethod.TryGetValue(call.Method.Name, out var seen))
                {
                    byMethod[call.Method.Name] = seen = new SortedSet<string>(StringComparer.Ordinal);
                }

                seen.Add(code.ToString());
                var problem = !Precise.Contains(code) ? "an imprecise status"
                    : detail.Any(char.IsControl) ? "a control character in the message"
                    : detail.Length > 1000 ? $"a {detail.Length}-character message"
                    : null;
                if (problem is not null)
                {
                    var request = JsonFormatter.Default.Format(call.Method.InputType.Parser.ParseFrom(call.Body));
                    failures.Add($"{call.Method.FullName} {request[..Math.Min(request.Length, 600)]}: {problem}: {code} {Printable(detail)}");
                }
            }
        });

        output.WriteLine($"seed {seed}: {calls} well-formed unary calls over {methods.Length} methods in {clock.Elapsed.TotalSeconds:F1} s: "
            + string.Join(", ", statuses.OrderByDescending(s => s.Value).Select(s => $"{s.Key} {s.Value}")));
        foreach (var (method, seen) in byMethod)
        {
            output.WriteLine($"  {method}: {string.Join(", ", seen)}");
        }

        Assert.True(failures.Count == 0, $"{failures.Count} imprecise answers:\n" + string.Join("\n", failures.Take(25)));

        // Nor did any call end in an error the host logged as such (an unexpected exception).
        var errors = Host.Output.Split('\n').Where(line => line.Contains(" fail: ", StringComparison.Ordinal) || line.Contains(" crit: ", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, $"the host logged {errors.Count} errors:\n" + string.Join("\n", errors.Take(10)));

        // Not everything was refused: the fuzz reached the objects (OK answers on most methods).
        Assert.True(statuses.GetValueOrDefault("OK") >= calls / 20, $"only {statuses.GetValueOrDefault("OK")} calls succeeded");

        // The host is the same process, still serving, and kept what it held.
        Assert.False(Host.HasExited);
        Assert.Equal(Host.Pid, (await Host.InfoAsync(token)).Pid);
        var state = await holder.Synchronization.GetLockStateAsync(new LockStateRequest { Target = holder.Ref(heldLock), Owner = "holder" }, cancellationToken: token);
        Assert.True(state.OwnedByCaller && state.Count == 1 && state.Value == 0, $"the held RLock: {state}");
        await using var reader = await BridgeSession.OpenAsync(Host.Address, "fuzz-reader", token);
        var other = await reader.Synchronization.AcquireAsync(
            new AcquireRequest { Target = reader.Ref(heldLock), Owner = "reader", Wait = new WaitPolicy { Block = false } }, cancellationToken: token);
        Assert.False(other.Acquired);
        var (found, item) = await (await reader.OpenQueueAsync(keptQueue, 0, token)).GetAsync<string>(TimeSpan.FromSeconds(5), token);
        Assert.True(found);
        Assert.Equal("still here", item);
        Assert.Equal(0, (await reader.Queues.GetQueueStateAsync(new QueueStateRequest { Target = reader.Ref(keptQueue) }, cancellationToken: token)).Size);
    }

    /// <summary>
    /// The objects the fuzz works on (opened by the fuzz session and by the holder), with a
    /// freed one, an aborted barrier, an ended session and a pool closed before the fuzz.
    /// </summary>
    private static async Task<FuzzWorld> FuzzWorldAsync(BridgeSession holder, BridgeSession fuzz, string heldLock, CancellationToken token)
    {
        var id = fuzz.SessionId;
        var sync = fuzz.Synchronization;
        var names = new List<string> { heldLock };
        async Task<string> Both(string service, Func<BridgeSession, string, OpenMode, Task<string>> open)
        {
            // The name says which service serves it, so the fuzz can pick the right kind more often.
            var name = await open(fuzz, $"fuzz-{service}-{Guid.NewGuid():N}", OpenMode.Create);
            await open(holder, name, OpenMode.Attach);
            names.Add(name);
            return name;
        }

        await Both("Synchronization", async (s, n, m) => (await s.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = s.SessionId, Name = n, Mode = m, Kind = ObjectKind.Lock }, cancellationToken: token)).Name);
        await Both("Synchronization", async (s, n, m) => (await s.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = s.SessionId, Name = n, Mode = m, Kind = ObjectKind.Rlock }, cancellationToken: token)).Name);
        await Both("Synchronization", async (s, n, m) => (await s.Synchronization.CreateLockAsync(new CreateLockRequest { SessionId = s.SessionId, Name = n, Mode = m, Kind = ObjectKind.BoundedSemaphore, InitialValue = 2 }, cancellationToken: token)).Name);
        await Both("Synchronization", async (s, n, m) => (await s.Synchronization.CreateEventAsync(new CreateEventRequest { SessionId = s.SessionId, Name = n, Mode = m }, cancellationToken: token)).Name);
        await Both("Synchronization", async (s, n, m) => (await s.Synchronization.CreateConditionAsync(new CreateConditionRequest { SessionId = s.SessionId, Name = n, Mode = m }, cancellationToken: token)).Name);
        await Both("Synchronization", async (s, n, m) => (await s.Synchronization.CreateBarrierAsync(new CreateBarrierRequest { SessionId = s.SessionId, Name = n, Mode = m, Parties = 2 }, cancellationToken: token)).Name);
        var aborted = await Both("Synchronization", async (s, n, m) => (await s.Synchronization.CreateBarrierAsync(new CreateBarrierRequest { SessionId = s.SessionId, Name = n, Mode = m, Parties = 3 }, cancellationToken: token)).Name);
        await sync.AbortBarrierAsync(new BarrierRequest { Target = fuzz.Ref(aborted) }, cancellationToken: token);
        await Both("Queues", async (s, n, m) => (await s.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = s.SessionId, Name = n, Mode = m, Kind = ObjectKind.Queue, Maxsize = 4 }, cancellationToken: token)).Name);
        await Both("Queues", async (s, n, m) => (await s.Queues.CreateQueueAsync(new CreateQueueRequest { SessionId = s.SessionId, Name = n, Mode = m, Kind = ObjectKind.JoinableQueue }, cancellationToken: token)).Name);
        await Both("SharedValues", async (s, n, m) => (await s.SharedValues.CreateValueAsync(new CreateValueRequest { SessionId = s.SessionId, Name = n, Mode = m, Typecode = "d", Length = 4, IsArray = true }, cancellationToken: token)).Name);

        var freed = (await sync.CreateEventAsync(new CreateEventRequest { SessionId = id, Name = $"freed-{Guid.NewGuid():N}" }, cancellationToken: token)).Name;
        await fuzz.Sessions.DetachAsync(new DetachRequest { SessionId = id, Kind = ObjectKind.Event, Name = freed }, cancellationToken: token);
        names.Add(freed);

        var ended = (await fuzz.Sessions.HelloAsync(new HelloRequest { ClientName = "fuzz-ended", Language = "test" }, cancellationToken: token)).SessionId;
        await fuzz.Sessions.GoodbyeAsync(new GoodbyeRequest { SessionId = ended }, cancellationToken: token);

        // A pool of one worker, closed: its calls meet a pool that takes no more tasks.
        var pool = await fuzz.Execution.CreatePoolAsync(new CreatePoolRequest { SessionId = id, Processes = 1, Name = "fuzz" }, cancellationToken: token);
        await fuzz.Execution.ClosePoolAsync(new PoolRequest { SessionId = id, PoolId = pool.PoolId }, cancellationToken: token);
        return new FuzzWorld([.. names], id, ended, pool.PoolId);
    }

    private static async Task<(StatusCode Code, string Detail)> UnaryAsync(CallInvoker invoker, MethodDescriptor descriptor, byte[] body, CancellationToken cancellationToken)
    {
        var method = new Method<byte[], byte[]>(MethodType.Unary, descriptor.Service.FullName, descriptor.Name, Raw, Raw);
        try
        {
            // Short: calls that wait for ever (a held lock, an empty queue) end on the deadline.
            await invoker.AsyncUnaryCall(method, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: cancellationToken), body);
            return (StatusCode.OK, "");
        }
        catch (RpcException ex)
        {
            return (ex.StatusCode, ex.Status.Detail);
        }
    }

    private static string Printable(string text) => new([.. text.Take(300).Select(c => char.IsControl(c) ? '?' : c)]);

    /// <summary>What the fuzz draws field values from, by field name (and type for the rest).</summary>
    private sealed class FuzzWorld(string[] objectNames, string liveSession, string endedSession, string closedPool)
    {
        private static readonly string[] Odd = ["", "x", "\0\n\u007f", "\u001b[2J", "caf\u00e9", new string('z', 10 * 1024), "a b", "~" + Guid.NewGuid().ToString("N")];

        private static readonly double[] Timeouts =
            [0, 0.01, 0.05, 0.2, -1, -1e-9, double.NaN, double.PositiveInfinity, double.NegativeInfinity, double.MaxValue, 1e9, 4294968.0, double.Epsilon];

        private readonly string[] _sessions = [liveSession, liveSession, liveSession, endedSession, Guid.NewGuid().ToString("N"), "never-issued", "", "\0\n", new string('s', 10 * 1024)];

        private readonly string[] _pools = [closedPool, closedPool, Guid.NewGuid().ToString("N"), "", "\0", new string('p', 10 * 1024)];

        /// <summary>The fuzz's objects (every kind, so a name is often of the wrong kind), a freed one, the held RLock, and bad names.</summary>
        private readonly string[] _names = [.. objectNames, .. objectNames, "never-created", new string('n', 201), .. Odd];

        private readonly string[] _owners = ["t", "t", "u", "holder", "", "\0\n\u007f", new string('o', 257), new string('o', 10 * 1024), "caf\u00e9"];

        private readonly string[] _typecodes = ["b", "B", "h", "i", "l", "q", "f", "d", "c", "u", "?", "", "z", "zz", "\0", "i\n", "\u00e9", new string('i', 10 * 1024)];

        public IMessage Message(Random random, MethodDescriptor method, MessageDescriptor descriptor, int depth)
        {
            var message = descriptor.Parser.ParseFrom([]);
            foreach (var field in descriptor.Fields.InDeclarationOrder())
            {
                if (random.Next(8) == 0)
                {
                    continue;
                }

                if (field.IsMap)
                {
                    var map = (System.Collections.IDictionary)field.Accessor.GetValue(message);
                    for (var i = random.Next(3); i > 0; i--)
                    {
                        map[Odd[random.Next(Odd.Length)] + i] = Odd[random.Next(Odd.Length)];
                    }

                    continue;
                }

                var repeats = field.IsRepeated ? random.Next(0, 4) : 1;
                for (var i = 0; i < repeats; i++)
                {
                    if (Value(random, method, field, depth) is not { } value)
                    {
                        continue;
                    }

                    FuzzFields.Put(message, field, value);
                }
            }

            return message;
        }

        /// <summary>
        /// A field's value: three times in four a plausible one (the live session, an object
        /// of the method's service, a small count, a short timeout, a MessagePack item), else
        /// anything the field could hold, hostile values included.
        /// </summary>
        private object? Value(Random random, MethodDescriptor method, FieldDescriptor field, int depth)
        {
            var plausible = random.Next(4) != 0;
            return field.FieldType switch
            {
                // Goodbye with the fuzz's own session would end it after a few calls, and the
                // rest of the fuzz would only meet an ended session (that is covered anyway).
                FieldType.String when field.Name == "session_id" && method.Name == "Goodbye" => Pick(random, _sessions.Where(s => s != liveSession).ToArray()),
                FieldType.String => field.Name switch
                {
                    "session_id" => plausible ? liveSession : Pick(random, _sessions),
                    "pool_id" => plausible ? closedPool : Pick(random, _pools),
                    "name" or "lock_name" when plausible && random.Next(3) != 0 => Pick(random, OfService(method.Service.Name)),
                    "name" or "lock_name" => Pick(random, _names),
                    "owner" => plausible ? Pick(random, ["t", "u", ""]) : Pick(random, _owners),
                    "typecode" => plausible ? Pick(random, ["b", "i", "d", "q"]) : Pick(random, _typecodes),
                    _ => Pick(random, [.. Odd, .. _names, .. _sessions]),
                },
                FieldType.Bytes => Bytes(random, plausible),
                FieldType.Bool => random.Next(2) == 0,
                FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => plausible ? random.Next(0, 4)
                    : new[] { 0, 1, -1, int.MaxValue, int.MinValue, random.Next(), 9, 15, 1025 }[random.Next(9)],
                FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => plausible ? random.Next(0, 4)
                    : new[] { 0L, 1L, -1L, long.MaxValue, long.MinValue, random.NextInt64(), int.MaxValue + 1L }[random.Next(7)],
                FieldType.UInt32 or FieldType.Fixed32 => new[] { 0u, 1u, uint.MaxValue }[random.Next(3)],
                FieldType.UInt64 or FieldType.Fixed64 => new[] { 0ul, 1ul, ulong.MaxValue }[random.Next(3)],
                FieldType.Double => plausible ? new[] { 0, 0.01, 0.05, 0.2 }[random.Next(4)] : Timeouts[random.Next(Timeouts.Length)],
                FieldType.Float => new[] { 0f, -1f, float.NaN, float.PositiveInfinity }[random.Next(4)],
                FieldType.Enum => plausible ? field.EnumType.Values[random.Next(field.EnumType.Values.Count)].Number : random.Next(-2, 20),
                FieldType.Message when depth < 3 => Message(random, method, field.MessageType, depth + 1),
                _ => null,
            };
        }

        /// <summary>Bytes: a small MessagePack value, random bytes, empty, or one over the fixture's 64 KiB limit.</summary>
        private static ByteString Bytes(Random random, bool plausible)
        {
            switch (plausible ? 2 + random.Next(2) : random.Next(6))
            {
                case 0:
                    return ByteString.Empty;
                case 1:
                    return ByteString.CopyFrom(new byte[64 * 1024 + 1]);
                case 2:
                case 3:
                    byte[][] values = [[0xc0], [0x01], [0xa2, (byte)'h', (byte)'i'], [0x92, 0x01, 0xc3], [0xcb, 0, 0, 0, 0, 0, 0, 0, 0], [0x81, 0xa1, (byte)'n', 0x01], [0xd4, 0x02, 0x90]];
                    return ByteString.CopyFrom(values[random.Next(values.Length)]);
                default:
                    var bytes = new byte[random.Next(1, 48)];
                    random.NextBytes(bytes);
                    return ByteString.CopyFrom(bytes);
            }
        }

        /// <summary>The fuzz's objects a service serves (any of them for Sessions).</summary>
        private string[] OfService(string service) =>
            objectNames.Where(n => n.Contains($"-{service}-", StringComparison.Ordinal)).ToArray() is { Length: > 0 } served ? served : objectNames;

        private static string Pick(Random random, string[] values) => values[random.Next(values.Length)];
    }
}

using Bridge.Client;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using Xunit.Abstractions;

namespace Bridge.Host.Tests;

/// <summary>
/// Request bodies that do not parse, sent raw to a real host: every method answers
/// INVALID_ARGUMENT naming itself, never UNKNOWN or INTERNAL, and the host keeps serving
/// and keeps its objects. Bounded: a seeded fuzz of about ten bodies per unary method.
/// </summary>
public sealed class MalformedRequestTests(HostFixture fixture, ITestOutputHelper output) : IClassFixture<HostFixture>, IDisposable
{
    private const int TestTimeout = 30_000;
    private const int BodiesPerMethod = 10;

    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(b => b, b => b);

    private static readonly ServiceDescriptor[] BridgeServices =
        [Sessions.Descriptor, Synchronization.Descriptor, Queues.Descriptor, SharedValues.Descriptor, Contracts.V1.Execution.Descriptor];

    private readonly CancellationTokenSource _testTimeout = new(TimeSpan.FromMilliseconds(TestTimeout));

    private HostProcess Host => fixture.Host;

    [Fact(Timeout = TestTimeout)]
    public async Task Fuzzed_unary_requests_are_InvalidArgument_and_the_host_keeps_its_objects()
    {
        await using var holder = await BridgeSession.OpenAsync(Host.Address, "malformed-holder", Token());
        var name = $"kept-{Guid.NewGuid():N}";
        var queue = await holder.OpenQueueAsync(name, 0, Token());
        await queue.PutAsync("still here", Token());

        // The fuzz's "valid session id then garbage" bodies name this one, never the holder.
        await using var throwaway = await BridgeSession.OpenAsync(Host.Address, "malformed-throwaway", Token());
        using var channel = Host.Address.CreateChannel();
        var invoker = channel.CreateCallInvoker();
        var random = new Random(20261203);
        var calls = new List<(MethodDescriptor Method, byte[] Body, bool Parses)>();
        foreach (var method in BridgeServices.SelectMany(s => s.Methods).Where(m => !m.IsClientStreaming && !m.IsServerStreaming))
        {
            calls.Add((method, [], true));
            for (var i = 0; i < BodiesPerMethod; i++)
            {
                var body = Garbage(random, i, method.InputType, throwaway.SessionId);
                calls.Add((method, body, Parses(method.InputType, body)));
            }
        }

        var statuses = new Dictionary<StatusCode, int>();
        var failures = new List<string>();
        await Parallel.ForEachAsync(calls, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = Token() }, async (call, cancellationToken) =>
        {
            var (code, detail) = await UnaryAsync(invoker, call.Method, call.Body, cancellationToken);
            lock (statuses)
            {
                statuses[code] = statuses.GetValueOrDefault(code) + 1;
                var expected = call.Parses
                    ? code is StatusCode.OK or StatusCode.InvalidArgument or StatusCode.NotFound or StatusCode.FailedPrecondition or StatusCode.Unauthenticated
                    : code == StatusCode.InvalidArgument && detail.Contains("could not be parsed", StringComparison.Ordinal) && detail.Contains($"/{call.Method.Service.FullName}/{call.Method.Name}", StringComparison.Ordinal);
                if (!expected)
                {
                    failures.Add($"{call.Method.FullName} ({(call.Parses ? "parses" : "malformed")}, {Convert.ToHexString(call.Body)}): {code} {detail}");
                }
            }
        });

        output.WriteLine($"{calls.Count} calls ({calls.Count(c => !c.Parses)} malformed): " + string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key} {s.Value}")));
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(20)));
        Assert.True(calls.Count(c => !c.Parses) >= calls.Count * 3 / 4, "the fuzz should be mostly malformed bodies");

        Assert.False(Host.HasExited);
        Assert.Equal(Host.Pid, (await Host.InfoAsync(Token())).Pid);
        await using var reader = await BridgeSession.OpenAsync(Host.Address, "malformed-reader", Token());
        var (found, item) = await (await reader.OpenQueueAsync(name, 0, Token())).GetAsync<string>(TimeSpan.FromSeconds(5), Token());
        Assert.True(found);
        Assert.Equal("still here", item);
    }

    [Theory(Timeout = TestTimeout)]
    [InlineData("bridge.v1.Sessions", "Watch")]
    [InlineData("bridge.v1.Execution", "WatchPool")]
    public async Task A_malformed_server_streaming_request_is_InvalidArgument(string service, string name)
    {
        using var channel = Host.Address.CreateChannel();
        var method = new Method<byte[], byte[]>(MethodType.ServerStreaming, service, name, Raw, Raw);
        using var call = channel.CreateCallInvoker().AsyncServerStreamingCall(method, null, Options(), [0x0a, 0x40, 0x01]);
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(Token()));
        AssertUnparsed(error, method.FullName);
        Assert.Equal(Host.Pid, (await Host.InfoAsync(Token())).Pid);
    }

    [Theory(Timeout = TestTimeout)]
    [InlineData("bridge.v1.Execution", "Work")]
    [InlineData("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo")]
    public async Task A_malformed_first_message_on_a_bidirectional_stream_is_InvalidArgument(string service, string name)
    {
        using var channel = Host.Address.CreateChannel();
        var method = new Method<byte[], byte[]>(MethodType.DuplexStreaming, service, name, Raw, Raw);
        using var call = channel.CreateCallInvoker().AsyncDuplexStreamingCall(method, null, Options());
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await call.RequestStream.WriteAsync([0x0f, 0x01, 0x02], Token());
            await call.RequestStream.CompleteAsync();
            while (await call.ResponseStream.MoveNext(Token()))
            {
            }
        });
        AssertUnparsed(error, method.FullName);
        Assert.Equal(Host.Pid, (await Host.InfoAsync(Token())).Pid);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Health_and_reflection_still_answer_and_refuse_malformed_requests()
    {
        using var channel = Host.Address.CreateChannel();
        var health = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest(), cancellationToken: Token());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);

        using var reflection = new ServerReflection.ServerReflectionClient(channel).ServerReflectionInfo(cancellationToken: Token());
        await reflection.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" }, Token());
        await reflection.RequestStream.CompleteAsync();
        Assert.True(await reflection.ResponseStream.MoveNext(Token()));
        var listed = reflection.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToHashSet();
        Assert.Superset(BridgeServices.Select(s => s.FullName).Append("grpc.health.v1.Health").ToHashSet(), listed);

        var check = new Method<byte[], byte[]>(MethodType.Unary, "grpc.health.v1.Health", "Check", Raw, Raw);
        var error = await Assert.ThrowsAsync<RpcException>(() => channel.CreateCallInvoker().AsyncUnaryCall(check, null, Options(), [0x0a, 0x05, 0x62]).ResponseAsync);
        AssertUnparsed(error, check.FullName);
    }

    /// <summary>
    /// A seeded fuzz of every streaming method (the bridge's, health's Watch and
    /// reflection's): first messages and, on bidirectional streams, later ones too, each
    /// random garbage, a valid message cut short, or a valid message with random field
    /// values. Every call ends with a precise status (a stream that is serving is ended by
    /// the client, counted as CANCELLED); bounded by count and time. The tally by status
    /// code is printed; the host keeps a named queue's item.
    /// </summary>
    [Fact(Timeout = TestTimeout)]
    public async Task Fuzzed_streaming_calls_end_with_a_precise_status_and_the_host_keeps_its_objects()
    {
        const int Seed = 20261204;
        const int Calls = 160;
        await using var holder = await BridgeSession.OpenAsync(Host.Address, "stream-fuzz-holder", Token());
        var name = $"kept-{Guid.NewGuid():N}";
        var queue = await holder.OpenQueueAsync(name, 0, Token());
        await queue.PutAsync("still here", Token());
        await using var throwaway = await BridgeSession.OpenAsync(Host.Address, "stream-fuzz-throwaway", Token());

        using var channel = Host.Address.CreateChannel();
        var invoker = channel.CreateCallInvoker();
        var methods = BridgeServices.Append(Grpc.Health.V1.HealthReflection.Descriptor.Services[0]).Append(Grpc.Reflection.V1Alpha.ReflectionReflection.Descriptor.Services[0])
            .SelectMany(s => s.Methods).Where(m => m.IsServerStreaming || m.IsClientStreaming).ToArray();
        Assert.Equal(5, methods.Length);

        var random = new Random(Seed);
        var strings = new[] { throwaway.SessionId, "", "x", "\0\n\u007f", new string('z', 10 * 1024), name, Guid.NewGuid().ToString("N") };
        var statuses = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var failures = new List<string>();
        var budget = System.Diagnostics.Stopwatch.StartNew();
        var calls = 0;
        for (; calls < Calls && budget.Elapsed < TimeSpan.FromSeconds(12); calls++)
        {
            var method = methods[calls % methods.Length];
            var messages = new List<(byte[] Body, string Kind)>();
            var count = method.IsClientStreaming ? random.Next(0, 5) : 1;
            for (var i = 0; i < count; i++)
            {
                messages.Add(Message(random, method.InputType, strings, i, throwaway.SessionId));
            }

            var (code, detail) = await StreamAsync(invoker, method, messages, Token());
            var key = code.ToString();
            statuses[key] = statuses.GetValueOrDefault(key) + 1;
            var anyGarbage = messages.Any(m => m.Kind != "valid" && !Parses(method.InputType, m.Body));
            var precise = code is StatusCode.OK or StatusCode.Cancelled or StatusCode.InvalidArgument or StatusCode.NotFound
                or StatusCode.FailedPrecondition or StatusCode.Unauthenticated;
            var parseNamed = code != StatusCode.InvalidArgument || !anyGarbage || detail.Contains("could not be parsed", StringComparison.Ordinal)
                || (method.Name == "Work" && detail.Contains("hello", StringComparison.Ordinal));
            if (!precise || !parseNamed)
            {
                failures.Add($"call {calls}, {method.FullName} [{string.Join(", ", messages.Select(m => $"{m.Kind} {Convert.ToHexString(m.Body.AsSpan(0, Math.Min(m.Body.Length, 48)))}"))}]: {code} {detail}");
            }
        }

        output.WriteLine($"seed {Seed}: {calls} streaming calls over {methods.Length} methods in {budget.Elapsed.TotalSeconds:F1} s: "
            + string.Join(", ", statuses.Select(s => $"{s.Key} {s.Value}")));
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(20)));
        Assert.True(calls >= 40, $"only {calls} calls in the time budget");

        Assert.False(Host.HasExited);
        Assert.Equal(Host.Pid, (await Host.InfoAsync(Token())).Pid);
        await using var reader = await BridgeSession.OpenAsync(Host.Address, "stream-fuzz-reader", Token());
        var (found, item) = await (await reader.OpenQueueAsync(name, 0, Token())).GetAsync<string>(TimeSpan.FromSeconds(5), Token());
        Assert.True(found);
        Assert.Equal("still here", item);
    }

    public void Dispose() => _testTimeout.Dispose();

    /// <summary>
    /// The <paramref name="index"/>th message of a fuzzed stream: a valid message with random
    /// fields, the same cut short at a random byte, or garbage (<see cref="Garbage"/>).
    /// </summary>
    private static (byte[] Body, string Kind) Message(Random random, MessageDescriptor input, string[] strings, int index, string sessionId)
    {
        var valid = RandomMessage(random, input, strings, depth: 0).ToByteArray();
        return random.Next(3) switch
        {
            0 => (valid, "valid"),
            1 when valid.Length > 1 => (valid[..random.Next(1, valid.Length)], "cut"),
            _ => (Garbage(random, index + random.Next(5), input, sessionId), "garbage"),
        };
    }

    /// <summary>A message of <paramref name="descriptor"/> with random values in random fields (edge values often).</summary>
    private static IMessage RandomMessage(Random random, MessageDescriptor descriptor, string[] strings, int depth)
    {
        var message = descriptor.Parser.ParseFrom([]);
        foreach (var field in descriptor.Fields.InDeclarationOrder())
        {
            if (field.IsMap || random.Next(3) == 0)
            {
                continue;
            }

            var repeats = field.IsRepeated ? random.Next(0, 3) : 1;
            for (var i = 0; i < repeats; i++)
            {
                object? value = field.FieldType switch
                {
                    FieldType.String => strings[random.Next(strings.Length)],
                    FieldType.Bytes => ByteString.CopyFrom(RandomBytes(random, random.Next(0, 32))),
                    FieldType.Bool => random.Next(2) == 0,
                    FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => new[] { 0, 1, -1, int.MaxValue, int.MinValue, random.Next() }[random.Next(6)],
                    FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => new[] { 0L, 1L, -1L, long.MaxValue, long.MinValue, random.NextInt64() }[random.Next(6)],
                    FieldType.UInt32 or FieldType.Fixed32 => new[] { 0u, 1u, uint.MaxValue }[random.Next(3)],
                    FieldType.UInt64 or FieldType.Fixed64 => new[] { 0ul, 1ul, ulong.MaxValue }[random.Next(3)],
                    FieldType.Double => new[] { 0.0, 0.01, -1.0, double.NaN, double.PositiveInfinity, 1e300 }[random.Next(6)],
                    FieldType.Float => new[] { 0f, -1f, float.NaN }[random.Next(3)],
                    FieldType.Enum => random.Next(-1, 14),
                    FieldType.Message when depth < 3 => RandomMessage(random, field.MessageType, strings, depth + 1),
                    _ => null,
                };
                if (value is null)
                {
                    continue;
                }

                FuzzFields.Put(message, field, value);
            }
        }

        return message;
    }

    /// <summary>
    /// Sends the messages (all, then completes, on a client stream; the only one on a server
    /// stream) and reads the replies. A stream still serving after its first replies is
    /// ended by the client: CANCELLED.
    /// </summary>
    private static async Task<(StatusCode Code, string Detail)> StreamAsync(
        CallInvoker invoker, MethodDescriptor descriptor, List<(byte[] Body, string Kind)> messages, CancellationToken cancellationToken)
    {
        var type = descriptor.IsClientStreaming ? MethodType.DuplexStreaming : MethodType.ServerStreaming;
        var method = new Method<byte[], byte[]>(type, descriptor.Service.FullName, descriptor.Name, Raw, Raw);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var options = new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: cancel.Token);
        try
        {
            IAsyncStreamReader<byte[]> responses;
            IDisposable call;
            if (descriptor.IsClientStreaming)
            {
                var duplex = invoker.AsyncDuplexStreamingCall(method, null, options);
                (responses, call) = (duplex.ResponseStream, duplex);
                try
                {
                    foreach (var (body, _) in messages)
                    {
                        await duplex.RequestStream.WriteAsync(body, cancel.Token);
                    }

                    await duplex.RequestStream.CompleteAsync();
                }
                catch (RpcException)
                {
                    // The host ended the call already; its status comes with the replies.
                }
            }
            else
            {
                var server = invoker.AsyncServerStreamingCall(method, null, options, messages[0].Body);
                (responses, call) = (server.ResponseStream, server);
            }

            using (call)
            {
                // A serving stream is given a moment for its first replies, then ended.
                cancel.CancelAfter(TimeSpan.FromMilliseconds(300));
                while (await responses.MoveNext(cancel.Token))
                {
                }
            }

            return (StatusCode.OK, "");
        }
        catch (RpcException ex)
        {
            return (ex.StatusCode, ex.Status.Detail);
        }
    }

    /// <summary>
    /// Body <paramref name="kind"/> of a method: random bytes; a length-delimited field cut
    /// short; a tag with wire type 6 or 7 (none exists) or field 0; a varint cut short; and
    /// the method's session id, when it has one, followed by such garbage.
    /// </summary>
    private static byte[] Garbage(Random random, int kind, MessageDescriptor input, string sessionId)
    {
        var body = new List<byte>();
        var field = random.Next(1, 16);
        switch (kind % 5)
        {
            case 0:
                body.AddRange(RandomBytes(random, random.Next(1, 64)));
                break;
            case 1:
                var length = random.Next(8, 120);
                body.Add((byte)((field << 3) | (int)WireFormat.WireType.LengthDelimited));
                body.Add((byte)length);
                body.AddRange(RandomBytes(random, random.Next(0, length)));
                break;
            case 2:
                body.Add((byte)(random.Next(2) == 0 ? (field << 3) | random.Next(6, 8) : random.Next(0, 8)));
                body.AddRange(RandomBytes(random, random.Next(0, 16)));
                break;
            case 3:
                body.Add((byte)((field << 3) | (int)WireFormat.WireType.Varint));
                body.AddRange([0x80, 0x80, 0x80]);
                break;
            default:
                if (input.FindFieldByName("session_id") is { } session)
                {
                    var id = System.Text.Encoding.UTF8.GetBytes(sessionId);
                    body.Add((byte)((session.FieldNumber << 3) | (int)WireFormat.WireType.LengthDelimited));
                    body.Add((byte)id.Length);
                    body.AddRange(id);
                }

                body.Add((byte)((field << 3) | (int)WireFormat.WireType.LengthDelimited));
                body.Add(64);
                body.AddRange(RandomBytes(random, random.Next(0, 64)));
                break;
        }

        return [.. body];
    }

    private static byte[] RandomBytes(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>Whether the method's own parser accepts the body (then it is a request, not garbage).</summary>
    private static bool Parses(MessageDescriptor input, byte[] body)
    {
        try
        {
            input.Parser.ParseFrom(body);
            return true;
        }
        catch (Exception ex) when (ex is InvalidProtocolBufferException or ArgumentException)
        {
            return false;
        }
    }

    private async Task<(StatusCode Code, string Detail)> UnaryAsync(CallInvoker invoker, MethodDescriptor descriptor, byte[] body, CancellationToken cancellationToken)
    {
        var method = new Method<byte[], byte[]>(MethodType.Unary, descriptor.Service.FullName, descriptor.Name, Raw, Raw);
        try
        {
            await invoker.AsyncUnaryCall(method, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancellationToken), body);
            return (StatusCode.OK, "");
        }
        catch (RpcException ex)
        {
            return (ex.StatusCode, ex.Status.Detail);
        }
    }

    private static void AssertUnparsed(RpcException error, string method)
    {
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("could not be parsed", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(method, error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal("ValueError", error.Trailers.GetValue("bridge-exception"));
    }

    private CallOptions Options() => new(deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: Token());

    private CancellationToken Token() => _testTimeout.Token;
}

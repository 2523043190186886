using System.Net;
using System.Net.Sockets;
using System.Reflection;
using Bridge.Client;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace Bridge.Host.Tests;

/// <summary>The optional TCP listener serves only callers with the bearer token.</summary>
public sealed class TcpAuthenticationTests
{
    private const string Token = "test-token-0123456789abcdef";

    [Fact(Timeout = 60_000)]
    public async Task Tcp_requires_the_bearer_token_while_the_unix_socket_does_not()
    {
        var port = FreePort();
        await using var host = await HostProcess.StartAsync(tcpPort: port, token: Token);
        var address = $"127.0.0.1:{port}";

        using (var anonymous = new BridgeAddress(address).CreateChannel())
        {
            var error = await Assert.ThrowsAsync<RpcException>(() =>
                new Sessions.SessionsClient(anonymous).GetHostInfoAsync(new HostInfoRequest()).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        }

        using (var wrong = new BridgeAddress(address, "not-the-token-at-all").CreateChannel())
        {
            var error = await Assert.ThrowsAsync<RpcException>(() =>
                new Sessions.SessionsClient(wrong).GetHostInfoAsync(new HostInfoRequest()).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        }

        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var session = await BridgeSession.OpenAsync(new BridgeAddress(address, Token), "tcp", cancel.Token);
        Assert.Equal(host.Pid, session.Host.Pid);
        Assert.Equal(host.Pid, (await host.InfoAsync(cancel.Token)).Pid);
    }

    /// <summary>
    /// Every method of every service the host maps -- enumerated from the proto descriptors,
    /// so a new method cannot slip through -- answers UNAUTHENTICATED on TCP without the
    /// token and with a wrong one, while with the token the same call reaches its handler.
    /// Execution's calls carry real requests (a pickled callable, an inline C# kernel).
    /// Neither token appears in the host's log.
    /// </summary>
    [Fact(Timeout = 120_000)]
    public async Task Every_method_of_every_service_refuses_tcp_calls_without_the_token()
    {
        const string wrongToken = "wrong-token-fedcba9876543210";
        var port = FreePort();
        await using var host = await HostProcess.StartAsync(tcpPort: port, token: Token);
        using var channel = new BridgeAddress($"127.0.0.1:{port}").CreateChannel();
        var invoker = channel.CreateCallInvoker();

        var methods = ServedServices().SelectMany(service => service.Methods).ToList();
        var names = methods.Select(m => m.FullName).ToHashSet(StringComparer.Ordinal);
        Assert.Contains("bridge.v1.Execution.CreatePool", names);
        Assert.Contains("bridge.v1.Execution.SubmitTasks", names);
        Assert.Contains("bridge.v1.Execution.Work", names);
        Assert.Contains("grpc.health.v1.Health.Check", names);
        var protoMethods = CountRpcs(Path.Combine(HostProcess.RepositoryRoot(), "protos", "bridge", "v1"));
        Assert.Equal(protoMethods, methods.Count(m => m.Service.File.Package == "bridge.v1"));

        var outcomes = await Task.WhenAll(methods.Select(async method =>
        {
            var request = RequestFor(method);
            var anonymous = await CallAsync(invoker, method, request, authorization: null);
            var wrong = await CallAsync(invoker, method, request, "Bearer " + wrongToken);
            var bare = await CallAsync(invoker, method, request, Token); // the token without "Bearer "
            var authorized = await CallAsync(invoker, method, request, "Bearer " + Token);
            return (Method: method.FullName, Anonymous: anonymous, Wrong: wrong, Bare: bare, Authorized: authorized);
        }));

        var unmapped = outcomes.Where(o => o.Authorized == StatusCode.Unimplemented).Select(o => o.Method).ToList();
        Assert.All(unmapped, name => Assert.DoesNotContain("bridge.v1.", name, StringComparison.Ordinal));
        Assert.All(outcomes.Where(o => o.Authorized != StatusCode.Unimplemented), o =>
        {
            Assert.True(
                o.Anonymous == StatusCode.Unauthenticated && o.Wrong == StatusCode.Unauthenticated && o.Bare == StatusCode.Unauthenticated,
                $"{o.Method}: without the token {o.Anonymous}, with a wrong one {o.Wrong}, without 'Bearer ' {o.Bare}");
        });
        Assert.True(outcomes.Count(o => o.Authorized != StatusCode.Unimplemented) >= protoMethods + 1);

        await Task.Delay(500); // the host's log lines of the last calls
        Assert.DoesNotContain(Token, host.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(wrongToken, host.Output, StringComparison.Ordinal);
        Assert.Equal(host.Pid, (await host.InfoAsync(CancellationToken.None)).Pid);
    }

    [Fact(Timeout = 60_000)]
    public async Task Tcp_without_a_token_refuses_to_start()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => HostProcess.StartAsync(tcpPort: FreePort(), token: ""));
        Assert.Contains("exited during start-up with code 2", error.Message, StringComparison.Ordinal);
    }

    private static readonly Marshaller<byte[]> Bytes = Marshallers.Create(static b => b, static b => b);

    /// <summary>The services whose descriptors the host's assemblies carry: Bridge's own, health and reflection.</summary>
    private static IEnumerable<ServiceDescriptor> ServedServices() =>
        new[] { typeof(HostInfoRequest).Assembly, typeof(Grpc.Health.V1.HealthCheckRequest).Assembly, typeof(Grpc.Reflection.V1Alpha.ServerReflectionRequest).Assembly }
            .SelectMany(assembly => assembly.GetExportedTypes())
            .Select(type => type.GetProperty("Descriptor", BindingFlags.Public | BindingFlags.Static)?.GetValue(null))
            .OfType<FileDescriptor>()
            .SelectMany(file => file.Services)
            .DistinctBy(service => service.FullName);

    private static int CountRpcs(string protos) =>
        Directory.EnumerateFiles(protos, "*.proto")
            .SelectMany(File.ReadLines)
            .Count(line => line.TrimStart().StartsWith("rpc ", StringComparison.Ordinal));

    /// <summary>Execution's calls carry what an attacker would send: code to run. Others: an empty message.</summary>
    private static byte[] RequestFor(MethodDescriptor method) => method.FullName switch
    {
        "bridge.v1.Execution.CreatePool" => new CreatePoolRequest { Processes = 1, Direct = true, Initializer = ByteString.CopyFromUtf8("\x80\x05pickled initializer") }.ToByteArray(),
        "bridge.v1.Execution.SubmitTasks" => new SubmitTasksRequest
        {
            PoolId = "any",
            Tasks =
            {
                new TaskChunk { TaskId = 1, Function = new Callable { Python = ByteString.CopyFromUtf8("\x80\x05pickled callable") }, Items = { ByteString.CopyFrom(0x01) } },
                new TaskChunk { TaskId = 2, Function = new Callable { Kernel = "csharp:public static class K { public static int F(int x) => x; }" }, Items = { ByteString.CopyFrom(0x01) } },
            },
        }.ToByteArray(),
        _ => [],
    };

    private static async Task<StatusCode> CallAsync(CallInvoker invoker, MethodDescriptor method, byte[] request, string? authorization)
    {
        var type = (method.IsClientStreaming, method.IsServerStreaming) switch
        {
            (false, false) => MethodType.Unary,
            (false, true) => MethodType.ServerStreaming,
            (true, false) => MethodType.ClientStreaming,
            (true, true) => MethodType.DuplexStreaming,
        };
        var call = new Method<byte[], byte[]>(type, method.Service.FullName, method.Name, Bytes, Bytes);
        var headers = authorization is null ? null : new Metadata { { "authorization", authorization } };
        // A call that reaches its handler may wait (a watch, a worker's stream): the deadline ends it.
        var options = new CallOptions(headers, DateTime.UtcNow.AddSeconds(3));
        try
        {
            switch (type)
            {
                case MethodType.Unary:
                    await invoker.AsyncUnaryCall(call, null, options, request);
                    break;
                case MethodType.ServerStreaming:
                {
                    using var streaming = invoker.AsyncServerStreamingCall(call, null, options, request);
                    while (await streaming.ResponseStream.MoveNext(CancellationToken.None))
                    {
                    }

                    break;
                }

                case MethodType.ClientStreaming:
                {
                    using var streaming = invoker.AsyncClientStreamingCall(call, null, options);
                    await SendAsync(streaming.RequestStream, request);
                    await streaming.ResponseAsync;
                    break;
                }

                default:
                {
                    using var streaming = invoker.AsyncDuplexStreamingCall(call, null, options);
                    await SendAsync(streaming.RequestStream, request);
                    while (await streaming.ResponseStream.MoveNext(CancellationToken.None))
                    {
                    }

                    break;
                }
            }

            return StatusCode.OK;
        }
        catch (RpcException exception)
        {
            return exception.StatusCode;
        }
    }

    /// <summary>Writes the request and completes the stream; a call the host already ended
    /// (refused) fails the write, and its status is then read from the response.</summary>
    private static async Task SendAsync(IClientStreamWriter<byte[]> requests, byte[] request)
    {
        try
        {
            await requests.WriteAsync(request);
            await requests.CompleteAsync();
        }
        catch (Exception exception) when (exception is RpcException or InvalidOperationException)
        {
            // The response says why.
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

using System.Collections.Concurrent;
using System.Text;
using System.Threading.Channels;
using Bridge.Contracts.V1;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bridge.Worker.Tests;

/// <summary>
/// A real gRPC server (Kestrel on a temporary Unix socket) that implements only
/// Execution.Work, standing in for Bridge.Host: each worker that connects becomes a
/// <see cref="WorkerConnection"/> the test drives command by command.
/// </summary>
public sealed class FakeWorkHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Channel<WorkerConnection> _connections;
    private readonly string _directory;

    private FakeWorkHost(WebApplication app, Channel<WorkerConnection> connections, string directory, string socketPath)
    {
        _app = app;
        _connections = connections;
        _directory = directory;
        SocketPath = socketPath;
    }

    public string SocketPath { get; }

    public string Address => "unix:" + SocketPath;

    public static async Task<FakeWorkHost> StartAsync(CancellationToken cancellationToken)
    {
        var directory = Directory.CreateTempSubdirectory("bridge-worker-test-").FullName;
        var socketPath = Path.Combine(directory, "host.sock");
        var connections = Channel.CreateUnbounded<WorkerConnection>();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenUnixSocket(socketPath, listen => listen.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc(grpc => grpc.MaxReceiveMessageSize = null);
        builder.Services.AddSingleton(connections);
        var app = builder.Build();
        app.MapGrpcService<FakeExecution>();
        await app.StartAsync(cancellationToken);
        return new FakeWorkHost(app, connections, directory, socketPath);
    }

    /// <summary>The next worker to open its Work stream.</summary>
    public async Task<WorkerConnection> AcceptAsync(CancellationToken cancellationToken) =>
        await _connections.Reader.ReadAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await _app.StopAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
        }

        await _app.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private sealed class FakeExecution(Channel<WorkerConnection> connections) : Execution.ExecutionBase
    {
        public override async Task Work(IAsyncStreamReader<WorkerMessage> requestStream, IServerStreamWriter<WorkerCommand> responseStream, ServerCallContext context)
        {
            var connection = new WorkerConnection(responseStream);
            await connections.Writer.WriteAsync(connection, context.CancellationToken);
            var reading = connection.ReceiveAllAsync(requestStream, context.CancellationToken);
            // Returning ends the call: when the worker completes its side, or when the test
            // closes the stream as a departing host would.
            await Task.WhenAny(reading, connection.Closed);
        }
    }
}

/// <summary>One worker's Work stream, seen from the host side.</summary>
public sealed class WorkerConnection
{
    private readonly IServerStreamWriter<WorkerCommand> _commands;
    private readonly Channel<WorkerMessage> _messages = Channel.CreateUnbounded<WorkerMessage>();
    private readonly ConcurrentQueue<OutputText> _output = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _writeLock = new(1, 1);

    internal WorkerConnection(IServerStreamWriter<WorkerCommand> commands) => _commands = commands;

    internal Task Closed => _closed.Task;

    /// <summary>True once the worker completed its request stream.</summary>
    public bool RequestEnded { get; private set; }

    /// <summary>Everything received on a stream (1 stdout, 2 stderr), in order.</summary>
    public string Output(int stream) => string.Concat(_output.Where(o => o.Stream == stream).Select(o => o.Text));

    public IReadOnlyCollection<OutputText> OutputMessages => _output;

    public async Task SendAsync(WorkerCommand command, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            await _commands.WriteAsync(command, cancellationToken);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>The next message other than OutputText (collected into <see cref="Output"/>); null when the stream ended.</summary>
    public async Task<WorkerMessage?> NextAsync(CancellationToken cancellationToken)
    {
        while (await _messages.Reader.WaitToReadAsync(cancellationToken))
        {
            while (_messages.Reader.TryRead(out var message))
            {
                if (message.MessageCase == WorkerMessage.MessageOneofCase.Output)
                {
                    _output.Enqueue(message.Output);
                    continue;
                }

                return message;
            }
        }

        return null;
    }

    /// <summary>The next message of a kind, skipping Ready (credits) and output.</summary>
    public async Task<WorkerMessage> NextAsync(WorkerMessage.MessageOneofCase kind, CancellationToken cancellationToken)
    {
        while (true)
        {
            var message = await NextAsync(cancellationToken) ?? throw new InvalidOperationException($"the stream ended while waiting for {kind}");
            if (message.MessageCase == kind)
            {
                return message;
            }

            if (message.MessageCase != WorkerMessage.MessageOneofCase.Ready)
            {
                throw new InvalidOperationException($"expected {kind}, got {message}");
            }
        }
    }

    /// <summary>Ends the call from the host side (the worker sees its command stream end).</summary>
    public void Close() => _closed.TrySetResult();

    internal async Task ReceiveAllAsync(IAsyncStreamReader<WorkerMessage> requests, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var message in requests.ReadAllAsync(cancellationToken))
            {
                await _messages.Writer.WriteAsync(message, cancellationToken);
            }

            RequestEnded = true;
        }
        catch (Exception exception) when (exception is IOException or OperationCanceledException or RpcException)
        {
        }
        finally
        {
            _messages.Writer.TryComplete();
        }
    }

    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append("stdout: ").Append(Output(1)).Append("; stderr: ").Append(Output(2));
        return text.ToString();
    }
}

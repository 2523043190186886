using System.Diagnostics;
using Bridge.Contracts.V1;
using Grpc.Net.Client;

namespace Bridge.Client;

/// <summary>
/// A session with a Bridge host: says hello, renews the lease in the background until
/// disposed, then says goodbye (which releases whatever the session still holds).
/// </summary>
public sealed class BridgeSession : IAsyncDisposable
{
    private readonly GrpcChannel _channel;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _keepAlive;
    private int _disposed;

    private BridgeSession(GrpcChannel channel, HelloReply hello)
    {
        _channel = channel;
        SessionId = hello.SessionId;
        Host = hello.Host;
        Sessions = new Sessions.SessionsClient(channel);
        Queues = new Queues.QueuesClient(channel);
        Synchronization = new Synchronization.SynchronizationClient(channel);
        SharedValues = new SharedValues.SharedValuesClient(channel);
        _keepAlive = KeepAliveAsync(TimeSpan.FromSeconds(hello.LeaseSeconds / 3), _stopping.Token);
    }

    public string SessionId { get; }

    public HostInfo Host { get; }

    public Sessions.SessionsClient Sessions { get; }

    public Queues.QueuesClient Queues { get; }

    public Synchronization.SynchronizationClient Synchronization { get; }

    public SharedValues.SharedValuesClient SharedValues { get; }

    public static async Task<BridgeSession> OpenAsync(BridgeAddress address, string clientName, CancellationToken cancellationToken)
    {
        var channel = address.CreateChannel();
        try
        {
            var hello = await new Sessions.SessionsClient(channel).HelloAsync(
                new HelloRequest { ClientName = clientName, Pid = Environment.ProcessId, Language = "dotnet" },
                cancellationToken: cancellationToken).ConfigureAwait(false);
            return new BridgeSession(channel, hello);
        }
        catch
        {
            channel.Dispose();
            throw;
        }
    }

    public ObjectRef Ref(string name) => new() { SessionId = SessionId, Name = name };

    /// <summary>Opens (creating when absent) a queue and returns a typed view of it.</summary>
    public async Task<BridgeQueue> OpenQueueAsync(string name, long maxSize, CancellationToken cancellationToken)
    {
        var info = await Queues.CreateQueueAsync(
            new CreateQueueRequest { SessionId = SessionId, Name = name, Mode = OpenMode.CreateOrAttach, Kind = ObjectKind.Queue, Maxsize = maxSize },
            cancellationToken: cancellationToken).ConfigureAwait(false);
        return new BridgeQueue(this, info.Name);
    }

    /// <summary>Says goodbye (the host releases what the session holds); idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _keepAlive.ConfigureAwait(false);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await Sessions.GoodbyeAsync(new GoodbyeRequest { SessionId = SessionId }, cancellationToken: timeout.Token).ConfigureAwait(false);
        }
        catch (Grpc.Core.RpcException)
        {
            // The host is gone: its lease expiry does the goodbye's work.
        }
        finally
        {
            _stopping.Dispose();
            _channel.Dispose();
        }
    }

    private async Task KeepAliveAsync(TimeSpan period, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    await Sessions.KeepAliveAsync(new KeepAliveRequest { SessionId = SessionId }, cancellationToken: cancellationToken).ConfigureAwait(false);
                }
                catch (Grpc.Core.RpcException ex) when (ex.StatusCode != Grpc.Core.StatusCode.Cancelled)
                {
                    Trace.TraceWarning($"Bridge keep-alive failed: {ex.Status}");
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Disposed.
        }
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Bridge.Contracts.V1;
using Grpc.Core;
using Grpc.Net.Client;
using MessagePack;

namespace Bridge.Client;

/// <summary>
/// A session with a Bridge host: says hello, renews the lease in the background until
/// disposed, then says goodbye (which releases whatever the session still holds: locks,
/// semaphore units, queue items received but not acknowledged). Shared objects are opened
/// by name through it (<see cref="LockAsync(string?, CancellationToken)"/>,
/// <see cref="QueueAsync{T}(string?, long, CancellationToken)"/>, ...), and pools of
/// workers created (<see cref="PoolAsync(int, CancellationToken)"/>).
/// </summary>
/// <remarks>
/// Failures of the host's calls arrive as the .NET exceptions closest to the Python
/// client's: <see cref="ArgumentException"/> for bad input (ValueError, TypeError,
/// FileExistsError), <see cref="KeyNotFoundException"/> when attaching to a name that does
/// not exist (FileNotFoundError), <see cref="InvalidOperationException"/> for a release too
/// many or a <c>TaskDoneAsync</c> too many (ValueError), <see cref="System.Threading.SynchronizationLockException"/>
/// for an RLock or Condition the caller does not own (AssertionError),
/// <see cref="BrokenBarrierException"/>, <see cref="SessionEndedException"/>,
/// <see cref="ObjectLostException"/>, <see cref="TimeoutException"/>,
/// <see cref="IOException"/> when no host answers, <see cref="OperationCanceledException"/>
/// when the caller's token cancelled the call, else <see cref="BridgeException"/>; the
/// gRPC error is the inner exception. The session is thread-safe.
/// </remarks>
public sealed partial class BridgeSession : IAsyncDisposable
{
    private readonly GrpcChannel _channel;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _keepAlive;
    private readonly ConcurrentDictionary<string, QueueAcks> _acks = new(StringComparer.Ordinal);
    private long _owners;
    private int _disposed;

    private BridgeSession(GrpcChannel channel, string address, HelloReply hello, MessagePackSerializerOptions payloadOptions)
    {
        _channel = channel;
        Address = address;
        SessionId = hello.SessionId;
        Host = hello.Host;
        Sessions = new Sessions.SessionsClient(channel);
        Queues = new Queues.QueuesClient(channel);
        Synchronization = new Synchronization.SynchronizationClient(channel);
        SharedValues = new SharedValues.SharedValuesClient(channel);
        Execution = new Execution.ExecutionClient(channel);
        Payloads = new PayloadCodec(payloadOptions);
        _keepAlive = KeepAliveAsync(TimeSpan.FromSeconds(hello.LeaseSeconds / 3), _stopping.Token);
    }

    /// <summary>The host's id of this session (every <see cref="ObjectRef"/> carries it).</summary>
    public string SessionId { get; }

    /// <summary>The host, as it answered Hello.</summary>
    public HostInfo Host { get; }

    /// <summary>The raw Sessions client of the contract.</summary>
    public Sessions.SessionsClient Sessions { get; }

    /// <summary>The raw Queues client of the contract.</summary>
    public Queues.QueuesClient Queues { get; }

    /// <summary>The raw Synchronization client of the contract.</summary>
    public Synchronization.SynchronizationClient Synchronization { get; }

    /// <summary>The raw SharedValues client of the contract.</summary>
    public SharedValues.SharedValuesClient SharedValues { get; }

    /// <summary>The raw Execution client of the contract.</summary>
    public Execution.ExecutionClient Execution { get; }

    /// <summary>How items and results are (de)serialized (MessagePack).</summary>
    public MessagePackSerializerOptions PayloadOptions => Payloads.Options;

    internal string Address { get; }

    internal PayloadCodec Payloads { get; }

    /// <summary>
    /// Opens a session with the host at <see cref="BridgeAddress.Default"/> (GILBRIDGE_ADDRESS,
    /// else the per-user default socket), named after this process.
    /// </summary>
    public static Task<BridgeSession> OpenAsync(CancellationToken cancellationToken = default) =>
        OpenAsync(BridgeAddress.Default, DefaultClientName(), null, cancellationToken);

    /// <summary>Opens a session with the host at <paramref name="address"/>.</summary>
    /// <param name="address">Where the host listens.</param>
    /// <param name="clientName">Shown in the host's logs and status.</param>
    /// <param name="cancellationToken">Cancels the Hello.</param>
    public static Task<BridgeSession> OpenAsync(BridgeAddress address, string clientName, CancellationToken cancellationToken) =>
        OpenAsync(address, clientName, null, cancellationToken);

    /// <summary>Opens a session with the host at <paramref name="address"/>, with its own MessagePack options for items and results.</summary>
    /// <param name="address">Where the host listens.</param>
    /// <param name="clientName">Shown in the host's logs and status.</param>
    /// <param name="payloadOptions">
    /// How items and results are (de)serialized; null: attributed types as they say, other
    /// types by their public members (MessagePack's contractless resolver), with the limits
    /// for untrusted data.
    /// </param>
    /// <param name="cancellationToken">Cancels the Hello.</param>
    public static async Task<BridgeSession> OpenAsync(
        BridgeAddress address, string clientName, MessagePackSerializerOptions? payloadOptions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(address);
        var channel = address.CreateChannel();
        try
        {
            var hello = await new Sessions.SessionsClient(channel).HelloAsync(
                new HelloRequest { ClientName = clientName, Pid = Environment.ProcessId, Language = "dotnet" },
                cancellationToken: cancellationToken).ConfigureAwait(false);
            return new BridgeSession(channel, address.Value, hello, payloadOptions ?? PayloadCodec.DefaultOptions);
        }
        catch (RpcException ex)
        {
            channel.Dispose();
            throw BridgeErrors.Translate(ex, address.Value, cancellationToken);
        }
        catch
        {
            channel.Dispose();
            throw;
        }
    }

    /// <summary>This session's reference to the object <paramref name="name"/>.</summary>
    public ObjectRef Ref(string name) => new() { SessionId = SessionId, Name = name };

    /// <summary>Opens (creating when absent) a queue and returns an untyped view of it (see <see cref="QueueAsync{T}(string?, long, CancellationToken)"/> for the typed one).</summary>
    public async Task<BridgeQueue> OpenQueueAsync(string name, long maxSize, CancellationToken cancellationToken)
    {
        var info = await OpenQueueCoreAsync(name, ObjectKind.Queue, maxSize, BridgeOpenMode.CreateOrAttach, cancellationToken).ConfigureAwait(false);
        return new BridgeQueue(this, info.Name);
    }

    /// <summary>
    /// Says goodbye (the host releases what the session holds), after acknowledging the queue
    /// items this session received, so they are not delivered again; idempotent.
    /// </summary>
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
            foreach (var acks in _acks.Values)
            {
                await acks.FlushAsync(timeout.Token).ConfigureAwait(false);
            }

            await Sessions.GoodbyeAsync(new GoodbyeRequest { SessionId = SessionId }, cancellationToken: timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RpcException or BridgeException or IOException or OperationCanceledException)
        {
            // The host is gone or did not answer in time: its lease expiry does the goodbye's work.
        }
        finally
        {
            _stopping.Dispose();
            _channel.Dispose();
        }
    }

    /// <summary>One unary call, its failure translated (see the class remarks).</summary>
    internal async Task<TReply> CallAsync<TReply>(AsyncUnaryCall<TReply> call, CancellationToken cancellationToken)
    {
        using (call)
        {
            try
            {
                return await call.ResponseAsync.ConfigureAwait(false);
            }
            catch (RpcException ex)
            {
                throw BridgeErrors.Translate(ex, Address, cancellationToken);
            }
        }
    }

    /// <summary>
    /// A new owner identity. The host tells holders of an RLock (and a Condition's lock)
    /// apart by (session, owner); async code hops threads, so a .NET handle is the owner,
    /// not a thread.
    /// </summary>
    internal string NewOwner() =>
        string.Create(CultureInfo.InvariantCulture, $"dotnet-{Environment.ProcessId}-{Interlocked.Increment(ref _owners)}");

    /// <summary>The acknowledgements this session owes the queue <paramref name="name"/> (one per session and queue, as the host's leases are).</summary>
    internal QueueAcks AcksFor(string name) => _acks.GetOrAdd(name, static (queue, session) => new QueueAcks(session, queue), this);

    private static string DefaultClientName()
    {
        var args = Environment.GetCommandLineArgs();
        return "dotnet " + string.Join(' ', args.Length > 0 ? [Path.GetFileName(args[0]), .. args[1..]] : ["(unknown)"]);
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
                catch (RpcException ex) when (ex.StatusCode != StatusCode.Cancelled)
                {
                    Trace.TraceWarning($"Bridge keep-alive failed: {ex.Status}");
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or RpcException && cancellationToken.IsCancellationRequested)
        {
            // Disposed (a renewal in flight ends as a cancelled call).
        }
    }
}

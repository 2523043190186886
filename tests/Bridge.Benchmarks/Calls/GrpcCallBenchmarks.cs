using BenchmarkDotNet.Attributes;
using Bridge.Benchmarks.Infrastructure;
using Bridge.Benchmarks.Payloads;
using Bridge.Client;
using Bridge.Contracts.V1;
using Google.Protobuf;

namespace Bridge.Benchmarks.Calls;

/// <summary>
/// The same operations as <see cref="GrainCallBenchmarks"/>, through a real Bridge.Host
/// process over its Unix socket with the .NET client (Grpc.Net.Client): each is the full
/// round trip a client pays, Orleans included. GetHostInfo touches no grain, so it is the
/// gRPC share alone.
/// </summary>
[MemoryDiagnoser]
public class GrpcCallBenchmarks
{
    private const string Owner = "bench-thread";
    private static readonly TimeSpan SetupLimit = TimeSpan.FromSeconds(60);

    private HostProcess? _host;
    private BridgeSession? _session;
    private ObjectRef _lock = new();
    private ObjectRef _queue = new();
    private ByteString _item = ByteString.Empty;

    private BridgeSession Session => _session ?? throw new InvalidOperationException("not set up");

    [GlobalSetup]
    public async Task Setup()
    {
        using var limit = new CancellationTokenSource(SetupLimit);
        _host = await HostProcess.StartAsync(limit.Token);
        _session = await BridgeSession.OpenAsync(_host.Address, "benchmarks", limit.Token);
        var lockInfo = await Session.Synchronization.CreateLockAsync(
            new CreateLockRequest { SessionId = Session.SessionId, Name = "bench-lock", Kind = ObjectKind.Lock, InitialValue = 1 },
            cancellationToken: limit.Token);
        _lock = Session.Ref(lockInfo.Name);
        var queueInfo = await Session.Queues.CreateQueueAsync(
            new CreateQueueRequest { SessionId = Session.SessionId, Name = "bench-queue", Kind = ObjectKind.Queue },
            cancellationToken: limit.Token);
        _queue = Session.Ref(queueInfo.Name);
        _item = ByteString.CopyFrom(SamplePayloads.Encode(PayloadShape.Bin16));

        // As in GrainCallBenchmarks: one item leased, so each measured Get carries ack = 1.
        await PutAsync(limit.Token);
        await GetAsync(ack: 0, limit.Token);
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        if (_session is not null)
        {
            await _session.DisposeAsync();
        }

        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
    }

    [Benchmark(Description = "gRPC only (Sessions.GetHostInfo)")]
    public Task<HostInfo> GetHostInfo() => Session.Sessions.GetHostInfoAsync(new HostInfoRequest()).ResponseAsync;

    [Benchmark(Description = "gRPC + one grain call (Sessions.KeepAlive)")]
    public Task<KeepAliveReply> KeepAlive() =>
        Session.Sessions.KeepAliveAsync(new KeepAliveRequest { SessionId = Session.SessionId }).ResponseAsync;

    [Benchmark(Description = "Lock acquire+release")]
    public async Task LockAcquireRelease()
    {
        var reply = await Session.Synchronization.AcquireAsync(new AcquireRequest { Target = _lock, Owner = Owner, Count = 1 });
        if (!reply.Acquired)
        {
            throw new InvalidOperationException("an uncontended lock was not acquired");
        }

        await Session.Synchronization.ReleaseAsync(new ReleaseRequest { Target = _lock, Owner = Owner });
    }

    [Benchmark(Description = "Queue put+get, 16-byte item")]
    public async Task<int> QueuePutGet()
    {
        await PutAsync(CancellationToken.None);
        return await GetAsync(ack: 1, CancellationToken.None);
    }

    private async Task PutAsync(CancellationToken cancellationToken)
    {
        var request = new PutRequest { Target = _queue, Wait = new WaitPolicy { Block = true } };
        request.Items.Add(_item);
        await Session.Queues.PutAsync(request, cancellationToken: cancellationToken);
    }

    private async Task<int> GetAsync(long ack, CancellationToken cancellationToken)
    {
        var reply = await Session.Queues.GetAsync(
            new GetRequest { Target = _queue, MaxItems = 1, Ack = ack, Wait = new WaitPolicy { Block = true } },
            cancellationToken: cancellationToken);
        return reply.Items.Count;
    }
}

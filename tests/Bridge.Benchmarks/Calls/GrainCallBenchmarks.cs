using BenchmarkDotNet.Attributes;
using Bridge.Benchmarks.Infrastructure;
using Bridge.Benchmarks.Payloads;
using Bridge.Core.Objects;
using Bridge.Core.Sessions;

namespace Bridge.Benchmarks.Calls;

/// <summary>
/// Lock and Queue operations as the host's gRPC services issue them, straight to the
/// grains of an in-process silo: the Orleans share of a call, with no gRPC and no
/// request validation. Compare with <see cref="GrpcCallBenchmarks"/>.
/// </summary>
[MemoryDiagnoser]
public class GrainCallBenchmarks
{
    private const string Owner = "bench-thread";
    private static readonly TimeSpan SetupLimit = TimeSpan.FromSeconds(60);

    private LocalSilo? _silo;
    private string _session = "";
    private ISessionGrain _sessionGrain = null!;
    private ILockGrain _lock = null!;
    private IQueueGrain _queue = null!;
    private PayloadBatch _item = PayloadBatch.Empty;

    [GlobalSetup]
    public async Task Setup()
    {
        using var limit = new CancellationTokenSource(SetupLimit);
        _silo = await LocalSilo.StartAsync(limit.Token);
        _session = Guid.NewGuid().ToString("N");
        _sessionGrain = _silo.Grains.GetGrain<ISessionGrain>(_session);
        await _sessionGrain.Start(new SessionStart("benchmarks", Environment.ProcessId, "dotnet", TimeSpan.FromHours(1)));
        _lock = _silo.Grains.GetGrain<ILockGrain>("bench-lock");
        await _lock.Open(_session, OpenMode.Create, LockKind.Lock, 1);
        _queue = _silo.Grains.GetGrain<IQueueGrain>("bench-queue");
        await _queue.Open(_session, OpenMode.Create, QueueKind.Queue, 0);
        _item = new PayloadBatch([SamplePayloads.Encode(PayloadShape.Bin16)]);

        // One item leased up front, so every measured Get acknowledges the previous one
        // (ack = 1) as the Python client does, and the leased count stays at one.
        await _queue.Put(_session, _item, null, limit.Token);
        await _queue.Get(_session, 1, 0, null, limit.Token);
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        if (_silo is not null)
        {
            await _sessionGrain.End();
            await _silo.DisposeAsync();
        }
    }

    [Benchmark(Description = "one grain call (Session.KeepAlive)")]
    public Task KeepAlive() => _sessionGrain.KeepAlive();

    [Benchmark(Description = "Lock acquire+release")]
    public async Task LockAcquireRelease()
    {
        if (!await _lock.Acquire(_session, Owner, 1, null, CancellationToken.None))
        {
            throw new InvalidOperationException("an uncontended lock was not acquired");
        }

        await _lock.Release(_session, Owner);
    }

    [Benchmark(Description = "Queue put+get, 16-byte item")]
    public async Task<int> QueuePutGet()
    {
        await _queue.Put(_session, _item, null, CancellationToken.None);
        var got = await _queue.Get(_session, 1, 1, null, CancellationToken.None);
        return got.Items.Count;
    }
}

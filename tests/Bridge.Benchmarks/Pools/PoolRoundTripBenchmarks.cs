using BenchmarkDotNet.Attributes;
using Bridge.Benchmarks.Infrastructure;
using Bridge.Client;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using MessagePack;

namespace Bridge.Benchmarks.Pools;

/// <summary>
/// Chunks through a real host and two real Bridge.Worker processes: SubmitTasks, the
/// workers' pull over their Work streams, the C# kernel call, and the results back on the
/// owner's WatchPool stream. The kernel (Math.SumOfSquares(10)) is trivial, so this is
/// the machinery's cost. Compare with <see cref="DispatchLoopBenchmarks"/> (the pool's
/// bookkeeping alone).
/// </summary>
[MemoryDiagnoser]
public class PoolRoundTripBenchmarks
{
    private const int Workers = 2;
    private const int MapChunkCalls = 12_500;
    private static readonly TimeSpan SetupLimit = TimeSpan.FromSeconds(90);

    /// <summary>Far beyond any measured operation: a lost result fails the run instead of hanging it.</summary>
    private static readonly TimeSpan OperationLimit = TimeSpan.FromSeconds(60);

    private readonly CancellationTokenSource _running = new();
    private HostProcess? _host;
    private BridgeSession? _session;
    private GrpcChannel? _channel;
    private Execution.ExecutionClient _execution = null!;
    private AsyncServerStreamingCall<PoolEvent>? _watch;
    private string _poolId = "";
    private ByteString _item = ByteString.Empty;
    private long _nextTaskId;

    private BridgeSession Session => _session ?? throw new InvalidOperationException("not set up");

    [GlobalSetup]
    public async Task Setup()
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(_running.Token);
        limit.CancelAfter(SetupLimit);
        _host = await HostProcess.StartAsync(limit.Token);
        _session = await BridgeSession.OpenAsync(_host.Address, "benchmarks", limit.Token);
        _channel = _host.Address.CreateChannel();
        _execution = new Execution.ExecutionClient(_channel);
        var pool = await _execution.CreatePoolAsync(
            new CreatePoolRequest { SessionId = Session.SessionId, Processes = Workers, Name = "bench" },
            cancellationToken: limit.Token);
        _poolId = pool.PoolId;
        _watch = _execution.WatchPool(new WatchPoolRequest { SessionId = Session.SessionId, PoolId = _poolId }, cancellationToken: _running.Token);
        _item = ByteString.CopyFrom(MessagePackSerializer.Serialize(10L));

        // Warm both workers' kernel path before anything is measured.
        await RunAsync(chunks: 2 * Workers, callsPerChunk: 1);
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        if (_session is not null && _poolId.Length > 0)
        {
            using var limit = new CancellationTokenSource(SetupLimit);
            await _execution.TerminatePoolAsync(new PoolRequest { SessionId = Session.SessionId, PoolId = _poolId }, cancellationToken: limit.Token);
        }

        await _running.CancelAsync();
        _watch?.Dispose();
        _channel?.Dispose();
        if (_session is not null)
        {
            await _session.DisposeAsync();
        }

        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        _running.Dispose();
    }

    [Benchmark(Description = "apply: 1 chunk x 1 call")]
    public Task<long> OneCall() => RunAsync(chunks: 1, callsPerChunk: 1);

    [Benchmark(Description = "apply_async x100: 100 chunks x 1 call")]
    public Task<long> HundredCalls() => RunAsync(chunks: 100, callsPerChunk: 1);

    [Benchmark(Description = "map chunk: 1 chunk x 12,500 calls")]
    public Task<long> MapChunk() => RunAsync(chunks: 1, callsPerChunk: MapChunkCalls);

    /// <summary>Submits the chunks and reads the pool's events until every result is in; returns the values seen.</summary>
    private async Task<long> RunAsync(int chunks, int callsPerChunk)
    {
        var submit = new SubmitTasksRequest { SessionId = Session.SessionId, PoolId = _poolId };
        for (var i = 0; i < chunks; i++)
        {
            var chunk = new TaskChunk { TaskId = ++_nextTaskId, Function = new Callable { Kernel = "Bridge.Kernels.Math.SumOfSquares" }, Style = CallStyle.Map };
            for (var call = 0; call < callsPerChunk; call++)
            {
                chunk.Items.Add(_item);
            }

            submit.Tasks.Add(chunk);
        }

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(_running.Token);
        limit.CancelAfter(OperationLimit);
        await _execution.SubmitTasksAsync(submit, cancellationToken: limit.Token);
        var events = _watch?.ResponseStream ?? throw new InvalidOperationException("not set up");
        var results = 0;
        long values = 0;
        while (results < chunks)
        {
            if (!await events.MoveNext(limit.Token))
            {
                throw new InvalidOperationException("the pool's event stream ended");
            }

            if (events.Current.Result is { } result)
            {
                if (result.Error is { } error)
                {
                    throw new InvalidOperationException($"task {result.TaskId} failed: {error.Type}: {error.Message}");
                }

                results++;
                values += result.Values.Count;
            }
        }

        return values;
    }
}

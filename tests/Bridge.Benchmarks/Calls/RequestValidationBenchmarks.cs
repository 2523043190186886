using BenchmarkDotNet.Attributes;
using Bridge.Benchmarks.Payloads;
using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using Bridge.Host.Services;
using Google.Protobuf;

namespace Bridge.Benchmarks.Calls;

/// <summary>
/// The gRPC services' own work before a grain call: the checks the Synchronization and
/// Queues adapters run on a Lock pair's and a Queue put+get's requests (Requests.Target,
/// Requests.Timeout, Requests.Payloads with PayloadRules). The third share of a call,
/// beside <see cref="GrainCallBenchmarks"/> and <see cref="GrpcCallBenchmarks"/>.
/// </summary>
[MemoryDiagnoser]
public class RequestValidationBenchmarks
{
    private const long MaxPayloadBytes = 64L * 1024 * 1024;

    private readonly ObjectRef _lock = new() { SessionId = Guid.NewGuid().ToString("N"), Name = ObjectNames.NewAnonymous() };
    private readonly ObjectRef _queue = new() { SessionId = Guid.NewGuid().ToString("N"), Name = "jobs" };
    private readonly WaitPolicy _blocking = new() { Block = true };
    private PutRequest _put = new();

    [GlobalSetup]
    public void Setup()
    {
        _put = new PutRequest { Target = _queue, Wait = _blocking };
        _put.Items.Add(ByteString.CopyFrom(SamplePayloads.Encode(PayloadShape.Bin16)));
    }

    [Benchmark(Description = "Lock acquire+release requests")]
    public TimeSpan? LockPair()
    {
        // Acquire checks target and wait policy; Release the target again.
        Requests.Target(_lock);
        var timeout = Requests.Timeout(_blocking);
        Requests.Target(_lock);
        return timeout;
    }

    [Benchmark(Description = "Queue put+get requests, 16-byte item")]
    public int QueuePair()
    {
        Requests.Target(_put.Target);
        var items = Requests.Payloads(_put.Items, MaxPayloadBytes);
        Requests.Timeout(_put.Wait);
        Requests.Target(_queue);
        Requests.Timeout(_blocking);
        return items.Items.Count;
    }
}

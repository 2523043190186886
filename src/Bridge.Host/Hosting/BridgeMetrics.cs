using System.Diagnostics;
using System.Diagnostics.Metrics;
using Bridge.Core.Objects;
using Bridge.Core.Sessions;
using Bridge.Host.Execution;

namespace Bridge.Host.Hosting;

/// <summary>
/// The host's counters on the <c>Bridge.Host</c> meter, for <c>dotnet-counters monitor
/// --counters Bridge.Host -p PID</c> or any OpenTelemetry exporter: calls and their
/// durations by gRPC method and status, queue items put and got, and gauges of the
/// sessions, worker processes, workers serving pools, pools and the depth of the deepest
/// named queues.
/// </summary>
internal sealed class BridgeMetrics
{
    public const string MeterName = "Bridge.Host";

    /// <summary>Queues the depth gauge reports at most (the deepest named ones), so its tag set stays small.</summary>
    public const int DepthGaugeQueues = 20;

    private readonly Counter<long> _calls;
    private readonly Histogram<double> _callDuration;
    private readonly Counter<long> _queueItems;

    public BridgeMetrics(IMeterFactory meters, SessionTracker sessions, ObjectCatalog objects, WorkerLauncher launcher, PoolRegistry pools)
    {
        var meter = meters.Create(MeterName);
        _calls = meter.CreateCounter<long>("bridge.host.calls", "{call}", "gRPC calls answered, by method and status");
        _callDuration = meter.CreateHistogram<double>("bridge.host.call.duration", "ms", "Time to answer a call (a stream: its whole life), by method");
        _queueItems = meter.CreateCounter<long>("bridge.host.queue.items", "{item}", "Queue items put and got, by direction");
        meter.CreateObservableGauge("bridge.host.sessions", () => sessions.ActiveCount, "{session}", "Client sessions alive");
        meter.CreateObservableGauge("bridge.host.workers", () => launcher.RunningWorkers, "{process}", "Worker processes, idle or serving");
        meter.CreateObservableGauge("bridge.host.workers.in_pools", () => pools.WorkersInPools, "{process}", "Workers serving a pool or Process");
        meter.CreateObservableGauge("bridge.host.pools", () => pools.Count, "{pool}", "Pools and Processes running");
        meter.CreateObservableGauge("bridge.host.objects", () => objects.Count, "{object}", "Objects this host holds, named and anonymous");
        meter.CreateObservableGauge(
            "bridge.host.queue.depth",
            () => objects.DeepestNamedQueues(DepthGaugeQueues)
                .Select(queue => new Measurement<long>(queue.Depth, new KeyValuePair<string, object?>("queue", queue.Name))),
            "{item}",
            $"Items waiting in a named queue, by queue (the {DepthGaugeQueues} deepest)");
    }

    /// <summary>Counts one answered call of <paramref name="method"/> ("bridge.v1.Queues/Put").</summary>
    public void CallEnded(string method, string status, long startTimestamp)
    {
        var tags = new TagList { { "rpc.method", method }, { "rpc.status", status } };
        _calls.Add(1, tags);
        _callDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds, new TagList { { "rpc.method", method } });
    }

    public void ItemsPut(long count) => _queueItems.Add(count, new KeyValuePair<string, object?>("direction", "put"));

    public void ItemsGot(long count) => _queueItems.Add(count, new KeyValuePair<string, object?>("direction", "get"));
}

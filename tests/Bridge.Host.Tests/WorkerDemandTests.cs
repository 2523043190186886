using System.Diagnostics;
using Bridge.Host.Execution;

namespace Bridge.Host.Tests;

[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class WorkerDemandTests
{
    private static readonly long Second = Stopwatch.Frequency;

    [Fact(Timeout = 10_000)]
    public async Task A_session_is_prepared_for_from_its_second_burst_with_the_most_it_used_at_once()
    {
        await Task.Yield();
        var demand = new WorkerDemand();
        var start = Stopwatch.GetTimestamp();

        // The first burst (three Processes started together) is a possible one-off.
        Assert.Null(demand.Record(start, inUse: 1));
        Assert.Null(demand.Record(start + (Second / 100), inUse: 2));
        Assert.Null(demand.Record(start + (Second / 50), inUse: 3));

        // A second burst: keep as many prepared as were in use at once.
        Assert.Equal(3, demand.Record(start + (2 * Second), inUse: 1));
        Assert.Equal(3, demand.Record(start + (4 * Second), inUse: 1));
    }

    [Fact(Timeout = 10_000)]
    public async Task More_workers_in_use_later_raise_the_count()
    {
        await Task.Yield();
        var demand = new WorkerDemand();
        var start = Stopwatch.GetTimestamp();
        Assert.Null(demand.Record(start, inUse: 1));
        Assert.Equal(1, demand.Record(start + (2 * Second), inUse: 1));
        var burst = start + (4 * Second);
        Assert.Equal(1, demand.Record(burst, inUse: 1));
        Assert.Equal(2, demand.Record(burst + 1, inUse: 2));
        Assert.Equal(3, demand.Record(burst + 2, inUse: 3));
    }

    [Fact(Timeout = 10_000)]
    public async Task Pools_made_one_after_another_within_a_second_count_as_the_workers_of_one()
    {
        await Task.Yield();
        var demand = new WorkerDemand();
        var start = Stopwatch.GetTimestamp();

        // `with Pool(2)` ten times in 100 ms: twenty acquisitions, never more than two in use.
        int? wanted = null;
        for (var cycle = 0; cycle < 10; cycle++)
        {
            var at = start + (cycle * Second / 100);
            demand.Record(at, inUse: 1);
            wanted = demand.Record(at + 1, inUse: 2);
        }

        Assert.Null(wanted); // still the first burst
        Assert.Equal(2, demand.Record(start + (2 * Second), inUse: 1));
    }

    [Fact(Timeout = 10_000)]
    public async Task The_warm_count_follows_the_most_in_use_from_the_first_burst()
    {
        await Task.Yield();
        var demand = new WorkerDemand();
        var start = Stopwatch.GetTimestamp();
        Assert.Equal(1, demand.RecordPeak(start, inUse: 1));
        Assert.Equal(2, demand.RecordPeak(start + 1, inUse: 2));
        Assert.Equal(3, demand.RecordPeak(start + 2, inUse: 3));

        // Fewer in use later keeps the peak.
        Assert.Equal(3, demand.RecordPeak(start + (2 * Second), inUse: 1));
    }
}

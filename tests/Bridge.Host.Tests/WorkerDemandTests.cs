using System.Diagnostics;
using Bridge.Host.Execution;

namespace Bridge.Host.Tests;

[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class WorkerDemandTests
{
    private static readonly long Second = Stopwatch.Frequency;

    [Fact(Timeout = 10_000)]
    public async Task A_session_is_prepared_for_from_its_second_burst_with_its_largest_burst()
    {
        await Task.Yield();
        var demand = new WorkerDemand();
        var start = Stopwatch.GetTimestamp();

        // The first burst (three Processes started together) is a possible one-off.
        Assert.Null(demand.Record(start));
        Assert.Null(demand.Record(start + (Second / 100)));
        Assert.Null(demand.Record(start + (Second / 50)));

        // A second burst: keep as many prepared as the largest burst took.
        Assert.Equal(3, demand.Record(start + (2 * Second)));
        Assert.Equal(3, demand.Record(start + (4 * Second)));
    }

    [Fact(Timeout = 10_000)]
    public async Task A_larger_later_burst_raises_the_count()
    {
        await Task.Yield();
        var demand = new WorkerDemand();
        var start = Stopwatch.GetTimestamp();
        Assert.Null(demand.Record(start));
        Assert.Equal(1, demand.Record(start + (2 * Second)));
        var burst = start + (4 * Second);
        Assert.Equal(1, demand.Record(burst));
        Assert.Equal(2, demand.Record(burst + 1));
        Assert.Equal(3, demand.Record(burst + 2));
    }

    [Fact(Timeout = 10_000)]
    public async Task The_warm_count_follows_the_largest_burst_from_the_first_one()
    {
        await Task.Yield();
        var demand = new WorkerDemand();
        var start = Stopwatch.GetTimestamp();
        Assert.Equal(1, demand.RecordPeak(start));
        Assert.Equal(2, demand.RecordPeak(start + 1));
        Assert.Equal(3, demand.RecordPeak(start + 2));

        // A later, smaller burst keeps the peak.
        Assert.Equal(3, demand.RecordPeak(start + (2 * Second)));
    }
}

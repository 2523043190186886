using System.Diagnostics;

namespace Bridge.Core.Tests;

[Collection(ClusterCollection.Name)]
public sealed class EventTests(ClusterFixture fixture) : GrainTestBase(fixture)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact(Timeout = 30000)]
    public async Task Set_and_clear_the_flag()
    {
        var s = await NewSession();
        var e = await NewEvent(s);

        Assert.False(await e.IsSet(s));
        await e.Set(s);
        Assert.True(await e.IsSet(s));
        Assert.True(await e.Wait(s, TimeSpan.Zero, None));
        await e.Clear(s);
        Assert.False(await e.IsSet(s));
        Assert.False(await e.Wait(s, TimeSpan.Zero, None));
    }

    [Fact(Timeout = 30000)]
    public async Task Wait_times_out_with_false()
    {
        var s = await NewSession();
        var e = await NewEvent(s);

        var clock = Stopwatch.StartNew();
        Assert.False(await e.Wait(s, TimeSpan.FromMilliseconds(200), None));
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(180), $"returned after {clock.Elapsed}");
    }

    [Fact(Timeout = 30000)]
    public async Task Set_wakes_every_waiter()
    {
        var a = await NewSession();
        var b = await NewSession();
        var e = await NewEvent(a);
        var waiters = new[]
        {
            e.Wait(a, null, None),
            e.Wait(b, null, None),
            e.Wait(b, TimeSpan.FromSeconds(20), None),
        };
        await AssertBlocked(Task.WhenAny(waiters));

        await e.Set(a);

        Assert.All(await Soon(Task.WhenAll(waiters)), Assert.True);
    }

    [Fact(Timeout = 30000)]
    public async Task Cancelled_waiter_throws_and_the_others_still_wake()
    {
        var s = await NewSession();
        var e = await NewEvent(s);
        using var cancel = new CancellationTokenSource();
        var cancelled = e.Wait(s, null, cancel.Token);
        var other = e.Wait(s, null, None);
        await AssertBlocked(cancelled);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.False(other.IsCompleted);

        await e.Set(s);
        Assert.True(await Soon(other));
    }

    [Fact(Timeout = 30000)]
    public async Task Waiter_of_an_ended_session_stops_waiting()
    {
        var a = await NewSession();
        var b = await NewSession();
        var e = await NewEvent(a);
        var waiting = e.Wait(b, null, None);
        await AssertBlocked(waiting);

        await Session(b).End();

        await AssertSessionEnded(waiting);
    }

    private async Task<IEventGrain> NewEvent(string sessionId)
    {
        var e = Event(NewName("event"));
        await e.Open(sessionId, OpenMode.Create);
        return e;
    }
}

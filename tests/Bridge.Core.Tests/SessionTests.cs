using System.Diagnostics;

namespace Bridge.Core.Tests;

[Collection(ClusterCollection.Name)]
public sealed class SessionTests(ClusterFixture fixture) : GrainTestBase(fixture)
{
    [Fact(Timeout = 30000)]
    public async Task KeepAlive_of_a_session_never_started_is_SessionEnded()
    {
        await AssertBridgeError(
            () => Session(Guid.NewGuid().ToString("N")).KeepAlive(),
            BridgeErrorCode.NotFound,
            "ConnectionResetError",
            "has ended");
    }

    [Fact(Timeout = 30000)]
    public async Task Started_session_renews_then_ends_on_goodbye_idempotently()
    {
        var id = await NewSession();
        await Session(id).KeepAlive();

        await Session(id).End();
        await Session(id).End();

        await AssertBridgeError(() => Session(id).KeepAlive(), BridgeErrorCode.NotFound, "ConnectionResetError");
        await AssertBridgeError(
            () => Session(id).Attached(new ObjectAddress(ObjectFamily.Lock, "x")),
            BridgeErrorCode.NotFound,
            "ConnectionResetError");
    }

    [Fact(Timeout = 30000)]
    public async Task Start_rejects_a_non_positive_lease()
    {
        await AssertBridgeError(
            () => Session(Guid.NewGuid().ToString("N")).Start(new SessionStart("t", 1, "dotnet", TimeSpan.Zero)),
            BridgeErrorCode.InvalidArgument,
            "ValueError");
    }

    [Fact(Timeout = 30000)]
    public async Task Lease_lapses_without_KeepAlive()
    {
        var id = await NewSession(TimeSpan.FromSeconds(1));
        var clock = Stopwatch.StartNew();
        var probe = NewName("probe");

        await Eventually(
            async () =>
            {
                // Probing with KeepAlive would renew the lease.
                try
                {
                    await Session(id).Attached(new ObjectAddress(ObjectFamily.Event, probe));
                    return false;
                }
                catch (BridgeException e) when (e.Code == BridgeErrorCode.NotFound)
                {
                    return true;
                }
            },
            "the lease lapses");

        // Lapsed after the lease, not before; noticed within the check period.
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(3));
    }

    [Fact(Timeout = 30000)]
    public async Task KeepAlive_keeps_a_short_lease_alive()
    {
        // Renewed every 0.3 s for 3 s: well past the 2 s lease, with slack for a busy machine.
        var id = await NewSession(TimeSpan.FromSeconds(2));
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 10; i++)
        {
            await Task.Delay(300);
            var before = clock.Elapsed;
            try
            {
                await Session(id).KeepAlive();
            }
            catch (BridgeException e)
            {
                Assert.Fail($"keepalive {i} sent at {before} failed at {clock.Elapsed}: {e.Message}");
            }
        }
    }

    [Fact(Timeout = 30000)]
    public async Task Tracker_counts_live_sessions()
    {
        var before = Fixture.Tracker.ActiveCount;
        var id = await NewSession();
        Assert.Equal(before + 1, Fixture.Tracker.ActiveCount);

        await Session(id).End();
        Assert.Equal(before, Fixture.Tracker.ActiveCount);
    }

    [Fact(Timeout = 30000)]
    public async Task Ended_session_cannot_open_or_use_objects()
    {
        var owner = await NewSession();
        var name = NewName("ev");
        await Event(name).Open(owner, OpenMode.Create);

        var late = await NewSession();
        await Session(late).End();

        await AssertBridgeError(() => Event(NewName("ev")).Open(late, OpenMode.Create), BridgeErrorCode.NotFound, "ConnectionResetError");
        await AssertBridgeError(() => Event(name).Set(late), BridgeErrorCode.NotFound, "ConnectionResetError");
        Assert.False(await Event(name).IsSet(owner));
    }

    [Fact(Timeout = 30000)]
    public async Task Ending_tells_every_attached_object()
    {
        var id = await NewSession();
        var queue = NewName("q");
        var value = NewName("v");
        await Queue(queue).Open(id, OpenMode.Create, QueueKind.Queue, 0);
        await Value(value).Open(id, OpenMode.Create, "i", 1, false, [], "", LockKind.RLock);

        await Session(id).End();

        // The session was their only user: both objects are freed.
        var other = await NewSession();
        await AssertBridgeError(() => Queue(queue).Open(other, OpenMode.Attach, QueueKind.Queue, 0), BridgeErrorCode.NotFound, "FileNotFoundError");
        await AssertBridgeError(() => Value(value).Read(other, 0, 0), BridgeErrorCode.NotFound, "FileNotFoundError");
    }

    [Fact(Timeout = 30000)]
    public async Task ObjectGrains_maps_each_family_to_its_grain_interface()
    {
        Assert.IsAssignableFrom<ILockGrain>(ObjectGrains.Get(Client, new ObjectAddress(ObjectFamily.Lock, "a")));
        Assert.IsAssignableFrom<IEventGrain>(ObjectGrains.Get(Client, new ObjectAddress(ObjectFamily.Event, "a")));
        Assert.IsAssignableFrom<IConditionGrain>(ObjectGrains.Get(Client, new ObjectAddress(ObjectFamily.Condition, "a")));
        Assert.IsAssignableFrom<IBarrierGrain>(ObjectGrains.Get(Client, new ObjectAddress(ObjectFamily.Barrier, "a")));
        Assert.IsAssignableFrom<IQueueGrain>(ObjectGrains.Get(Client, new ObjectAddress(ObjectFamily.Queue, "a")));
        Assert.IsAssignableFrom<IValueGrain>(ObjectGrains.Get(Client, new ObjectAddress(ObjectFamily.Value, "a")));
        await Task.CompletedTask;
    }
}

namespace Bridge.Core.Tests;

/// <summary>What host status reads: the session tracker, the object catalog and each object's GetStatus.</summary>
[Collection(ClusterCollection.Name)]
public sealed class StatusTests(ClusterFixture fixture) : GrainTestBase(fixture)
{
    [Fact(Timeout = 30000)]
    public async Task A_queue_is_in_the_catalog_with_its_depth_until_freed_and_reports_its_state()
    {
        var s = await NewSession();
        var name = NewName("status-queue");
        var address = new ObjectAddress(ObjectFamily.Queue, name);
        await Queue(name).Open(s, OpenMode.Create, QueueKind.Joinable, 5);
        await Queue(name).Put(s, new PayloadBatch([[1], [2], [3]]), null, CancellationToken.None);
        var got = await Queue(name).Get(s, 1, 0, TimeSpan.Zero, CancellationToken.None);
        Assert.Single(got.Items);

        Assert.Contains(address, Fixture.Catalog.Addresses());
        Assert.Contains((name, 2L), Fixture.Catalog.DeepestNamedQueues(int.MaxValue));
        var status = await Queue(name).GetStatus();
        Assert.NotNull(status);
        Assert.Equal((1, 0), (status.Sessions, status.Waiters));
        Assert.Equal(new QueueDetail(QueueKind.Joinable, 2, 5, 1, 0, 3, 0, 0, 0), status.Detail);
        var session = Assert.Single(Fixture.Tracker.Sessions(), r => r.Id == s);
        Assert.Equal(("core-tests", Environment.ProcessId, "dotnet", 1), (session.ClientName, session.Pid, session.Language, session.Objects));

        await Queue(name).Detach(s);
        await Session(s).Detached(address);

        Assert.DoesNotContain(address, Fixture.Catalog.Addresses());
        Assert.Null(await Queue(name).GetStatus());
        Assert.Equal(0, Assert.Single(Fixture.Tracker.Sessions(), r => r.Id == s).Objects);
    }

    [Fact(Timeout = 30000)]
    public async Task A_held_semaphore_reports_its_value_holders_and_waiters()
    {
        var holder = await NewSession();
        var waiter = await NewSession();
        var name = NewName("status-semaphore");
        await Lock(name).Open(holder, OpenMode.Create, LockKind.Semaphore, 1);
        Assert.True(await Lock(name).Acquire(holder, "t", 1, null, CancellationToken.None));
        using var stop = new CancellationTokenSource();
        var blocked = Lock(name).Acquire(waiter, "t", 1, null, stop.Token);
        await AssertBlocked(blocked);

        var status = await Lock(name).GetStatus();

        Assert.NotNull(status);
        Assert.Equal((2, 1), (status.Sessions, status.Waiters));
        var detail = Assert.IsType<LockDetail>(status.Detail);
        Assert.Equal((LockKind.Semaphore, 0L, 1L), (detail.Kind, detail.Value, detail.InitialValue));
        Assert.Equal([holder], detail.HolderSessions);
        await Lock(name).Release(holder, "t");
        Assert.True(await Soon(blocked));
    }
}

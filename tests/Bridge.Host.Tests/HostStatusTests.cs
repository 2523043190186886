using Bridge.Client;
using Bridge.Contracts.V1;
using Grpc.Core;

namespace Bridge.Host.Tests;

/// <summary>Sessions.GetHostStatus of a real host process: sessions, objects with their state, the bounds.</summary>
public sealed class HostStatusTests(HostFixture fixture) : IClassFixture<HostFixture>, IDisposable
{
    private const int TestTimeout = 30_000;

    private readonly CancellationTokenSource _testTimeout = new(TimeSpan.FromMilliseconds(TestTimeout));

    private CancellationToken Token => _testTimeout.Token;

    [Fact(Timeout = TestTimeout)]
    public async Task Status_lists_the_sessions_a_queue_with_its_items_and_a_held_lock_with_its_waiter()
    {
        await using var holder = await BridgeSession.OpenAsync(fixture.Host.Address, "status-holder", Token);
        await using var waiter = await BridgeSession.OpenAsync(fixture.Host.Address, "status-waiter", Token);
        var queueName = $"status-queue-{Guid.NewGuid():N}";
        var lockName = $"status-lock-{Guid.NewGuid():N}";
        var queue = await holder.OpenQueueAsync(queueName, 10, Token);
        for (var i = 0; i < 4; i++)
        {
            await queue.PutAsync(i, Token);
        }

        var guard = await holder.LockAsync(lockName, Token);
        await using var hold = await guard.AcquireAsync(TimeSpan.FromSeconds(5), Token);
        var blocked = (await waiter.LockAsync(lockName, Token)).AcquireAsync(TimeSpan.FromSeconds(20), Token);

        var status = await StatusUntil(s => Find(s, lockName)?.Waiters == 1);

        var sessions = status.Sessions.ToDictionary(s => s.SessionId);
        Assert.Equal("status-holder", sessions[holder.SessionId].ClientName);
        Assert.Equal(Environment.ProcessId, sessions[holder.SessionId].Pid);
        Assert.Equal(2, sessions[holder.SessionId].Objects);
        Assert.Equal(1, sessions[waiter.SessionId].Objects);
        Assert.True(sessions[holder.SessionId].AgeSeconds >= 0);

        var queued = Find(status, queueName)!;
        Assert.Equal((ObjectKind.Queue, "queue", false, 1, 0), (queued.Kind, queued.Family, queued.Anonymous, queued.Sessions, queued.Waiters));
        Assert.Equal((4L, 10L, 0L), (queued.Queue.Size, queued.Queue.Maxsize, queued.Queue.Leased));

        var locked = Find(status, lockName)!;
        Assert.Equal((ObjectKind.Lock, 2, 1), (locked.Kind, locked.Sessions, locked.Waiters));
        Assert.Equal(0, locked.Lock.Value);
        Assert.Equal([holder.SessionId], locked.Lock.HolderSessions);
        Assert.Equal(0, status.ObjectsUnanswered);
        Assert.Equal(fixture.Host.Pid, status.Host.Pid);

        await hold.DisposeAsync();
        await using (await blocked)
        {
        }
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Status_lists_named_objects_first_and_counts_those_left_out()
    {
        await using var session = await BridgeSession.OpenAsync(fixture.Host.Address, "status-bounds", Token);
        await session.EventAsync(null, Token);
        await session.EventAsync($"status-event-{Guid.NewGuid():N}", Token);
        using var channel = fixture.Host.Address.CreateChannel();
        var client = new Sessions.SessionsClient(channel);

        var all = await client.GetHostStatusAsync(new HostStatusRequest(), cancellationToken: Token);
        var one = await client.GetHostStatusAsync(new HostStatusRequest { MaxObjects = 1 }, cancellationToken: Token);

        Assert.Equal(all.Objects.Count + all.ObjectsOmitted, one.Objects.Count + one.ObjectsOmitted);
        Assert.Single(one.Objects);
        Assert.False(one.Objects[0].Anonymous);
        var firstAnonymous = all.Objects.ToList().FindIndex(o => o.Anonymous);
        Assert.True(firstAnonymous >= 0);
        Assert.DoesNotContain(all.Objects.Skip(firstAnonymous), o => !o.Anonymous);
        var error = await Assert.ThrowsAsync<RpcException>(
            () => client.GetHostStatusAsync(new HostStatusRequest { MaxObjects = -1 }, cancellationToken: Token).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    /// <summary>
    /// One status is consistent in the direction clients read it: a session that an object
    /// counts among its users (it attached before the object answered) is listed counting
    /// that object. Sessions open an event one after another (none ends) while statuses are
    /// read as fast as they come; in each, the event's user count is at most the listed
    /// sessions that count an object. (With the sessions read before the objects, a session
    /// attaching in between was listed at 0 objects: the "waiter at 0" of test_cli.)
    /// </summary>
    [Fact(Timeout = TestTimeout)]
    public async Task A_session_that_an_object_counts_is_listed_counting_it_in_the_same_status()
    {
        var name = $"status-event-{Guid.NewGuid():N}";
        var opened = new List<BridgeSession>();
        await using var holder = await BridgeSession.OpenAsync(fixture.Host.Address, "status-consistency", Token);
        opened.Add(holder);
        await holder.EventAsync(name, Token);
        try
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(Token);
            var opener = Task.Run(async () =>
            {
                for (var i = 0; i < 60 && !stop.IsCancellationRequested; i++)
                {
                    var session = await BridgeSession.OpenAsync(fixture.Host.Address, "status-consistency", Token);
                    lock (opened)
                    {
                        opened.Add(session);
                    }

                    await session.EventAsync(name, Token);
                }
            }, Token);

            using var channel = fixture.Host.Address.CreateChannel();
            var client = new Sessions.SessionsClient(channel);
            var statuses = 0;
            while (!opener.IsCompleted)
            {
                var status = await client.GetHostStatusAsync(new HostStatusRequest(), cancellationToken: Token);
                statuses++;
                if (Find(status, name) is not { } shown)
                {
                    continue;
                }

                var counting = status.Sessions.Count(s => s.ClientName == "status-consistency" && s.Objects >= 1);
                Assert.True(shown.Sessions <= counting,
                    $"status {statuses}: the event counts {shown.Sessions} sessions, but only {counting} listed sessions count an object: "
                    + string.Join(", ", status.Sessions.Where(s => s.ClientName == "status-consistency").Select(s => s.Objects)));
            }

            await opener;
            Assert.True(statuses >= 10, $"only {statuses} statuses read while the sessions opened");
        }
        finally
        {
            foreach (var session in opened.Skip(1))
            {
                await session.DisposeAsync();
            }
        }
    }

    private async Task<HostStatus> StatusUntil(Func<HostStatus, bool> condition)
    {
        using var channel = fixture.Host.Address.CreateChannel();
        var client = new Sessions.SessionsClient(channel);
        while (true)
        {
            var status = await client.GetHostStatusAsync(new HostStatusRequest(), cancellationToken: Token);
            if (condition(status))
            {
                return status;
            }

            await Task.Delay(50, Token);
        }
    }

    private static ObjectStatus? Find(HostStatus status, string name) => status.Objects.FirstOrDefault(o => o.Name == name);

    public void Dispose() => _testTimeout.Dispose();
}

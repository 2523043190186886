using System.Collections.Concurrent;
using System.Diagnostics;

namespace Bridge.Core.Tests;

[Collection(ClusterCollection.Name)]
public sealed class LockTests(ClusterFixture fixture) : GrainTestBase(fixture)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact(Timeout = 30000)]
    public async Task Lock_is_exclusive_and_reports_its_state()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.Lock);

        Assert.Equal(new LockSnapshot(1, false, 0), await l.GetState(s, "t1"));
        Assert.True(await l.Acquire(s, "t1", 0, null, None));
        Assert.False(await l.Acquire(s, "t2", 0, TimeSpan.Zero, None));
        Assert.False(await l.Acquire(s, "t1", 0, TimeSpan.Zero, None));
        Assert.Equal(new LockSnapshot(0, true, 1), await l.GetState(s, "t1"));
        Assert.Equal(new LockSnapshot(0, false, 1), await l.GetState(s, "t2"));

        await l.Release(s, "t1");
        Assert.Equal(new LockSnapshot(1, false, 0), await l.GetState(s, "t1"));
    }

    [Fact(Timeout = 30000)]
    public async Task Lock_released_while_unlocked_is_ValueError()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.Lock);

        await AssertBridgeError(() => l.Release(s, "t"), BridgeErrorCode.FailedPrecondition, "ValueError", "released too many times");
    }

    [Fact(Timeout = 30000)]
    public async Task Lock_may_be_released_by_another_session()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.Lock);
        Assert.True(await l.Acquire(a, "t", 0, null, None));

        await l.Release(b, "other");

        Assert.True(await l.Acquire(b, "other", 0, TimeSpan.Zero, None));
    }

    [Fact(Timeout = 30000)]
    public async Task Acquire_times_out_with_false()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.Lock);
        await l.Acquire(s, "t1", 0, null, None);

        var clock = Stopwatch.StartNew();
        Assert.False(await l.Acquire(s, "t2", 0, TimeSpan.FromMilliseconds(200), None));
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(180), $"returned after {clock.Elapsed}");

        // The timed-out waiter is gone: a release frees the lock.
        await l.Release(s, "t1");
        Assert.Equal(1, (await l.GetState(s, "t1")).Value);
    }

    [Fact(Timeout = 30000)]
    public async Task Waiters_are_served_first_come_first_served()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.Lock);
        await l.Acquire(s, "holder", 0, null, None);

        var order = new ConcurrentQueue<string>();
        var waiters = new List<Task>();
        foreach (var owner in new[] { "w1", "w2", "w3" })
        {
            waiters.Add(AcquireAndRecord(l, s, owner, order));
            await Task.Delay(50);
        }

        // Each release hands the lock to the next waiter, never to a newcomer.
        for (var i = 0; i < 3; i++)
        {
            await l.Release(s, "any");
            Assert.False(await l.Acquire(s, "newcomer", 0, TimeSpan.Zero, None));
            await Eventually(() => Task.FromResult(order.Count == i + 1), $"waiter {i + 1} acquires");
        }

        await Soon(Task.WhenAll(waiters));
        Assert.Equal(["w1", "w2", "w3"], order);
    }

    [Fact(Timeout = 30000)]
    public async Task Cancelling_a_waiter_removes_it()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.Lock);
        await l.Acquire(s, "holder", 0, null, None);

        using var cancel = new CancellationTokenSource();
        var waiting = l.Acquire(s, "cancelled", 0, null, cancel.Token);
        await AssertBlocked(waiting);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);

        // Let the cancellation reach the grain, then release: nobody takes the lock.
        await Task.Delay(Settle);
        await l.Release(s, "holder");
        Assert.Equal(1, (await l.GetState(s, "x")).Value);
    }

    [Fact(Timeout = 30000)]
    public async Task Lock_of_a_session_that_ends_goes_to_the_next_waiter()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.Lock);
        await l.Acquire(a, "t", 0, null, None);
        var waiting = l.Acquire(b, "t", 0, null, None);
        await AssertBlocked(waiting);

        await Session(a).End();

        Assert.True(await Soon(waiting));
        Assert.True((await l.GetState(b, "t")).OwnedByCaller);
    }

    [Fact(Timeout = 30000)]
    public async Task Lock_of_a_session_whose_lease_lapses_goes_to_the_next_waiter()
    {
        var dying = await NewSession(TimeSpan.FromSeconds(1));
        var b = await NewSession();
        var l = await NewLock(b, LockKind.RLock);
        Assert.True(await l.Acquire(dying, "t", 2, null, None));

        Assert.True(await l.Acquire(b, "t", 0, TimeSpan.FromSeconds(5), None));
        Assert.Equal(new LockSnapshot(0, true, 1), await l.GetState(b, "t"));
    }

    [Fact(Timeout = 30000)]
    public async Task Waiter_of_a_session_that_ends_stops_waiting_without_the_lock()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.Lock);
        await l.Acquire(a, "t", 0, null, None);
        var waiting = l.Acquire(b, "t", 0, null, None);
        await AssertBlocked(waiting);

        await Session(b).End();

        await AssertSessionEnded(waiting);
        await l.Release(a, "t");
        Assert.Equal(1, (await l.GetState(a, "t")).Value);
    }

    [Fact(Timeout = 30000)]
    public async Task RLock_reenters_for_its_owner_only()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.RLock);

        Assert.True(await l.Acquire(s, "t1", 0, null, None));
        Assert.True(await l.Acquire(s, "t1", 0, TimeSpan.Zero, None));
        Assert.False(await l.Acquire(s, "t2", 0, TimeSpan.Zero, None));
        Assert.Equal(new LockSnapshot(0, true, 2), await l.GetState(s, "t1"));

        await l.Release(s, "t1");
        Assert.Equal(new LockSnapshot(0, true, 1), await l.GetState(s, "t1"));
        await l.Release(s, "t1");
        Assert.Equal(new LockSnapshot(1, false, 0), await l.GetState(s, "t1"));
    }

    [Fact(Timeout = 30000)]
    public async Task RLock_released_by_a_non_owner_or_unowned_is_AssertionError()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.RLock);

        await AssertBridgeError(() => l.Release(a, "t1"), BridgeErrorCode.FailedPrecondition, "AssertionError", "not owned by thread");

        await l.Acquire(a, "t1", 0, null, None);
        await AssertBridgeError(() => l.Release(a, "t2"), BridgeErrorCode.FailedPrecondition, "AssertionError", "attempt to release recursive lock not owned by thread");
        await AssertBridgeError(() => l.Release(b, "t1"), BridgeErrorCode.FailedPrecondition, "AssertionError");
        Assert.Equal(1, (await l.GetState(a, "t1")).Count);
    }

    [Fact(Timeout = 30000)]
    public async Task RLock_takes_count_levels_at_once_and_ReleaseAll_gives_them_back()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.RLock);

        Assert.True(await l.Acquire(s, "t", 3, null, None));
        Assert.Equal(3, (await l.GetState(s, "t")).Count);
        Assert.Equal(3, await l.ReleaseAll(s, "t"));
        Assert.Equal(new LockSnapshot(1, false, 0), await l.GetState(s, "t"));
    }

    [Fact(Timeout = 30000)]
    public async Task ReleaseAll_by_a_non_owner_is_AssertionError()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.Lock);
        await AssertBridgeError(() => l.ReleaseAll(s, "t"), BridgeErrorCode.FailedPrecondition, "AssertionError", "cannot release un-acquired lock");

        await l.Acquire(s, "t", 0, null, None);
        await AssertBridgeError(() => l.ReleaseAll(s, "u"), BridgeErrorCode.FailedPrecondition, "AssertionError");
        Assert.Equal(1, await l.ReleaseAll(s, "t"));
    }

    [Fact(Timeout = 30000)]
    public async Task Negative_timeout_is_InvalidArgument()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.Lock);
        await AssertBridgeError(() => l.Acquire(s, "t", 0, TimeSpan.FromSeconds(-1), None), BridgeErrorCode.InvalidArgument, "ValueError", "negative");
    }

    [Fact(Timeout = 30000)]
    public async Task Only_an_RLock_takes_several_levels()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.Lock);
        await AssertBridgeError(() => l.Acquire(s, "t", 2, null, None), BridgeErrorCode.InvalidArgument, "ValueError");
    }

    [Fact(Timeout = 30000)]
    public async Task Semaphore_counts_units_and_may_grow_past_its_initial_value()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.Semaphore, 2);

        Assert.True(await l.Acquire(s, "a", 0, null, None));
        Assert.True(await l.Acquire(s, "b", 0, null, None));
        Assert.False(await l.Acquire(s, "c", 0, TimeSpan.FromMilliseconds(50), None));
        Assert.Equal(0, (await l.GetState(s, "a")).Value);

        await l.Release(s, "a");
        await l.Release(s, "b");
        await l.Release(s, "c");
        Assert.Equal(3, (await l.GetState(s, "a")).Value);
    }

    [Fact(Timeout = 30000)]
    public async Task BoundedSemaphore_released_past_its_initial_value_is_ValueError()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.BoundedSemaphore, 1);

        await AssertBridgeError(() => l.Release(s, "t"), BridgeErrorCode.FailedPrecondition, "ValueError", "semaphore or lock released too many times");
        await l.Acquire(s, "t", 0, null, None);
        await l.Release(s, "t");
        await AssertBridgeError(() => l.Release(s, "t"), BridgeErrorCode.FailedPrecondition, "ValueError");
        Assert.Equal(1, (await l.GetState(s, "t")).Value);
    }

    [Fact(Timeout = 30000)]
    public async Task Semaphore_release_hands_the_unit_to_a_waiter()
    {
        var s = await NewSession();
        var l = await NewLock(s, LockKind.Semaphore, 0);
        var waiting = l.Acquire(s, "w", 0, null, None);
        await AssertBlocked(waiting);

        await l.Release(s, "producer");

        Assert.True(await Soon(waiting));
        Assert.Equal(0, (await l.GetState(s, "w")).Value);
    }

    [Fact(Timeout = 30000)]
    public async Task Semaphore_units_of_a_session_that_ends_are_released()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.BoundedSemaphore, 2);
        await l.Acquire(a, "t", 0, null, None);
        await l.Acquire(a, "t", 0, null, None);
        var waiting = l.Acquire(b, "t", 0, null, None);
        await AssertBlocked(waiting);

        await Session(a).End();

        Assert.True(await Soon(waiting));
        Assert.Equal(1, (await l.GetState(b, "t")).Value);
    }

    [Fact(Timeout = 30000)]
    public async Task Release_by_a_session_holding_nothing_repays_the_holder()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.Semaphore, 1);
        await l.Acquire(a, "t", 0, null, None);

        // b releases the unit a took; when a dies there is nothing left to give back.
        await l.Release(b, "t");
        await Session(a).End();

        Assert.Equal(1, (await l.GetState(b, "t")).Value);
    }

    private async Task<ILockGrain> NewLock(string sessionId, LockKind kind, long initialValue = 1)
    {
        var l = Lock(NewName(kind.ToString()));
        await l.Open(sessionId, OpenMode.Create, kind, initialValue);
        return l;
    }

    private static async Task AcquireAndRecord(ILockGrain l, string s, string owner, ConcurrentQueue<string> order)
    {
        Assert.True(await l.Acquire(s, owner, 0, null, None));
        order.Enqueue(owner);
    }
}

using System.Diagnostics;

namespace Bridge.Core.Tests;

[Collection(ClusterCollection.Name)]
public sealed class ConditionTests(ClusterFixture fixture) : GrainTestBase(fixture)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact(Timeout = 30000)]
    public async Task Open_needs_an_existing_Lock_or_RLock_of_the_stated_kind()
    {
        var s = await NewSession();
        var sem = NewName("sem");
        await Lock(sem).Open(s, OpenMode.Create, LockKind.Semaphore, 1);
        var rlock = NewName("rlock");
        await Lock(rlock).Open(s, OpenMode.Create, LockKind.RLock, 0);

        await AssertBridgeError(() => Condition(NewName("c")).Open(s, OpenMode.Create, sem, LockKind.Semaphore), BridgeErrorCode.InvalidArgument, "ValueError");
        await AssertBridgeError(() => Condition(NewName("c")).Open(s, OpenMode.Create, NewName("missing"), LockKind.Lock), BridgeErrorCode.NotFound, "FileNotFoundError");
        await AssertBridgeError(() => Condition(NewName("c")).Open(s, OpenMode.Create, rlock, LockKind.Lock), BridgeErrorCode.InvalidArgument, "ValueError", "is a RLock");

        var name = NewName("c");
        Assert.Equal(new ConditionDescriptor(rlock, LockKind.RLock), await Condition(name).Open(s, OpenMode.Create, rlock, LockKind.RLock));
        Assert.Equal(new ConditionDescriptor(rlock, LockKind.RLock), await Condition(name).Open(s, OpenMode.Attach, "", LockKind.Lock));
    }

    [Fact(Timeout = 30000)]
    public async Task Without_a_lock_only_the_creating_open_makes_an_RLock_and_every_other_open_gets_it()
    {
        var a = await NewSession();
        var b = await NewSession();
        var name = NewName("c");

        var before = AnonymousLocks();

        var created = await Condition(name).Open(a, OpenMode.CreateOrAttach, "", LockKind.RLock);

        Assert.StartsWith("~", created.LockName, StringComparison.Ordinal);
        Assert.Equal(LockKind.RLock, created.LockKind);
        Assert.Equal(LockKind.RLock, (await Lock(created.LockName).Open(a, OpenMode.Attach, LockKind.Lock, 0)).Kind);
        Assert.Equal(created, await Condition(name).Open(b, OpenMode.CreateOrAttach, "", LockKind.RLock));
        Assert.Equal(created, await Condition(name).Open(a, OpenMode.CreateOrAttach, "", LockKind.RLock));
        Assert.Equal(created, await Condition(name).Open(b, OpenMode.Attach, "", LockKind.RLock));
        await AssertBridgeError(() => Condition(name).Open(b, OpenMode.Create, "", LockKind.RLock), BridgeErrorCode.AlreadyExists, "FileExistsError");
        await Eventually(() => Task.FromResult(AnonymousLocks().Except(before).SequenceEqual([created.LockName])), "only the condition's own lock is left");
    }

    [Fact(Timeout = 30000)]
    public async Task Concurrent_opens_without_a_lock_agree_on_one_condition_and_one_lock()
    {
        var sessions = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => NewSession()));
        var name = NewName("c");
        var before = AnonymousLocks();

        var opened = await Task.WhenAll(sessions.Select(s => Condition(name).Open(s, OpenMode.CreateOrAttach, "", LockKind.RLock)));

        var own = Assert.Single(opened.Distinct()).LockName;
        // Opens that made a lock and then found the condition created drop theirs.
        await Eventually(() => Task.FromResult(AnonymousLocks().Except(before).SequenceEqual([own])), "the spare locks are freed");
    }

    [Fact(Timeout = 30000)]
    public async Task A_named_lock_other_than_the_conditions_own_is_AlreadyExists_naming_both()
    {
        var s = await NewSession();
        var name = NewName("c");
        var own = await Condition(name).Open(s, OpenMode.CreateOrAttach, "", LockKind.RLock);
        var other = NewName("lock");
        await Lock(other).Open(s, OpenMode.Create, LockKind.Lock, 0);

        var error = await AssertBridgeError(
            () => Condition(name).Open(s, OpenMode.CreateOrAttach, other, LockKind.Lock), BridgeErrorCode.AlreadyExists, "FileExistsError");

        Assert.Contains($"RLock '{own.LockName}'", error.Message, StringComparison.Ordinal);
        Assert.Contains($"Lock '{other}'", error.Message, StringComparison.Ordinal);
        Assert.Equal(own, await Condition(name).Open(s, OpenMode.CreateOrAttach, own.LockName, LockKind.RLock));
    }

    [Fact(Timeout = 30000)]
    public async Task The_lock_outlives_the_conditions_creator_while_another_session_has_the_condition_open()
    {
        var creator = await NewSession();
        var user = await NewSession();
        var name = NewName("c");
        var own = await Condition(name).Open(creator, OpenMode.CreateOrAttach, "", LockKind.RLock);
        await Condition(name).Open(user, OpenMode.CreateOrAttach, "", LockKind.RLock);

        await Session(creator).End();

        // The user never touched the lock itself: opening the condition made it a user of it.
        Assert.True(await Lock(own.LockName).Acquire(user, "t", 0, TimeSpan.FromSeconds(5), None));
        Assert.Equal(new ConditionWaitOutcome(false, 1), await Condition(name).Wait(user, "t", TimeSpan.FromMilliseconds(50), None));
    }

    [Fact(Timeout = 30000)]
    public async Task Wait_and_notify_need_the_lock()
    {
        var s = await NewSession();
        var (c, _) = await NewCondition(s, LockKind.RLock);

        await AssertBridgeError(() => c.Wait(s, "t", null, None), BridgeErrorCode.FailedPrecondition, "AssertionError", "must acquire() condition before using wait()");
        await AssertBridgeError(() => c.Notify(s, "t", 1), BridgeErrorCode.FailedPrecondition, "AssertionError", "lock is not owned");
    }

    [Fact(Timeout = 30000)]
    public async Task Wait_releases_the_lock_and_notify_wakes_the_waiter()
    {
        var a = await NewSession();
        var b = await NewSession();
        var (c, l) = await NewCondition(a, LockKind.RLock);
        await l.Acquire(a, "waiter", 2, null, None);

        var waiting = c.Wait(a, "waiter", null, None);

        // The lock was released entirely: b can take it and notify under it.
        Assert.True(await l.Acquire(b, "notifier", 0, TimeSpan.FromSeconds(5), None));
        await AssertBlocked(waiting);
        Assert.Equal(1, await c.Notify(b, "notifier", 1));
        Assert.Equal(new ConditionWaitOutcome(true, 2), await Soon(waiting));

        // The waiter re-acquires its levels once the notifier lets go.
        var reacquire = l.Acquire(a, "waiter", 2, null, None);
        await AssertBlocked(reacquire);
        await l.Release(b, "notifier");
        Assert.True(await Soon(reacquire));
        Assert.Equal(new LockSnapshot(0, true, 2), await l.GetState(a, "waiter"));
    }

    [Fact(Timeout = 30000)]
    public async Task Wait_times_out_not_notified_with_the_lock_released()
    {
        var s = await NewSession();
        var (c, l) = await NewCondition(s, LockKind.Lock);
        await l.Acquire(s, "t", 0, null, None);

        var clock = Stopwatch.StartNew();
        Assert.Equal(new ConditionWaitOutcome(false, 1), await c.Wait(s, "t", TimeSpan.FromMilliseconds(200), None));
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(180), $"returned after {clock.Elapsed}");
        Assert.Equal(1, (await l.GetState(s, "t")).Value);
    }

    [Fact(Timeout = 30000)]
    public async Task Notify_wakes_in_arrival_order_and_notify_all_wakes_the_rest()
    {
        var s = await NewSession();
        var (c, l) = await NewCondition(s, LockKind.Lock);
        var waiters = new List<Task<ConditionWaitOutcome>>();
        for (var i = 0; i < 3; i++)
        {
            var owner = $"w{i}";
            Assert.True(await l.Acquire(s, owner, 0, TimeSpan.FromSeconds(5), None));
            waiters.Add(c.Wait(s, owner, null, None));
            await Eventually(async () => (await l.GetState(s, owner)).Value == 1, $"{owner} released the lock");
        }

        await l.Acquire(s, "n", 0, null, None);
        Assert.Equal(1, await c.Notify(s, "n", 1));
        await Soon(waiters[0]);
        await AssertBlocked(Task.WhenAny(waiters[1], waiters[2]));

        Assert.Equal(2, await c.Notify(s, "n", 0));
        Assert.All(await Soon(Task.WhenAll(waiters)), outcome => Assert.True(outcome.Notified));
        Assert.Equal(0, await c.Notify(s, "n", 0));
    }

    [Fact(Timeout = 30000)]
    public async Task Cancelled_waiter_is_not_counted_by_notify()
    {
        var s = await NewSession();
        var (c, l) = await NewCondition(s, LockKind.RLock);
        await l.Acquire(s, "t", 0, null, None);
        using var cancel = new CancellationTokenSource();
        var waiting = c.Wait(s, "t", null, cancel.Token);
        await AssertBlocked(waiting);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        await Task.Delay(Settle);

        await l.Acquire(s, "n", 0, null, None);
        Assert.Equal(0, await c.Notify(s, "n", 1));
    }

    [Fact(Timeout = 30000)]
    public async Task Waiter_of_an_ended_session_is_dropped()
    {
        var a = await NewSession();
        var b = await NewSession();
        var (c, l) = await NewCondition(a, LockKind.Lock);
        await l.Acquire(b, "t", 0, null, None);
        var waiting = c.Wait(b, "t", null, None);
        await AssertBlocked(waiting);

        await Session(b).End();

        await AssertSessionEnded(waiting);
        await l.Acquire(a, "n", 0, TimeSpan.FromSeconds(5), None);
        Assert.Equal(0, await c.Notify(a, "n", 0));
    }

    /// <summary>The anonymous locks that exist now (the tests run one at a time).</summary>
    private string[] AnonymousLocks() =>
        [.. Fixture.Ledger.Existing.Where(a => a.Family == ObjectFamily.Lock && a.Name.StartsWith('~')).Select(a => a.Name)];

    private async Task<(IConditionGrain Condition, ILockGrain Lock)> NewCondition(string sessionId, LockKind lockKind)
    {
        var lockName = NewName("lock");
        var l = Lock(lockName);
        await l.Open(sessionId, OpenMode.Create, lockKind, 0);
        var c = Condition(NewName("cond"));
        await c.Open(sessionId, OpenMode.Create, lockName, lockKind);
        return (c, l);
    }
}

using Bridge.Core.Objects.Runtime;

namespace Bridge.Core.Tests;

/// <summary>
/// The grain side of lock caching: cached grants, recalls through the session's event
/// queue, surrender (free or held), and what others see and may do meanwhile.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class LockCacheTests(ClusterFixture fixture) : GrainTestBase(fixture)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact(Timeout = 30000)]
    public async Task A_free_lock_is_granted_cached_and_counts_as_held_for_everyone()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.Lock);

        var grant = await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);

        Assert.True(grant.Acquired);
        Assert.NotEqual(0, grant.CacheToken);
        Assert.Equal(new LockSnapshot(0, false, 1, Cached: true), await l.GetState(b, "x"));
        Assert.Equal(new LockSnapshot(0, false, 1, Cached: true), await l.GetState(a, "t1"));
    }

    [Fact(Timeout = 30000)]
    public async Task Plain_acquires_and_semaphores_are_never_cached()
    {
        var a = await NewSession();
        var l = await NewLock(a, LockKind.Lock);
        Assert.Equal(LockGrant.Plain, await l.AcquireGrant(a, "t1", 1, null, cacheable: false, None));

        var sem = await NewLock(a, LockKind.Semaphore, 2);
        Assert.Equal(LockGrant.Plain, await sem.AcquireGrant(a, "t1", 1, null, cacheable: true, None));
    }

    [Fact(Timeout = 30000)]
    public async Task An_RLock_reentered_by_its_plain_owner_stays_plain()
    {
        var a = await NewSession();
        var l = await NewLock(a, LockKind.RLock);
        Assert.Equal(LockGrant.Plain, await l.AcquireGrant(a, "t1", 1, null, cacheable: false, None));

        Assert.Equal(LockGrant.Plain, await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None));
        Assert.Equal(new LockSnapshot(0, true, 2), await l.GetState(a, "t1"));
    }

    [Fact(Timeout = 30000)]
    public async Task Another_acquire_posts_one_recall_and_the_free_surrender_hands_over_first_come_first_served()
    {
        var a = await NewSession();
        var b = await NewSession();
        var c = await NewSession();
        var l = await NewLock(a, LockKind.Lock);
        var watch = await Session(a).Watch();
        var grant = await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);

        var first = l.AcquireGrant(b, "w", 1, null, cacheable: true, None);
        await AssertBlocked(first);
        var second = l.AcquireGrant(c, "w", 1, null, cacheable: true, None);
        await AssertBlocked(second);

        var batch = await Soon(Session(a).NextEvents(watch, Patience, None));
        Assert.Equal([new LockRecall(l.GetPrimaryKeyString(), grant.CacheToken)], batch.Recalls);

        Assert.True(await l.Surrender(a, grant.CacheToken, held: false, "", 0));

        // b is first; someone waits behind it, so its grant is plain.
        Assert.Equal(LockGrant.Plain, await Soon(first));
        Assert.False(second.IsCompleted);
        await l.Release(b, "w");
        Assert.True((await Soon(second)).Acquired);

        // One recall per grant: nothing more was posted to a.
        Assert.Empty((await Session(a).NextEvents(watch, TimeSpan.FromMilliseconds(100), None)).Recalls);
    }

    [Fact(Timeout = 30000)]
    public async Task A_waiter_alone_is_handed_the_lock_cached()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.Lock);
        await l.Acquire(a, "t1", 1, null, None);
        var waiting = l.AcquireGrant(b, "w", 1, null, cacheable: true, None);
        await AssertBlocked(waiting);

        await l.Release(a, "t1");

        var grant = await Soon(waiting);
        Assert.True(grant.Acquired);
        Assert.NotEqual(0, grant.CacheToken);
        Assert.True((await l.GetState(a, "x")).Cached);
    }

    [Fact(Timeout = 30000)]
    public Task Caching_pauses_for_a_doubling_cool_down_while_grants_are_recalled_soon()
    {
        var policy = new LockCachePolicy();
        var second = System.Diagnostics.Stopwatch.Frequency;
        var now = 1000 * second;
        Assert.True(policy.MayCache(now));

        policy.Granted(now);
        policy.Recalled(now + (second / 100)); // recalled after 10 ms: contended
        Assert.Equal(LockCachePolicy.MinCooldown, policy.Cooldown);
        Assert.False(policy.MayCache(now + (second / 50)));
        now += second;
        Assert.True(policy.MayCache(now));

        policy.Granted(now);
        policy.Recalled(now);
        Assert.Equal(LockCachePolicy.MinCooldown * 2, policy.Cooldown);
        for (var i = 0; i < 10; i++)
        {
            policy.Granted(now);
            policy.Recalled(now);
        }

        Assert.Equal(LockCachePolicy.MaxCooldown, policy.Cooldown);
        Assert.False(policy.MayCache(now + (second * 19 / 10)));
        Assert.True(policy.MayCache(now + (second * 2)));

        // A grant that lasted was worth it: the history is forgotten.
        now += 10 * second;
        policy.Granted(now);
        policy.Recalled(now + second + 1);
        Assert.Equal(TimeSpan.Zero, policy.Cooldown);
        Assert.True(policy.MayCache(now + second + 1));
        return Task.CompletedTask; // Task-returning: xunit enforces Timeout only on those
    }

    [Fact(Timeout = 30000)]
    public async Task A_held_surrender_keeps_the_lock_with_its_thread_until_a_plain_release()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.RLock);
        var grant = await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);
        var waiting = l.AcquireGrant(b, "w", 1, null, cacheable: true, None);
        await AssertBlocked(waiting);

        Assert.True(await l.Surrender(a, grant.CacheToken, held: true, "t1", 2));

        Assert.Equal(new LockSnapshot(0, true, 2), await l.GetState(a, "t1"));
        await AssertBridgeError(() => l.Release(a, "t2"), BridgeErrorCode.FailedPrecondition, "AssertionError");
        await l.Release(a, "t1");
        await AssertBlocked(waiting);
        await l.Release(a, "t1");
        Assert.True((await Soon(waiting)).Acquired);
    }

    [Fact(Timeout = 30000)]
    public async Task A_surrender_of_a_grant_that_no_longer_stands_changes_nothing()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.Lock);
        var grant = await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);

        Assert.False(await l.Surrender(b, grant.CacheToken, held: false, "", 0));
        Assert.False(await l.Surrender(a, grant.CacheToken + 1, held: false, "", 0));
        Assert.True(await l.Surrender(a, grant.CacheToken, held: false, "", 0));
        Assert.True(await l.Acquire(b, "t", 1, TimeSpan.Zero, None));
        Assert.False(await l.Surrender(a, grant.CacheToken, held: false, "", 0));
        Assert.Equal(new LockSnapshot(0, true, 1), await l.GetState(b, "t"));
    }

    [Fact(Timeout = 30000)]
    public async Task A_non_blocking_acquire_waits_only_for_the_caching_session_to_answer()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.Lock);

        // Cached and free at a: the non-blocking acquire gets it once a surrenders.
        var grant = await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);
        Assert.NotEqual(0, grant.CacheToken);
        var tryFree = l.AcquireGrant(b, "w", 1, TimeSpan.Zero, cacheable: false, None);
        await AssertBlocked(tryFree);
        Assert.True(await l.Surrender(a, grant.CacheToken, held: false, "", 0));
        Assert.Equal(LockGrant.Plain, await Soon(tryFree));
        await l.Release(b, "w");

        // Cached and held at a: false as soon as a says so, without waiting for a release.
        // (A fresh lock: the recall above pauses caching of l for a while.)
        l = await NewLock(a, LockKind.Lock);
        grant = await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);
        Assert.NotEqual(0, grant.CacheToken);
        var tryHeld = l.AcquireGrant(b, "w", 1, TimeSpan.Zero, cacheable: false, None);
        await AssertBlocked(tryHeld);
        Assert.True(await l.Surrender(a, grant.CacheToken, held: true, "t1", 1));
        Assert.Equal(LockGrant.NotAcquired, await Soon(tryHeld));
        Assert.Equal(new LockSnapshot(0, true, 1), await l.GetState(a, "t1"));
    }

    [Fact(Timeout = 30000)]
    public async Task A_timed_waiter_gives_up_on_time_while_the_recall_is_unanswered()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.Lock);
        var grant = await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);

        Assert.False(await Soon(l.Acquire(b, "w", 1, TimeSpan.FromMilliseconds(200), None)));

        // The cache still stands; the late surrender frees the lock for nobody in particular.
        Assert.True((await l.GetState(b, "w")).Cached);
        Assert.True(await l.Surrender(a, grant.CacheToken, held: false, "", 0));
        Assert.Equal(new LockSnapshot(1, false, 0), await l.GetState(b, "w"));
    }

    [Fact(Timeout = 30000)]
    public async Task A_release_by_another_session_asks_the_caching_session_first()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.Lock);

        // Free at a: releasing it is releasing an unlocked lock.
        var grant = await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);
        var releaseFree = l.Release(b, "x");
        await AssertBlocked(releaseFree);
        Assert.True(await l.Surrender(a, grant.CacheToken, held: false, "", 0));
        await AssertBridgeError(() => Soon(releaseFree), BridgeErrorCode.FailedPrecondition, "ValueError", "released too many times");

        // Held at a: released from under its holder, as the stdlib allows. (A fresh lock:
        // the recall above pauses caching of l for a while.)
        l = await NewLock(a, LockKind.Lock);
        grant = await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);
        Assert.NotEqual(0, grant.CacheToken);
        var releaseHeld = l.Release(b, "x");
        await AssertBlocked(releaseHeld);
        Assert.True(await l.Surrender(a, grant.CacheToken, held: true, "t1", 1));
        await Soon(releaseHeld);
        Assert.Equal(new LockSnapshot(1, false, 0), await l.GetState(a, "t1"));
    }

    [Fact(Timeout = 30000)]
    public async Task An_RLock_cached_elsewhere_cannot_be_released_by_a_non_owner()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.RLock);
        await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);

        await AssertBridgeError(() => Soon(l.Release(b, "t1")), BridgeErrorCode.FailedPrecondition, "AssertionError");
        Assert.True((await l.GetState(b, "x")).Cached);
    }

    [Fact(Timeout = 30000)]
    public async Task The_caching_session_ending_gives_the_lock_to_the_waiter()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(b, LockKind.Lock);
        await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);
        var waiting = l.AcquireGrant(b, "w", 1, null, cacheable: false, None);
        await AssertBlocked(waiting);

        await Session(a).End();

        Assert.Equal(LockGrant.Plain, await Soon(waiting));
        Assert.Equal(new LockSnapshot(0, true, 1), await l.GetState(b, "w"));
    }

    [Fact(Timeout = 30000)]
    public async Task A_cancelled_waiter_that_was_granted_a_cached_lock_gives_it_back()
    {
        var a = await NewSession();
        var b = await NewSession();
        var l = await NewLock(a, LockKind.Lock);
        await l.Acquire(a, "t1", 1, null, None);
        using var cancel = new CancellationTokenSource();
        var waiting = l.AcquireGrant(b, "w", 1, null, cacheable: true, cancel.Token);
        await AssertBlocked(waiting);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        await Task.Delay(Settle);

        await l.Release(a, "t1");
        Assert.Equal(new LockSnapshot(1, false, 0), await l.GetState(a, "x"));
    }

    [Fact(Timeout = 30000)]
    public async Task A_newer_watch_supersedes_the_older_and_an_ended_session_fails_its_pull()
    {
        var a = await NewSession();
        var l = await NewLock(a, LockKind.Lock);
        var old = await Session(a).Watch();
        var oldPull = Session(a).NextEvents(old, Patience, None);
        await AssertBlocked(oldPull);

        var current = await Session(a).Watch();
        Assert.True((await Soon(oldPull)).Superseded);

        // Events raised with no pull pending wait for the next one.
        var grant = await l.AcquireGrant(a, "t1", 1, null, cacheable: true, None);
        var b = await NewSession();
        var waiting = l.AcquireGrant(b, "w", 1, TimeSpan.FromSeconds(20), cacheable: false, None);
        await AssertBlocked(waiting);
        var batch = await Soon(Session(a).NextEvents(current, Patience, None));
        Assert.Equal(grant.CacheToken, Assert.Single(batch.Recalls).CacheToken);

        var pull = Session(a).NextEvents(current, Patience, None);
        await AssertBlocked(pull);
        await Session(a).End();
        await AssertSessionEnded(pull);
        Assert.True((await Soon(waiting)).Acquired);
    }

    private async Task<ILockGrain> NewLock(string sessionId, LockKind kind, long initialValue = 1)
    {
        var l = Lock(NewName("cached-" + kind));
        await l.Open(sessionId, OpenMode.Create, kind, initialValue);
        return l;
    }
}

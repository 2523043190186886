using Bridge.Client;
using Bridge.Contracts.V1;

namespace Bridge.Host.Tests;

public sealed partial class BridgeClientTests
{
    [Fact(Timeout = TestTimeout)]
    public async Task A_lock_hold_excludes_other_sessions_until_disposed()
    {
        await using var first = await OpenAsync();
        await using var second = await OpenAsync();
        var name = Unique("lock");
        var mine = await first.LockAsync(name, Token);
        var theirs = await second.LockAsync(name, BridgeOpenMode.Attach, Token);

        await using (await mine.AcquireAsync(TimeSpan.FromSeconds(5), Token))
        {
            Assert.True(await mine.IsOwnedAsync(Token));
            Assert.Null(await theirs.TryAcquireAsync(TimeSpan.Zero, Token));
            await Assert.ThrowsAsync<TimeoutException>(() => theirs.AcquireAsync(TimeSpan.FromMilliseconds(100), Token));
        }

        var hold = await theirs.TryAcquireAsync(TimeSpan.FromSeconds(5), Token);
        Assert.NotNull(hold);
        await hold.ReleaseAsync(Token);
        Assert.True(hold.IsReleased);
        await Assert.ThrowsAsync<InvalidOperationException>(() => hold.ReleaseAsync(Token));
        // A Lock released while free: the host's ValueError.
        await Assert.ThrowsAsync<InvalidOperationException>(() => mine.ReleaseAsync(Token));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => mine.AcquireAsync(TimeSpan.FromSeconds(-1), Token));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_sessions_end_releases_its_lock_and_a_waiter_gets_it()
    {
        await using var waiter = await OpenAsync();
        var name = Unique("abandoned");
        var guard = await waiter.LockAsync(name, Token);
        var holder = await OpenAsync();
        await (await holder.LockAsync(name, Token)).AcquireAsync(Token);

        var waiting = guard.AcquireAsync(TimeSpan.FromSeconds(10), Token);
        await Task.Delay(100, Token);
        Assert.False(waiting.IsCompleted);
        await holder.DisposeAsync();
        await using (await waiting)
        {
            Assert.True(await guard.IsOwnedAsync(Token));
        }
    }

    [Fact(Timeout = TestTimeout)]
    public async Task An_rlock_is_reentrant_through_its_handle_and_owned_by_it()
    {
        await using var session = await OpenAsync();
        var name = Unique("rlock");
        var mine = await session.RLockAsync(name, Token);
        var other = await session.RLockAsync(name, Token);
        Assert.True(mine.IsRecursive);
        Assert.NotEqual(mine.Owner, other.Owner);

        await using (await mine.AcquireAsync(Token))
        {
            await using (await mine.AcquireAsync(TimeSpan.Zero, Token))
            {
                Assert.Null(await other.TryAcquireAsync(TimeSpan.Zero, Token));
            }

            await Assert.ThrowsAsync<SynchronizationLockException>(() => other.ReleaseAsync(Token));
        }

        await using (await other.AcquireAsync(TimeSpan.Zero, Token))
        {
        }
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Opening_errors_are_the_contracts_as_dotnet_exceptions()
    {
        await using var session = await OpenAsync();
        await Assert.ThrowsAsync<KeyNotFoundException>(() => session.LockAsync(Unique("absent"), BridgeOpenMode.Attach, Token));
        var name = Unique("taken");
        await session.LockAsync(name, Token);
        await Assert.ThrowsAsync<ArgumentException>(() => session.RLockAsync(name, Token));
        await Assert.ThrowsAsync<ArgumentException>(() => session.LockAsync(name, BridgeOpenMode.Create, Token));
        await Assert.ThrowsAsync<ArgumentException>(() => session.EventAsync("bad name!", Token));
        var anonymous = await session.EventAsync(null, Token);
        Assert.StartsWith("~", anonymous.Name, StringComparison.Ordinal);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Opening_a_session_where_no_host_listens_is_an_IOException_naming_the_address()
    {
        var nowhere = new BridgeAddress("unix:" + Path.Combine(Path.GetTempPath(), Unique("no-host") + ".sock"));
        var error = await Assert.ThrowsAsync<IOException>(() => BridgeSession.OpenAsync(nowhere, "client-tests", Token));
        Assert.Contains(nowhere.Value, error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_bounded_semaphore_counts_units_and_refuses_a_release_too_many()
    {
        await using var session = await OpenAsync();
        var units = await session.BoundedSemaphoreAsync(Unique("sem"), 2, Token);
        Assert.True(units.IsBounded);
        var a = await units.AcquireAsync(Token);
        var b = await units.AcquireAsync(TimeSpan.FromSeconds(1), Token);
        Assert.Equal(0, await units.GetValueAsync(Token));
        Assert.Null(await units.TryAcquireAsync(TimeSpan.FromMilliseconds(50), Token));
        await a.DisposeAsync();
        await b.DisposeAsync();
        Assert.Equal(2, await units.GetValueAsync(Token));
        await Assert.ThrowsAsync<InvalidOperationException>(() => units.ReleaseAsync(Token));

        var attached = await session.BoundedSemaphoreAsync(units.Name, 0, BridgeOpenMode.Attach, Token);
        Assert.Equal(2, attached.InitialValue);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task An_event_wakes_a_waiter_in_another_session_and_times_out_unset()
    {
        await using var first = await OpenAsync();
        await using var second = await OpenAsync();
        var name = Unique("event");
        var flag = await first.EventAsync(name, Token);
        var seen = await second.EventAsync(name, Token);
        Assert.False(await seen.WaitAsync(TimeSpan.FromMilliseconds(50), Token));

        var waiting = seen.WaitAsync(Token);
        await Task.Delay(100, Token);
        Assert.False(waiting.IsCompleted);
        await flag.SetAsync(Token);
        await waiting;
        Assert.True(await seen.IsSetAsync(Token));
        await seen.ClearAsync(Token);
        Assert.False(await flag.IsSetAsync(Token));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_condition_wait_is_notified_from_another_session_and_needs_the_lock()
    {
        await using var first = await OpenAsync();
        await using var second = await OpenAsync();
        var name = Unique("cond");
        var waiterSide = await first.ConditionAsync(name, null, Token);
        var notifierSide = await second.ConditionAsync(name, null, Token);
        Assert.Equal(waiterSide.Lock.Name, notifierSide.Lock.Name);
        await Assert.ThrowsAsync<SynchronizationLockException>(() => notifierSide.NotifyAsync(1, Token));

        Task<bool> waiting;
        await using (await waiterSide.AcquireAsync(Token))
        {
            Assert.False(await waiterSide.WaitAsync(TimeSpan.FromMilliseconds(50), Token));
            Assert.True(await waiterSide.Lock.IsOwnedAsync(Token));
            waiting = waiterSide.WaitAsync(TimeSpan.FromSeconds(10), Token);
            await using (await notifierSide.AcquireAsync(TimeSpan.FromSeconds(5), Token))
            {
                await notifierSide.NotifyAllAsync(Token);
            }

            Assert.True(await waiting);
            Assert.True(await waiterSide.Lock.IsOwnedAsync(Token));
        }

        Assert.False(await waiterSide.Lock.IsOwnedAsync(Token));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_named_condition_is_shared_with_what_python_opens_whichever_opens_it_first()
    {
        await using var dotnet = await OpenAsync();
        await using var python = await OpenAsync();
        // What Python's Condition(name=...) sends: create-or-attach with no lock.
        Task<ConditionInfo> PythonOpens(string name) => python.Synchronization.CreateConditionAsync(
            new CreateConditionRequest { SessionId = python.SessionId, Name = name }, cancellationToken: Token).ResponseAsync;

        var dotnetFirst = Unique("cond");
        var mine = await dotnet.ConditionAsync(dotnetFirst, null, Token);
        Assert.Equal(mine.Lock.Name, (await PythonOpens(dotnetFirst)).LockName);

        var pythonFirst = Unique("cond");
        var theirs = await PythonOpens(pythonFirst);
        var attached = await dotnet.ConditionAsync(pythonFirst, null, Token);
        Assert.Equal(theirs.LockName, attached.Lock.Name);
        Assert.True(attached.Lock.IsRecursive);
        await using (await attached.AcquireAsync(TimeSpan.FromSeconds(5), Token))
        {
            Assert.False(await attached.WaitAsync(TimeSpan.FromMilliseconds(50), Token));
        }
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_cancelled_condition_wait_takes_the_lock_back_before_it_throws()
    {
        await using var session = await OpenAsync();
        var condition = await session.ConditionAsync(Unique("cancelled"), await session.LockAsync(Unique("plain"), Token), Token);
        Assert.False(condition.Lock.IsRecursive);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Token);
        await using (await condition.AcquireAsync(Token))
        {
            cancel.CancelAfter(200);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => condition.WaitAsync(cancel.Token));
            Assert.True(await condition.Lock.IsOwnedAsync(Token));
        }

        Assert.False(await condition.Lock.IsOwnedAsync(Token));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_barrier_releases_its_parties_together_after_the_action_and_breaks_on_timeout()
    {
        await using var first = await OpenAsync();
        await using var second = await OpenAsync();
        var name = Unique("barrier");
        var actions = 0;
        var withAction = await first.BarrierAsync(name, 2, _ => { Interlocked.Increment(ref actions); return Task.CompletedTask; }, BridgeOpenMode.CreateOrAttach, Token);
        var plain = await second.BarrierAsync(name, 2, Token);
        Assert.Equal(2, plain.Parties);

        var arrivals = await Task.WhenAll(withAction.WaitAsync(TimeSpan.FromSeconds(10), Token), plain.WaitAsync(TimeSpan.FromSeconds(10), Token));
        Assert.Equal([0, 1], arrivals.Order());
        Assert.Equal(arrivals[0] == 1 ? 1 : 0, actions);

        await Assert.ThrowsAsync<BrokenBarrierException>(() => plain.WaitAsync(TimeSpan.FromMilliseconds(50), Token));
        Assert.True(await withAction.IsBrokenAsync(Token));
        await withAction.ResetAsync(Token);
        Assert.False(await plain.IsBrokenAsync(Token));
        Assert.Equal(0, await plain.GetWaitingCountAsync(Token));
    }
}

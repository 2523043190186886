namespace Bridge.Core.Tests;

[Collection(ClusterCollection.Name)]
public sealed class BarrierTests(ClusterFixture fixture) : GrainTestBase(fixture)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact(Timeout = 30000)]
    public async Task Parties_pass_together_with_distinct_indices_generation_after_generation()
    {
        var s = await NewSession();
        var b = await NewBarrier(s, 3);

        for (var generation = 0; generation < 2; generation++)
        {
            var first = b.Wait(s, null, false, None);
            var second = b.Wait(s, null, false, None);
            await AssertBlocked(Task.WhenAny(first, second));
            Assert.Equal(new BarrierSnapshot(3, 2, false), await b.GetState(s));

            var last = await b.Wait(s, null, false, None);
            var all = await Soon(Task.WhenAll(first, second));

            Assert.Equal(2, last.Index);
            Assert.False(last.RunAction);
            Assert.Equal([0, 1, 2], all.Append(last).Select(a => a.Index).Order());
            Assert.All(all.Append(last), a => Assert.Equal(generation, a.Generation));
        }
    }

    [Fact(Timeout = 30000)]
    public async Task Last_party_runs_the_action_and_the_others_wait_for_it()
    {
        var s = await NewSession();
        var b = await NewBarrier(s, 2);
        var first = b.Wait(s, null, true, None);
        await AssertBlocked(first);

        var last = await b.Wait(s, null, true, None);
        Assert.True(last.RunAction);
        Assert.Equal(1, last.Index);
        await AssertBlocked(first);

        await b.CompleteAction(s, last.Generation, succeeded: true);
        Assert.Equal(new BarrierArrival(0, false, last.Generation), await Soon(first));
        Assert.False((await b.GetState(s)).Broken);
    }

    [Fact(Timeout = 30000)]
    public async Task Failed_action_breaks_the_barrier()
    {
        var s = await NewSession();
        var b = await NewBarrier(s, 2);
        var first = b.Wait(s, null, false, None);
        await AssertBlocked(first);
        var last = await b.Wait(s, null, true, None);

        var state = await b.CompleteAction(s, last.Generation, succeeded: false);

        Assert.True(state.Broken);
        await AssertBridgeError(() => first, BridgeErrorCode.FailedPrecondition, "BrokenBarrierError");
    }

    [Fact(Timeout = 30000)]
    public async Task A_timeout_breaks_the_barrier_for_every_waiter()
    {
        var s = await NewSession();
        var b = await NewBarrier(s, 3);
        var patient = b.Wait(s, null, false, None);
        await AssertBlocked(patient);

        await AssertBridgeError(() => b.Wait(s, TimeSpan.FromMilliseconds(200), false, None), BridgeErrorCode.FailedPrecondition, "BrokenBarrierError", "broken");
        await AssertBridgeError(() => Soon(patient), BridgeErrorCode.FailedPrecondition, "BrokenBarrierError");
        Assert.Equal(new BarrierSnapshot(3, 0, true), await b.GetState(s));
        await AssertBridgeError(() => b.Wait(s, null, false, None), BridgeErrorCode.FailedPrecondition, "BrokenBarrierError");

        await b.Reset(s);
        Assert.False((await b.GetState(s)).Broken);
    }

    [Fact(Timeout = 30000)]
    public async Task Timeout_elapsing_while_the_action_runs_does_not_break()
    {
        var s = await NewSession();
        var b = await NewBarrier(s, 2);
        var first = b.Wait(s, TimeSpan.FromMilliseconds(300), false, None);
        await AssertBlocked(first);
        var last = await b.Wait(s, null, true, None);

        await Task.Delay(500);
        await b.CompleteAction(s, last.Generation, succeeded: true);

        Assert.Equal(0, (await Soon(first)).Index);
        Assert.False((await b.GetState(s)).Broken);
    }

    [Fact(Timeout = 30000)]
    public async Task Reset_fails_the_waiters_and_leaves_a_fresh_barrier()
    {
        var s = await NewSession();
        var b = await NewBarrier(s, 2);
        var waiting = b.Wait(s, null, false, None);
        await AssertBlocked(waiting);

        var state = await b.Reset(s);

        Assert.Equal(new BarrierSnapshot(2, 0, false), state);
        await AssertBridgeError(() => Soon(waiting), BridgeErrorCode.FailedPrecondition, "BrokenBarrierError");
        var again = b.Wait(s, null, false, None);
        await AssertBlocked(again);
        Assert.Equal(1, (await b.Wait(s, null, false, None)).Index);
        Assert.Equal(0, (await Soon(again)).Index);
    }

    [Fact(Timeout = 30000)]
    public async Task Abort_breaks_until_reset()
    {
        var s = await NewSession();
        var b = await NewBarrier(s, 2);
        var waiting = b.Wait(s, null, false, None);
        await AssertBlocked(waiting);

        Assert.True((await b.Abort(s)).Broken);
        await AssertBridgeError(() => Soon(waiting), BridgeErrorCode.FailedPrecondition, "BrokenBarrierError");
        await AssertBridgeError(() => b.Wait(s, null, false, None), BridgeErrorCode.FailedPrecondition, "BrokenBarrierError");

        await b.Reset(s);
        var first = b.Wait(s, null, false, None);
        await AssertBlocked(first);
        await b.Wait(s, null, false, None);
        await Soon(first);
    }

    [Fact(Timeout = 30000)]
    public async Task A_party_whose_session_ends_breaks_the_barrier()
    {
        var a = await NewSession();
        var dying = await NewSession();
        var b = await NewBarrier(a, 3);
        var survivor = b.Wait(a, null, false, None);
        var doomed = b.Wait(dying, null, false, None);
        await AssertBlocked(Task.WhenAny(survivor, doomed));

        await Session(dying).End();

        await AssertBridgeError(() => Soon(survivor), BridgeErrorCode.FailedPrecondition, "BrokenBarrierError");
        await AssertBridgeError(() => Soon(doomed), BridgeErrorCode.FailedPrecondition, "BrokenBarrierError");
    }

    [Fact(Timeout = 30000)]
    public async Task Session_dying_before_completing_its_action_breaks_the_barrier()
    {
        var a = await NewSession();
        var runner = await NewSession();
        var b = await NewBarrier(a, 2);
        var waiting = b.Wait(a, null, false, None);
        await AssertBlocked(waiting);
        Assert.True((await b.Wait(runner, null, true, None)).RunAction);

        await Session(runner).End();

        await AssertBridgeError(() => Soon(waiting), BridgeErrorCode.FailedPrecondition, "BrokenBarrierError");
    }

    [Fact(Timeout = 30000)]
    public async Task Parties_must_be_positive()
    {
        var s = await NewSession();
        await AssertBridgeError(() => Barrier(NewName("b")).Open(s, OpenMode.Create, 0), BridgeErrorCode.InvalidArgument, "ValueError");
    }

    private async Task<IBarrierGrain> NewBarrier(string sessionId, int parties)
    {
        var b = Barrier(NewName("barrier"));
        Assert.Equal(parties, await b.Open(sessionId, OpenMode.Create, parties));
        return b;
    }
}

using System.Diagnostics;

namespace Bridge.Core.Tests;

[Collection(ClusterCollection.Name)]
public sealed class QueueTests(ClusterFixture fixture) : GrainTestBase(fixture)
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact(Timeout = 30000)]
    public async Task Items_come_out_in_order_up_to_max_items()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Queue);

        Assert.Equal(5, await q.Put(s, Batch(1, 2, 3, 4, 5), null, None));
        Assert.Equal(new QueueSnapshot(5, 0, 0, 5), await q.GetState(s));

        Assert.Equal([1, 2], Values(await q.Get(s, 2, 0, null, None)));
        Assert.Equal([3, 4, 5], Values(await q.Get(s, 10, 0, null, None)));
        Assert.Equal(new QueueSnapshot(0, 0, 5, 5), await q.GetState(s));
    }

    [Fact(Timeout = 30000)]
    public async Task Empty_queue_gives_nothing_without_waiting_or_after_the_timeout()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Queue);

        Assert.Empty((await q.Get(s, 1, 0, TimeSpan.Zero, None)).Items);
        var clock = Stopwatch.StartNew();
        Assert.Empty((await q.Get(s, 1, 0, TimeSpan.FromMilliseconds(200), None)).Items);
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(180), $"returned after {clock.Elapsed}");

        // The timed-out getter left: a later item stays in the queue.
        await q.Put(s, Batch(7), null, None);
        Assert.Equal(1, (await q.GetState(s)).Size);
    }

    [Fact(Timeout = 30000)]
    public async Task Max_items_must_be_positive()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Queue);
        await AssertBridgeError(() => q.Get(s, 0, 0, null, None), BridgeErrorCode.InvalidArgument, "ValueError");
    }

    [Fact(Timeout = 30000)]
    public async Task Blocked_getters_are_served_in_arrival_order()
    {
        var a = await NewSession();
        var b = await NewSession();
        var q = await NewQueue(a, QueueKind.Queue);
        var first = q.Get(a, 5, 0, null, None);
        await AssertBlocked(first);
        var second = q.Get(b, 5, 0, null, None);
        await AssertBlocked(second);

        await q.Put(a, Batch(1), null, None);
        Assert.Equal([1], Values(await Soon(first)));
        Assert.False(second.IsCompleted);

        await q.Put(a, Batch(2, 3), null, None);
        Assert.Equal([2, 3], Values(await Soon(second)));
    }

    [Fact(Timeout = 30000)]
    public async Task Bounded_queue_accepts_what_fits_and_reports_full()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Queue, 2);

        Assert.Equal(2, await q.Put(s, Batch(1, 2, 3), TimeSpan.Zero, None));
        var clock = Stopwatch.StartNew();
        Assert.Equal(0, await q.Put(s, Batch(4), TimeSpan.FromMilliseconds(200), None));
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(180), $"returned after {clock.Elapsed}");
        Assert.Equal(new QueueSnapshot(2, 2, 0, 2), await q.GetState(s));
    }

    [Fact(Timeout = 30000)]
    public async Task A_get_frees_its_space_at_once_and_blocked_putters_fill_it_in_order()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Queue, 2);
        await q.Put(s, Batch(1, 2), null, None);
        var blocked = q.Put(s, Batch(3, 4), null, None);
        await AssertBlocked(blocked);

        // Getting leases the item (still to acknowledge) but its space is free: 3 goes in.
        Assert.Equal([1], Values(await q.Get(s, 1, 0, null, None)));
        await AssertBlocked(blocked);
        Assert.Equal(new QueueSnapshot(2, 2, 1, 3), await q.GetState(s));

        Assert.Equal([2], Values(await q.Get(s, 1, 1, null, None)));
        Assert.Equal(2, await Soon(blocked));
        Assert.Equal([3, 4], Values(await q.Get(s, 2, 0, null, None)));
    }

    [Fact(Timeout = 30000)]
    public async Task A_blocked_getter_that_takes_an_item_lets_a_blocked_putter_in()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Queue, 1);
        var getter = q.Get(s, 1, 0, null, None);
        await AssertBlocked(getter);
        await q.Put(s, Batch(1), null, None);
        Assert.Equal([1], Values(await Soon(getter)));
        Assert.Equal(1, await Soon(q.Put(s, Batch(2), TimeSpan.Zero, None)));
    }

    [Fact(Timeout = 30000)]
    public async Task Reserved_slots_count_against_the_bound_and_are_filled_without_waiting()
    {
        var producer = await NewSession();
        var other = await NewSession();
        var q = await NewQueue(producer, QueueKind.Queue, 4);

        // One item in, three slots reserved: the queue is full for everyone else.
        Assert.Equal(new PutOutcome(1, 3), await q.PutClaimed(producer, Batch(1), new SlotClaim(0, 10, 0), TimeSpan.Zero, None));
        Assert.Equal(new QueueSnapshot(1, 4, 0, 1, 3), await q.GetState(producer));
        Assert.Equal(0, await q.Put(other, Batch(9), TimeSpan.Zero, None));

        // The producer fills two of its slots without waiting and releases the third.
        Assert.Equal(new PutOutcome(2, 0), await q.PutClaimed(producer, Batch(2, 3), new SlotClaim(2, 0, 1), TimeSpan.Zero, None));
        Assert.Equal(new QueueSnapshot(3, 4, 0, 3, 0), await q.GetState(producer));
        Assert.Equal(1, await q.Put(other, Batch(4), TimeSpan.Zero, None));
        Assert.Equal([1, 2, 3, 4], Values(await q.Get(other, 10, 0, null, None)));
    }

    [Fact(Timeout = 30000)]
    public async Task Reserving_never_jumps_blocked_putters_and_an_ended_session_frees_its_slots()
    {
        var producer = await NewSession();
        var other = await NewSession();
        var q = await NewQueue(producer, QueueKind.Queue, 3);
        Assert.Equal(new PutOutcome(1, 2), await q.PutClaimed(producer, Batch(1), new SlotClaim(0, 5, 0), null, None));
        var blocked = q.Put(other, Batch(7), null, None);
        await AssertBlocked(blocked);

        // A get frees a slot: the blocked put takes it, so this claim reserves nothing more.
        Assert.Equal([1], Values(await q.Get(other, 1, 0, null, None)));
        Assert.Equal(1, await Soon(blocked));
        Assert.Equal(new PutOutcome(1, 0), await q.PutClaimed(producer, Batch(2), new SlotClaim(1, 5, 0), null, None));

        var blockedAgain = q.Put(other, Batch(8), null, None);
        await AssertBlocked(blockedAgain);
        await Session(producer).End();
        Assert.Equal(1, await Soon(blockedAgain));
        Assert.Equal([7, 2, 8], Values(await q.Get(other, 10, 0, null, None)));
    }

    [Fact(Timeout = 30000)]
    public async Task Claiming_more_slots_than_held_is_InvalidArgument()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Queue, 4);
        await AssertBridgeError(() => q.PutClaimed(s, Batch(1), new SlotClaim(1, 0, 0), null, None), BridgeErrorCode.InvalidArgument, "ValueError", "holds 0");
        await AssertBridgeError(() => q.PutClaimed(s, Batch(), new SlotClaim(0, 0, 1), null, None), BridgeErrorCode.InvalidArgument, "ValueError", "holds 0");
        await AssertBridgeError(() => q.PutClaimed(s, Batch(1), new SlotClaim(2, 0, 0), null, None), BridgeErrorCode.InvalidArgument, "ValueError", "exceeds");

        // No overflow: a huge release cannot make room for a fill.
        Assert.Equal(new PutOutcome(1, 1), await q.PutClaimed(s, Batch(1), new SlotClaim(0, 1, 0), null, None));
        await AssertBridgeError(() => q.PutClaimed(s, Batch(2), new SlotClaim(1, 0, long.MaxValue), null, None), BridgeErrorCode.InvalidArgument, "ValueError", "holds 1");
        Assert.Equal(new QueueSnapshot(1, 4, 0, 1, 1), await q.GetState(s));
        await q.PutClaimed(s, Batch(), new SlotClaim(0, 0, 1), null, None);
        Assert.Equal(new QueueSnapshot(1, 4, 0, 1, 0), await q.GetState(s));
    }

    [Fact(Timeout = 30000)]
    public async Task Leases_of_an_ended_consumer_return_even_past_maxsize()
    {
        var producer = await NewSession();
        var consumer = await NewSession();
        var q = await NewQueue(producer, QueueKind.Queue, 2);
        await q.Put(producer, Batch(1, 2), null, None);
        Assert.Equal([1, 2], Values(await q.Get(consumer, 2, 0, null, None)));
        await q.Put(producer, Batch(3, 4), null, None);
        await Session(consumer).End();

        Assert.Equal(new QueueSnapshot(4, 2, 0, 4), await q.GetState(producer));
        Assert.Equal(0, await q.Put(producer, Batch(5), TimeSpan.Zero, None));
        Assert.Equal(new PutOutcome(0, 0), await q.PutClaimed(producer, Batch(), new SlotClaim(0, 3, 0), TimeSpan.Zero, None));
        Assert.Equal([1, 2, 3, 4], Values(await q.Get(producer, 10, 0, null, None)));
    }

    [Fact(Timeout = 30000)]
    public async Task Acknowledging_more_than_leased_is_InvalidArgument()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Queue);
        await q.Put(s, Batch(1, 2), null, None);
        await q.Get(s, 1, 0, null, None);

        await AssertBridgeError(() => q.Ack(s, 2), BridgeErrorCode.InvalidArgument, "ValueError", "holds 1");
        await AssertBridgeError(() => q.Get(s, 1, 5, null, None), BridgeErrorCode.InvalidArgument, "ValueError");
        Assert.Equal(new QueueSnapshot(1, 0, 1, 2), await q.GetState(s));
        await q.Ack(s, 1);
        Assert.Equal(0, (await q.GetState(s)).Leased);
    }

    [Fact(Timeout = 30000)]
    public async Task Leases_of_an_ended_session_go_back_to_the_head_in_order()
    {
        var producer = await NewSession();
        var consumer = await NewSession();
        var q = await NewQueue(producer, QueueKind.Queue);
        await q.Put(producer, Batch(1, 2, 3, 4, 5, 6), null, None);
        Assert.Equal([1, 2, 3, 4], Values(await q.Get(consumer, 4, 0, null, None)));

        // 1 was processed; 2, 3, 4 were only prefetched when the consumer died.
        await q.Ack(consumer, 1);
        await Session(consumer).End();

        Assert.Equal(new QueueSnapshot(5, 0, 0, 6), await q.GetState(producer));
        Assert.Equal([2, 3, 4, 5, 6], Values(await q.Get(producer, 10, 0, null, None)));
    }

    [Fact(Timeout = 30000)]
    public async Task Returned_leases_wake_a_blocked_getter()
    {
        var a = await NewSession();
        var dying = await NewSession();
        var q = await NewQueue(a, QueueKind.Queue);
        await q.Put(a, Batch(1), null, None);
        await q.Get(dying, 1, 0, null, None);
        var waiting = q.Get(a, 1, 0, null, None);
        await AssertBlocked(waiting);

        await Session(dying).End();

        Assert.Equal([1], Values(await Soon(waiting)));
    }

    [Fact(Timeout = 30000)]
    public async Task Cancelled_getter_leaves_the_item_for_the_next()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Queue);
        using var cancel = new CancellationTokenSource();
        var cancelled = q.Get(s, 1, 0, null, cancel.Token);
        await AssertBlocked(cancelled);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        await Task.Delay(Settle);
        await q.Put(s, Batch(9), null, None);

        Assert.Equal(new QueueSnapshot(1, 0, 0, 1), await q.GetState(s));
        Assert.Equal([9], Values(await q.Get(s, 1, 0, TimeSpan.Zero, None)));
    }

    [Fact(Timeout = 30000)]
    public async Task Blocked_calls_of_an_ended_session_stop_waiting()
    {
        var a = await NewSession();
        var dying = await NewSession();
        var q = await NewQueue(a, QueueKind.Queue, 1);
        var getter = q.Get(dying, 1, 0, null, None);
        await AssertBlocked(getter);
        await Session(dying).End();
        await AssertSessionEnded(getter);

        var dying2 = await NewSession();
        await q.Put(a, Batch(1), null, None);
        var putter = q.Put(dying2, Batch(2), null, None);
        await AssertBlocked(putter);
        await Session(dying2).End();
        await AssertSessionEnded(putter);
    }

    [Fact(Timeout = 30000)]
    public async Task JoinableQueue_tracks_unfinished_tasks()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Joinable);
        Assert.True(await q.Join(s, TimeSpan.Zero, None));
        await q.Put(s, Batch(1, 2), null, None);
        Assert.False(await q.Join(s, TimeSpan.Zero, None));
        var joining = q.Join(s, null, None);
        await AssertBlocked(joining);

        await q.TaskDone(s, 1);
        await AssertBlocked(joining);
        await q.TaskDone(s, 1);
        Assert.True(await Soon(joining));
    }

    [Fact(Timeout = 30000)]
    public async Task Task_done_too_many_times_is_ValueError_and_changes_nothing()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Joinable);
        await q.Put(s, Batch(1), null, None);

        await AssertBridgeError(() => q.TaskDone(s, 2), BridgeErrorCode.FailedPrecondition, "ValueError", "task_done() called too many times");
        Assert.Equal(1, (await q.GetState(s)).UnfinishedTasks);
        await q.TaskDone(s, 1);
        await AssertBridgeError(() => q.TaskDone(s, 1), BridgeErrorCode.FailedPrecondition, "ValueError");
    }

    [Fact(Timeout = 30000)]
    public async Task Only_a_JoinableQueue_has_task_done_and_join()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Queue);
        var simple = await NewQueue(s, QueueKind.Simple);

        await AssertBridgeError(() => q.TaskDone(s, 1), BridgeErrorCode.FailedPrecondition, "AttributeError", "'Queue' object has no attribute 'task_done'");
        await AssertBridgeError(() => simple.Join(s, null, None), BridgeErrorCode.FailedPrecondition, "AttributeError", "'SimpleQueue' object has no attribute 'join'");
    }

    [Fact(Timeout = 30000)]
    public async Task SimpleQueue_is_unbounded()
    {
        var s = await NewSession();
        await AssertBridgeError(() => Queue(NewName("q")).Open(s, OpenMode.Create, QueueKind.Simple, 3), BridgeErrorCode.InvalidArgument, "ValueError");
    }

    [Fact(Timeout = 30000)]
    public async Task Large_batches_keep_their_order()
    {
        var s = await NewSession();
        var q = await NewQueue(s, QueueKind.Queue);
        var items = Enumerable.Range(0, 20_000).Select(i => BitConverter.GetBytes(i)).ToArray();
        Assert.Equal(items.Length, await q.Put(s, new PayloadBatch(items), null, None));

        var seen = new List<int>();
        while (seen.Count < items.Length)
        {
            var batch = await q.Get(s, 1000, seen.Count == 0 ? 0 : 1000, TimeSpan.Zero, None);
            seen.AddRange(batch.Items.Select(b => BitConverter.ToInt32(b)));
        }

        Assert.Equal(Enumerable.Range(0, items.Length), seen);
    }

    private async Task<IQueueGrain> NewQueue(string sessionId, QueueKind kind, long maxSize = 0)
    {
        var q = Queue(NewName("queue"));
        await q.Open(sessionId, OpenMode.Create, kind, maxSize);
        return q;
    }

    private static PayloadBatch Batch(params byte[] values) => new(values.Select(v => new[] { v }).ToArray());

    private static byte[] Values(PayloadBatch batch) => batch.Items.Select(i => Assert.Single(i)).ToArray();
}

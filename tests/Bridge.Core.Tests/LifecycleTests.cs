namespace Bridge.Core.Tests;

/// <summary>The open, attach and free rules every object family shares.</summary>
[Collection(ClusterCollection.Name)]
public sealed class LifecycleTests(ClusterFixture fixture) : GrainTestBase(fixture)
{
    [Fact(Timeout = 30000)]
    public async Task Create_twice_is_AlreadyExists()
    {
        var s = await NewSession();
        var name = NewName("lock");
        await Lock(name).Open(s, OpenMode.Create, LockKind.Lock, 0);

        await AssertBridgeError(() => Lock(name).Open(s, OpenMode.Create, LockKind.Lock, 0), BridgeErrorCode.AlreadyExists, "FileExistsError", name);
    }

    [Fact(Timeout = 30000)]
    public async Task An_object_lost_with_its_host_says_so_and_its_old_users_never_reach_a_new_one()
    {
        // What a host's death leaves: a session that used the event, and the event's
        // record in the ledger, while no activation holds its state any more.
        var name = NewName("event");
        var address = new ObjectAddress(ObjectFamily.Event, name);
        var old = await NewSession();
        Assert.True((await Session(old).Attached(address)).Added);
        await Fixture.Ledger.Record(address, ObjectIncarnation.New("dead-machine:4242"), CancellationToken.None);

        var lost = $"the Event named '{name}' was lost: the host that held it (dead-machine:4242) is gone";
        await AssertBridgeError(() => Event(name).IsSet(old), BridgeErrorCode.DataLoss, "ObjectLostError", lost);
        var other = await NewSession();
        await AssertBridgeError(() => Event(name).Open(other, OpenMode.Attach), BridgeErrorCode.DataLoss, "ObjectLostError", lost);

        // Creating the name again makes a new object; the old user still hears of the loss.
        await Event(name).Open(other, OpenMode.CreateOrAttach);
        await Event(name).Set(other);
        Assert.True(await Event(name).IsSet(other));
        await AssertBridgeError(() => Event(name).IsSet(old), BridgeErrorCode.DataLoss, "ObjectLostError", lost);
        var recorded = await Fixture.Ledger.Recorded(address, CancellationToken.None);
        Assert.NotEqual("dead-machine:4242", recorded?.Host);

        // Freed by its last user, its record goes: the name is simply unknown again.
        await Event(name).Detach(other);
        await Eventually(async () => await Fixture.Ledger.Recorded(address, CancellationToken.None) is null, "the freed event's record is erased");
    }

    [Fact(Timeout = 30000)]
    public async Task A_dead_hosts_sessions_end_on_the_objects_it_used()
    {
        // The session grains of a dead host cannot tell the objects they used: the objects
        // end the sessions of that host themselves when told it died.
        var holder = await NewSession();
        var name = NewName("lock");
        await Lock(name).Open(holder, OpenMode.Create, LockKind.Lock, 0);
        Assert.True(await Lock(name).Acquire(holder, "t", 0, null, CancellationToken.None));
        var silo = (await Session(holder).Attached(new ObjectAddress(ObjectFamily.Lock, name))).Silo;

        Assert.Equal(0, await Lock(name).HostDied("10.0.0.9:11111@1"));
        Assert.Equal(new LockSnapshot(0, true, 1), await Lock(name).GetState(holder, "t"));

        Assert.Equal(1, await Lock(name).HostDied(silo));
        Assert.Null(await Lock(name).GetStatus()); // its only session ended: freed
    }

    [Fact(Timeout = 30000)]
    public async Task Attach_to_an_unknown_name_is_NotFound_naming_it()
    {
        var s = await NewSession();
        var name = NewName("nothing");

        await AssertBridgeError(() => Lock(name).Open(s, OpenMode.Attach, LockKind.Lock, 0), BridgeErrorCode.NotFound, "FileNotFoundError", $"no Lock/RLock/Semaphore named '{name}'");
        await AssertBridgeError(() => Queue(name).Open(s, OpenMode.Attach, QueueKind.Queue, 0), BridgeErrorCode.NotFound, "FileNotFoundError", "Queue");
        await AssertBridgeError(() => Event(name).IsSet(s), BridgeErrorCode.NotFound, "FileNotFoundError", name);
    }

    [Fact(Timeout = 30000)]
    public async Task CreateOrAttach_with_another_kind_is_AlreadyExists_saying_what_differs()
    {
        var s = await NewSession();
        var name = NewName("lock");
        await Lock(name).Open(s, OpenMode.Create, LockKind.Lock, 0);

        var error = await AssertBridgeError(() => Lock(name).Open(s, OpenMode.CreateOrAttach, LockKind.RLock, 0), BridgeErrorCode.AlreadyExists, "FileExistsError");
        Assert.Contains("RLock", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30000)]
    public async Task CreateOrAttach_with_other_parameters_is_AlreadyExists()
    {
        var s = await NewSession();
        var sem = NewName("sem");
        await Lock(sem).Open(s, OpenMode.Create, LockKind.Semaphore, 3);
        await AssertBridgeError(() => Lock(sem).Open(s, OpenMode.CreateOrAttach, LockKind.Semaphore, 2), BridgeErrorCode.AlreadyExists, "FileExistsError", "initial value 3");

        var queue = NewName("q");
        await Queue(queue).Open(s, OpenMode.Create, QueueKind.Queue, 5);
        await AssertBridgeError(() => Queue(queue).Open(s, OpenMode.CreateOrAttach, QueueKind.Queue, 6), BridgeErrorCode.AlreadyExists, "FileExistsError", "maxsize 5");
        await AssertBridgeError(() => Queue(queue).Open(s, OpenMode.CreateOrAttach, QueueKind.Joinable, 5), BridgeErrorCode.AlreadyExists, "FileExistsError", "JoinableQueue");

        var barrier = NewName("b");
        await Barrier(barrier).Open(s, OpenMode.Create, 2);
        await AssertBridgeError(() => Barrier(barrier).Open(s, OpenMode.CreateOrAttach, 3), BridgeErrorCode.AlreadyExists, "FileExistsError");
    }

    [Fact(Timeout = 30000)]
    public async Task CreateOrAttach_with_matching_parameters_attaches_and_Attach_ignores_them()
    {
        var a = await NewSession();
        var b = await NewSession();
        var name = NewName("sem");

        var created = await Lock(name).Open(a, OpenMode.CreateOrAttach, LockKind.BoundedSemaphore, 2);
        var attached = await Lock(name).Open(b, OpenMode.CreateOrAttach, LockKind.BoundedSemaphore, 2);
        var plain = await Lock(name).Open(b, OpenMode.Attach, LockKind.Lock, 99);

        Assert.Equal(new LockDescriptor(LockKind.BoundedSemaphore, 2), created);
        Assert.Equal(created, attached);
        Assert.Equal(created, plain);
        Assert.True(await Lock(name).Acquire(a, "t", 0, TimeSpan.Zero, CancellationToken.None));
        Assert.Equal(1, (await Lock(name).GetState(b, "t")).Value);
    }

    [Theory(Timeout = 30000)]
    [InlineData("has space")]
    [InlineData("semi;colon")]
    [InlineData("ünïcode")]
    public async Task Invalid_names_are_InvalidArgument(string name)
    {
        var s = await NewSession();
        await AssertBridgeError(() => Event(name).Open(s, OpenMode.Create), BridgeErrorCode.InvalidArgument, "ValueError", "invalid object name");
    }

    [Fact(Timeout = 30000)]
    public async Task Too_long_names_are_InvalidArgument()
    {
        // (An empty name cannot even address a grain; the host turns it into an anonymous one.)
        var s = await NewSession();
        await AssertBridgeError(() => Event(new string('a', 201)).Open(s, OpenMode.Create), BridgeErrorCode.InvalidArgument, "ValueError", "limit is 200");
    }

    [Fact(Timeout = 30000)]
    public async Task Anonymous_names_from_the_host_can_be_created()
    {
        var s = await NewSession();
        var name = ObjectNames.NewAnonymous();
        await Lock(name).Open(s, OpenMode.Create, LockKind.RLock, 0);
        Assert.True(await Lock(name).Acquire(s, "t", 0, TimeSpan.Zero, CancellationToken.None));
    }

    [Fact(Timeout = 30000)]
    public async Task Object_is_freed_when_the_last_session_detaches()
    {
        var a = await NewSession();
        var b = await NewSession();
        var name = NewName("ev");
        await Event(name).Open(a, OpenMode.Create);
        await Event(name).Open(b, OpenMode.Attach);
        await Event(name).Set(a);

        await Event(name).Detach(a);
        Assert.True(await Event(name).IsSet(b));

        await Event(name).Detach(b);
        await AssertBridgeError(() => Event(name).IsSet(b), BridgeErrorCode.NotFound, "FileNotFoundError", "freed");
        await AssertBridgeError(() => Event(name).Open(a, OpenMode.Attach), BridgeErrorCode.NotFound, "FileNotFoundError");

        // The name is free again, for a fresh object.
        await Event(name).Open(a, OpenMode.Create);
        Assert.False(await Event(name).IsSet(a));
    }

    /// <summary>
    /// A session that detaches (frees) an object while one of its own calls waits on it: the
    /// call fails at once with NotFound, whatever the family, instead of waiting out its
    /// timeout (or for ever) on state nobody holds; found by the host's unary fuzz, where
    /// such a call then failed with an InvalidOperationException (INTERNAL).
    /// </summary>
    [Fact(Timeout = 30000)]
    public async Task A_call_waiting_on_an_object_its_session_frees_fails_with_NotFound_at_once()
    {
        var s = await NewSession();
        var item = new PayloadBatch([[0x01]]);
        var (lockName, eventName, barrier, empty, full, joinable) =
            (NewName("lock"), NewName("ev"), NewName("barrier"), NewName("empty"), NewName("full"), NewName("joinable"));
        await Lock(lockName).Open(s, OpenMode.Create, LockKind.Lock, 0);
        Assert.True(await Lock(lockName).Acquire(s, "holder", 0, null, CancellationToken.None));
        await Event(eventName).Open(s, OpenMode.Create);
        await Barrier(barrier).Open(s, OpenMode.Create, 2);
        await Queue(empty).Open(s, OpenMode.Create, QueueKind.Queue, 0);
        await Queue(full).Open(s, OpenMode.Create, QueueKind.Queue, 1);
        await Queue(full).Put(s, item, null, CancellationToken.None);
        await Queue(joinable).Open(s, OpenMode.Create, QueueKind.Joinable, 0);
        await Queue(joinable).Put(s, item, null, CancellationToken.None);

        var timeout = TimeSpan.FromSeconds(20);
        foreach (var (what, wait, free) in new (string, Func<Task>, Func<Task>)[]
        {
            ("Lock.acquire", () => Lock(lockName).Acquire(s, "waiter", 0, timeout, CancellationToken.None), () => Lock(lockName).Detach(s)),
            ("Event.wait", () => Event(eventName).Wait(s, null, CancellationToken.None), () => Event(eventName).Detach(s)),
            ("Barrier.wait", () => Barrier(barrier).Wait(s, timeout, false, CancellationToken.None), () => Barrier(barrier).Detach(s)),
            ("Queue.get", () => Queue(empty).Get(s, 1, 0, null, CancellationToken.None), () => Queue(empty).Detach(s)),
            ("Queue.put", () => Queue(full).Put(s, item, timeout, CancellationToken.None), () => Queue(full).Detach(s)),
            ("JoinableQueue.join", () => Queue(joinable).Join(s, null, CancellationToken.None), () => Queue(joinable).Detach(s)),
        })
        {
            var waiting = wait();
            await AssertBlocked(waiting);
            await free();
            var error = await Assert.ThrowsAsync<BridgeException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(5)));
            Assert.True(error.Code == BridgeErrorCode.NotFound && error.Message.Contains("freed", StringComparison.Ordinal), $"{what}: {error.Code} {error.Message}");
        }
    }

    /// <summary>
    /// A forked child uses the proxies it inherited (counted in its parent's connection), so
    /// its own connection can detach from an object while the child still holds a unit, the
    /// lock or leased items there. The session then stays a member while others use the
    /// object, and its end gives them back; before, they were lost for good (a CI failure).
    /// </summary>
    [Fact(Timeout = 30000)]
    public async Task A_session_detaching_while_it_holds_something_gives_it_back_when_it_ends()
    {
        var parent = await NewSession();
        var child = await NewSession();
        var (semaphore, mutex, queue) = (NewName("sem"), NewName("lock"), NewName("q"));
        await Lock(semaphore).Open(parent, OpenMode.Create, LockKind.Semaphore, 1);
        await Lock(mutex).Open(parent, OpenMode.Create, LockKind.Lock, 0);
        await Queue(queue).Open(parent, OpenMode.Create, QueueKind.Queue, 0);
        await Queue(queue).Put(parent, new PayloadBatch([[7]]), null, CancellationToken.None);

        Assert.True(await Lock(semaphore).Acquire(child, "child", 1, TimeSpan.Zero, CancellationToken.None));
        Assert.True(await Lock(mutex).Acquire(child, "child", 1, TimeSpan.Zero, CancellationToken.None));
        Assert.Single((await Queue(queue).Get(child, 1, 0, TimeSpan.Zero, CancellationToken.None)).Items);
        Assert.False(await Lock(semaphore).Detach(child));
        Assert.False(await Lock(mutex).Detach(child));
        Assert.False(await Queue(queue).Detach(child));

        // Still held while the child lives...
        Assert.False(await Lock(semaphore).Acquire(parent, "parent", 1, TimeSpan.Zero, CancellationToken.None));
        Assert.False(await Lock(mutex).Acquire(parent, "parent", 1, TimeSpan.Zero, CancellationToken.None));
        Assert.Equal(0, (await Queue(queue).GetState(parent)).Size);

        // ...and given back when it ends.
        await Session(child).End();
        Assert.True(await Lock(semaphore).Acquire(parent, "parent", 1, TimeSpan.Zero, CancellationToken.None));
        Assert.True(await Lock(mutex).Acquire(parent, "parent", 1, TimeSpan.Zero, CancellationToken.None));
        Assert.Equal(1, (await Queue(queue).GetState(parent)).Size);

        // A session holding nothing detaches at once; the last member always does (and frees).
        var idle = await NewSession();
        await Lock(semaphore).Open(idle, OpenMode.Attach, LockKind.Semaphore, 0);
        Assert.True(await Lock(semaphore).Detach(idle));
        Assert.True(await Lock(mutex).Detach(parent));
        await AssertBridgeError(() => Lock(mutex).Open(idle, OpenMode.Attach, LockKind.Lock, 0), BridgeErrorCode.NotFound, "FileNotFoundError");
    }

    [Fact(Timeout = 30000)]
    public async Task First_call_of_a_session_attaches_it()
    {
        var a = await NewSession();
        var b = await NewSession();
        var name = NewName("ev");
        await Event(name).Open(a, OpenMode.Create);

        // b never opened it, but using it makes b a user that keeps it alive.
        await Event(name).Set(b);
        await Event(name).Detach(a);

        Assert.True(await Event(name).IsSet(b));
    }

    [Fact(Timeout = 30000)]
    public async Task Object_is_freed_when_its_last_session_ends()
    {
        var a = await NewSession();
        var name = NewName("lock");
        await Lock(name).Open(a, OpenMode.Create, LockKind.Lock, 0);

        await Session(a).End();

        var b = await NewSession();
        await AssertBridgeError(() => Lock(name).Open(b, OpenMode.Attach, LockKind.Lock, 0), BridgeErrorCode.NotFound, "FileNotFoundError");
    }

    [Fact(Timeout = 30000)]
    public async Task Object_stays_while_another_session_uses_it()
    {
        var a = await NewSession();
        var b = await NewSession();
        var name = NewName("q");
        await Queue(name).Open(a, OpenMode.Create, QueueKind.Queue, 0);
        await Queue(name).Open(b, OpenMode.Attach, QueueKind.Queue, 0);
        await Queue(name).Put(a, new PayloadBatch([[1]]), null, CancellationToken.None);

        await Session(a).End();

        Assert.Equal(1, (await Queue(name).GetState(b)).Size);
    }

    [Fact(Timeout = 30000)]
    public async Task Idle_objects_and_sessions_outlive_the_collection_age()
    {
        var s = await NewSession();
        var name = NewName("lock");
        await Lock(name).Open(s, OpenMode.Create, LockKind.Lock, 0);
        await Lock(name).Acquire(s, "t", 0, null, CancellationToken.None);

        // Idle for well past the (test) collection age: nothing may be collected.
        await Task.Delay(ClusterFixture.CollectionAge * 3);

        await Session(s).KeepAlive();
        Assert.Equal(new LockSnapshot(0, true, 1), await Lock(name).GetState(s, "t"));
    }
}

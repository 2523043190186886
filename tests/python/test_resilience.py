"""Dead and stalled clients (lease 2 s), Ctrl-C during long waits."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

import gilbridge.multiprocessing as mp

from conftest import LEASE_SECONDS

pytestmark = pytest.mark.usefixtures("host")


def test_sigkilled_lock_holder_releases_to_waiting_client(children) -> None:
    holder = children.start(
        """
        import time, gilbridge.multiprocessing as mp
        lock = mp.Lock(name="tests.res.lock")
        lock.acquire()
        print("held", flush=True)
        time.sleep(120)
        """
    )
    holder.wait_line("held")
    waiter = children.start(
        """
        import time, gilbridge.multiprocessing as mp
        lock = mp.Lock(name="tests.res.lock", create=False)
        print("waiting", lock.acquire(False), flush=True)
        t0 = time.monotonic()
        ok = lock.acquire(timeout=30)
        print("acquired", ok, round(time.monotonic() - t0, 2), flush=True)
        """
    )
    assert waiter.wait_line("waiting") == "waiting False"
    killed_at = time.monotonic()
    os.kill(holder.proc.pid, signal.SIGKILL)
    holder.proc.wait(10)
    _, ok, _ = waiter.wait_line("acquired", timeout=30).split()
    elapsed = time.monotonic() - killed_at
    assert ok == "True"
    assert elapsed < LEASE_SECONDS + 4, f"took {elapsed:.1f} s after the kill"
    waiter.wait_ok()


def test_stalled_client_loses_its_lock_and_gets_a_new_session(children) -> None:
    """SIGSTOP longer than the lease: the host ends the session and releases the lock;
    after SIGCONT the client warns, starts a new session and keeps working."""
    child = children.start(
        """
        import sys, time, warnings
        import gilbridge.multiprocessing as mp
        from gilbridge._connection import get_connection
        warnings.simplefilter("always")
        lock = mp.Lock(name="tests.res.stall")
        first = get_connection().session_id
        lock.acquire()
        print("held", flush=True)
        sys.stdin.readline()  # idle (no call in flight) until the parent writes a line
        time.sleep(LEASE)  # give the keep-alive thread a round
        print("second", get_connection().session_id != first, flush=True)
        print("reacquire", lock.acquire(timeout=20), flush=True)
        lock.release()
        """.replace("LEASE", str(LEASE_SECONDS)),
        stdin=subprocess.PIPE,
    )
    child.wait_line("held")
    lock = mp.Lock(name="tests.res.stall", create=False)
    assert lock.acquire(False) is False
    os.kill(child.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        assert lock.acquire(timeout=LEASE_SECONDS + 8), "the stalled session kept its lock"
        assert time.monotonic() - t0 >= 0.5
    finally:
        os.kill(child.proc.pid, signal.SIGCONT)
    lock.release()
    assert child.proc.stdin is not None
    child.proc.stdin.write("go\n")
    child.proc.stdin.flush()
    assert child.wait_line("second") == "second True"
    assert child.wait_line("reacquire") == "reacquire True"
    rc, _out, err = child.wait()
    assert rc == 0, err
    assert "RuntimeWarning" in err and "ended" in err, err


def test_wait_pending_while_the_session_lapses(children) -> None:
    """A client stalled (SIGSTOP) in Event.wait(60) past its lease: once resumed, the
    wait must still follow the stdlib: True when the event is set, not a fake timeout."""
    child = children.start(
        """
        import time, gilbridge.multiprocessing as mp
        ev = mp.Event(name="tests.res.pending")
        print("waiting", flush=True)
        t0 = time.monotonic()
        result = ev.wait(60)
        print("wait", result, round(time.monotonic() - t0, 1), flush=True)
        """
    )
    child.wait_line("waiting")
    ev = mp.Event(name="tests.res.pending", create=False)
    time.sleep(0.3)
    os.kill(child.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(LEASE_SECONDS + 3)  # the session lapses meanwhile
    finally:
        os.kill(child.proc.pid, signal.SIGCONT)
    time.sleep(0.5)
    ev.set()
    line = child.wait_line("wait", timeout=30)
    assert line.split()[1] == "True", f"Event.wait(60) returned {line!r} although no timeout passed"
    child.wait_ok()


def test_timed_wait_retried_after_a_lapsed_session_keeps_its_deadline(children) -> None:
    child = children.start(
        """
        import time, gilbridge.multiprocessing as mp
        ev = mp.Event(name="tests.res.deadline")
        print("waiting", flush=True)
        t0 = time.monotonic()
        result = ev.wait(6)
        print("wait", result, round(time.monotonic() - t0, 1), flush=True)
        """
    )
    child.wait_line("waiting")
    ev = mp.Event(name="tests.res.deadline", create=False)  # keeps it alive for the host
    time.sleep(0.2)
    os.kill(child.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(LEASE_SECONDS + 3)
    finally:
        os.kill(child.proc.pid, signal.SIGCONT)
    _, result, elapsed = child.wait_line("wait", timeout=30).split()
    assert result == "False"
    assert 5.5 <= float(elapsed) < 9, elapsed
    child.wait_ok()
    assert not ev.is_set()


@pytest.mark.parametrize("what", ["lock", "queue", "event"])
def test_ctrl_c_interrupts_a_long_wait(children, what: str) -> None:
    lock = mp.Lock(name=f"tests.res.ctrlc.{what}")
    lock.acquire()
    child = children.start(
        """
        import sys, time, gilbridge.multiprocessing as mp
        what = sys.argv[1]
        lock = mp.Lock(name="tests.res.ctrlc." + what, create=False)
        q = mp.Queue(name="tests.res.ctrlc.q")
        ev = mp.Event(name="tests.res.ctrlc.ev")
        print("blocking", flush=True)
        t0 = time.monotonic()
        try:
            if what == "lock":
                lock.acquire()
            elif what == "queue":
                q.get()
            else:
                ev.wait()
            print("returned", flush=True)
        except KeyboardInterrupt:
            print("interrupted", round(time.monotonic() - t0, 2), flush=True)
        time.sleep(1.5)  # alive: a cancelled wait must not take anything later
        print("still", flush=True)
        """,
        what,
    )
    child.wait_line("blocking")
    time.sleep(0.6)
    os.kill(child.proc.pid, signal.SIGINT)
    line = child.wait_line("interrupted", timeout=10)
    assert float(line.split()[1]) < 10
    # the cancelled waiter did not keep a claim on the lock / queue
    lock.release()
    q = mp.Queue(name="tests.res.ctrlc.q")
    q.put("item")
    time.sleep(0.3)
    assert lock.acquire(timeout=5)
    assert q.get(timeout=5) == "item"
    child.wait_line("still")
    child.wait_ok()
    lock.release()


def test_consumer_stalled_past_its_lease_keeps_consuming(children) -> None:
    """A fast consumer holding prefetched items is stalled past its lease: the host takes
    the leases back; after resuming, the consumer drops its stale prefetch, acknowledges
    nothing from the old session, and still receives every item (no error)."""
    n = 2000
    q = mp.Queue(name="tests.res.stalled.q")
    for i in range(n):
        q.put(i)
    assert q.qsize() == n
    child = children.start(
        """
        import sys, collections, queue, gilbridge.multiprocessing as mp
        q = mp.Queue(name="tests.res.stalled.q", create=False)
        got = [q.get(timeout=20) for _ in range(500)]
        print("paused", len(q._st.prefetch), q._st.unacked, flush=True)
        sys.stdin.readline()
        while True:
            try:
                got.append(q.get(timeout=1))
            except queue.Empty:
                break
        dup = sum(c - 1 for c in collections.Counter(got).values())
        print("done", len(set(got)), dup, flush=True)
        """,
        stdin=subprocess.PIPE,
    )
    _, prefetched, unacked = child.wait_line("paused").split()
    assert int(prefetched) > 0
    os.kill(child.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(LEASE_SECONDS + 3)
    finally:
        os.kill(child.proc.pid, signal.SIGCONT)
    assert child.proc.stdin is not None
    child.proc.stdin.write("go\n")
    child.proc.stdin.flush()
    _, distinct, dup = child.wait_line("done", timeout=60).split()
    assert int(distinct) == n
    assert int(dup) <= int(unacked)  # only items handed out but not yet acknowledged
    child.wait_ok()


def test_a_sigkilled_pool_owner_leaves_no_busy_worker_and_its_semaphore_unit_returns(children) -> None:
    """The owner of a pool whose workers run long tasks, and who holds a semaphore unit,
    is SIGKILLed: within its lease the host ends the pool (the busy workers are stopped,
    none runs on for the dead client) and the unit returns to the others."""
    from gilbridge._host import pid_alive

    owner = children.start(
        """
        import time, gilbridge.multiprocessing as mp
        units = mp.Semaphore(1, name="tests.res.owner.sem")
        units.acquire()
        pool = mp.Pool(2)
        results = [pool.apply_async(time.sleep, (120,)) for _ in range(2)]
        time.sleep(0.5)
        print("busy", " ".join(str(p) for p in pool.worker_pids), flush=True)
        time.sleep(120)
        """
    )
    line = owner.wait_line("busy")
    busy = [int(p) for p in line.split()[1:]]
    assert len(busy) == 2 and all(pid_alive(p) for p in busy), line
    units = mp.Semaphore(1, name="tests.res.owner.sem", create=False)
    assert units.acquire(False) is False
    owner.kill()
    t0 = time.monotonic()
    assert units.acquire(timeout=LEASE_SECONDS + 8), "the dead owner kept its semaphore unit"
    units.release()
    from conftest import wait_for

    assert wait_for(lambda: not any(pid_alive(p) for p in busy), timeout=LEASE_SECONDS + 15), \
        f"workers {busy} still run the dead client's tasks {time.monotonic() - t0:.1f} s after its death"
    with mp.Pool(2) as pool:  # the host goes on serving pools
        assert pool.map(abs, [-3, -4]) == [3, 4]

"""Lock caching with recall (lease 2 s): a Lock/RLock stays cached in the process that last
used it and is recalled when another process wants it. Everything here runs against the
real host with real OS processes; no test asserts how fast anything is."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import gilbridge.multiprocessing as mp

from conftest import LEASE_SECONDS, REAP_FORKED_CHILD, wait_for

pytestmark = pytest.mark.usefixtures("host")

# Prints what another client sees in GetLockState (a raw call from its own session).
_STATE_OF = """
def state_of(name):
    from gilbridge._connection import get_connection
    from gilbridge._proto.bridge.v1 import common_pb2, synchronization_pb2 as pb
    conn = get_connection()
    ref = common_pb2.ObjectRef(session_id=conn.session_id, name=name)
    return conn.call(conn.sync.GetLockState, pb.LockStateRequest(target=ref, owner="x"))
"""


def _send(child, line: str) -> None:
    assert child.proc.stdin is not None
    child.proc.stdin.write(line + "\n")
    child.proc.stdin.flush()


def test_uncontended_lock_stays_cached_and_others_see_it_held(children) -> None:
    lock = mp.Lock(name="tests.cache.visible")
    assert lock.acquire()
    lock.release()
    assert lock.acquire(False)  # locally, from the cache
    lock.release()
    out = children.run(
        _STATE_OF
        + """
s = state_of("tests.cache.visible")
print(s.value, s.owned_by_caller, s.count, s.cached)
"""
    )
    # The host counts the lock as held by this process (value 0) while it is cached here;
    # asking did not take it away.
    assert out.split() == ["0", "False", "1", "True"]
    assert lock.acquire(False)
    lock.release()


def test_another_process_gets_a_cached_but_free_lock_without_waiting(children) -> None:
    lock = mp.Lock(name="tests.cache.free")
    lock.acquire()
    lock.release()  # cached here, free
    out = children.run(
        """
        import gilbridge.multiprocessing as mp
        lock = mp.Lock(name="tests.cache.free", create=False)
        print("nonblocking", lock.acquire(False), flush=True)
        lock.release()
        """
    )
    assert out.split() == ["nonblocking", "True"]
    # The child took it (and may cache it now): it comes back on request.
    assert lock.acquire(timeout=30)
    lock.release()


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_waiter_times_out_while_held_then_gets_it_after_release(children, kind: str) -> None:
    lock = getattr(mp, kind)(name=f"tests.cache.held.{kind}")
    lock.acquire()
    lock.release()
    assert lock.acquire()  # held through the cache
    child = children.start(
        f"""
        import sys, gilbridge.multiprocessing as mp
        lock = mp.{kind}(name="tests.cache.held.{kind}", create=False)
        print("nonblocking", lock.acquire(False), flush=True)
        print("timed", lock.acquire(timeout=0.5), flush=True)
        print("waiting", flush=True)
        print("acquired", lock.acquire(timeout=60), flush=True)
        sys.stdin.readline()
        lock.release()
        print("released", flush=True)
        """,
        stdin=subprocess.PIPE,
    )
    assert child.wait_line("nonblocking") == "nonblocking False"
    assert child.wait_line("timed") == "timed False"
    child.wait_line("waiting")
    assert lock.acquire(False) is (kind == "RLock")  # an RLock re-enters (its owner)
    if kind == "RLock":
        lock.release()
    lock.release()
    assert child.wait_line("acquired", timeout=60) == "acquired True"
    assert lock.acquire(False) is False  # the child holds it now
    _send(child, "go")
    child.wait_line("released")
    child.wait_ok()
    assert lock.acquire(timeout=30)
    lock.release()


_PING_PONG = """
import sys, time
from pathlib import Path
import gilbridge.multiprocessing as mp
lock = mp.{kind}(name=sys.argv[1], create=False)
counter, me, rounds = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mp.Barrier(2, name=sys.argv[1] + ".start", create=False).wait(60)
done = 0
while done < rounds:
    with lock:
        value = int(counter.read_text())
        if value % 2 == me:  # strict alternation: the lock must change hands every round
            time.sleep(0.0005)  # read-sleep-write: a second holder would lose an update
            counter.write_text(str(value + 1))
            done += 1
print("done", done, flush=True)
"""


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_two_processes_alternate_with_mutual_exclusion(children, tmp_path: Path, kind: str) -> None:
    name = f"tests.cache.pingpong.{kind}"
    lock = getattr(mp, kind)(name=name)  # noqa: F841 - keeps the objects alive
    barrier = mp.Barrier(2, name=name + ".start")  # noqa: F841
    counter = tmp_path / "counter"
    counter.write_text("0")
    rounds = 150
    procs = [
        children.start(_PING_PONG.format(kind=kind), name, str(counter), str(me), str(rounds))
        for me in (0, 1)
    ]
    for proc in procs:
        assert proc.wait_ok(timeout=100).split() == ["done", str(rounds)]
    assert int(counter.read_text()) == 2 * rounds


def test_threads_of_two_processes_share_the_cache_safely(children, tmp_path: Path) -> None:
    """Three threads in each of two processes, one Lock: every read-sleep-write counts."""
    name = "tests.cache.threads"
    lock = mp.Lock(name=name)  # noqa: F841
    start = mp.Barrier(2, name=name + ".start")  # noqa: F841
    counter = tmp_path / "counter"
    counter.write_text("0")
    code = """
        import sys, threading, time
        from pathlib import Path
        import gilbridge.multiprocessing as mp
        lock = mp.Lock(name=sys.argv[1], create=False)
        counter = Path(sys.argv[2])
        mp.Barrier(2, name=sys.argv[1] + ".start", create=False).wait(60)

        def work():
            for i in range(60):
                if i % 3 == 0:
                    while not lock.acquire(False):  # the non-blocking path as well
                        time.sleep(0.001)
                elif i % 3 == 1:
                    while not lock.acquire(timeout=0.05):  # and short timeouts
                        pass
                else:
                    lock.acquire()
                try:
                    value = int(counter.read_text())
                    time.sleep(0.0002)
                    counter.write_text(str(value + 1))
                finally:
                    lock.release()

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("ok", flush=True)
        """
    procs = [children.start(code, name, str(counter)) for _ in range(2)]
    for proc in procs:
        assert proc.wait_ok(timeout=100).strip() == "ok"
    assert int(counter.read_text()) == 2 * 3 * 60


@pytest.mark.parametrize("holding", [True, False], ids=["holding", "cached-free"])
def test_sigkilled_caching_process_loses_the_lock(children, holding: bool) -> None:
    name = f"tests.cache.killed.{holding}"
    child = children.start(
        f"""
        import time, gilbridge.multiprocessing as mp
        lock = mp.Lock(name="{name}")
        lock.acquire()
        if not {holding}:
            lock.release()
            assert lock.acquire(False)  # from the cache
            lock.release()
        print("ready", flush=True)
        time.sleep(120)
        """
    )
    child.wait_line("ready")
    lock = mp.Lock(name=name, create=False)
    os.kill(child.proc.pid, signal.SIGKILL)
    child.proc.wait(10)
    # The dead client can answer no recall: the lock comes free when its lease lapses.
    assert lock.acquire(timeout=LEASE_SECONDS + 28)
    lock.release()


def test_stalled_caching_process_does_not_use_its_cache_after_losing_the_session(children) -> None:
    """SIGSTOP past the lease while caching (free): the host ends the session and gives the
    lock to a waiter; after SIGCONT the stale grant must not be used."""
    child = children.start(
        """
        import sys, warnings
        import gilbridge.multiprocessing as mp
        warnings.simplefilter("ignore")
        lock = mp.Lock(name="tests.cache.stalled")
        lock.acquire()
        lock.release()
        print("cached", lock.acquire(False), flush=True)
        lock.release()
        sys.stdin.readline()
        print("after", lock.acquire(False), flush=True)
        """,
        stdin=subprocess.PIPE,
    )
    assert child.wait_line("cached") == "cached True"
    lock = mp.Lock(name="tests.cache.stalled", create=False)
    os.kill(child.proc.pid, signal.SIGSTOP)
    try:
        assert lock.acquire(timeout=LEASE_SECONDS + 28)
    finally:
        os.kill(child.proc.pid, signal.SIGCONT)
    _send(child, "go")
    assert child.wait_line("after") == "after False"  # this process holds it
    child.wait_ok()
    lock.release()


def test_release_from_another_process(children) -> None:
    lock = mp.Lock(name="tests.cache.foreign")
    lock.acquire()
    lock.release()
    assert lock.acquire()  # held here through the cache
    code = """
        import gilbridge.multiprocessing as mp
        lock = mp.Lock(name="tests.cache.foreign", create=False)
        try:
            lock.release()
            print("released")
        except ValueError as exc:
            print("ValueError", exc)
        """
    # Held here: the stdlib lets another process release it.
    assert children.run(code).strip() == "released"
    assert lock.acquire(False) is True  # it really is free now
    lock.release()
    # Cached here but free: releasing it elsewhere is releasing an unlocked lock.
    assert lock.acquire(False)
    lock.release()
    assert children.run(code).startswith("ValueError")
    assert lock.acquire(False) is True
    lock.release()
    with pytest.raises(ValueError):
        lock.release()


@pytest.mark.parametrize("kind", ["RLock", "Lock"])
def test_condition_ping_pong_across_processes(children, kind: str) -> None:
    name = f"tests.cache.cond.{kind}"
    lock = mp.Lock(name=name + ".lock") if kind == "Lock" else None
    cond = mp.Condition(lock, name=name)
    turn = mp.Value("i", 0, lock=False, name=name + ".turn")
    rounds = 15
    child = children.start(
        f"""
        import gilbridge.multiprocessing as mp
        cond = mp.Condition(name="{name}", create=False)
        turn = mp.Value("i", name="{name}.turn", lock=False, create=False)
        for _ in range({rounds}):
            with cond:
                assert cond.wait_for(lambda: turn.value == 1, 60)
                turn.value = 0
                cond.notify_all()
        print("child done", flush=True)
        """
    )
    for _ in range(rounds):
        with cond:
            assert cond.wait_for(lambda: turn.value == 0, 60)
            turn.value = 1
            cond.notify_all()
        # The lock is used (and cached) outside the condition too.
        with cond:
            pass
    assert child.wait_line("child done", timeout=60) == "child done"
    child.wait_ok()
    with cond:
        assert cond.wait_for(lambda: turn.value == 0, 60)


def test_forked_child_does_not_inherit_cached_grants(children) -> None:
    out = children.run(
        REAP_FORKED_CHILD + """
        import sys
        import gilbridge.multiprocessing as mp
        from gilbridge._connection import get_connection

        lock = mp.Lock(name="tests.cache.fork.lock")
        rlock = mp.RLock(name="tests.cache.fork.rlock")
        lock.acquire(); lock.release()   # cached here, free
        rlock.acquire(); rlock.release()
        rlock.acquire()                  # cached here, held by this very thread
        results = []
        for i in range(8):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                # Same thread id as the parent's holder: an inherited cache would let
                # it re-enter the RLock and take the Lock without asking the host.
                got_rlock = rlock.acquire(False)
                got_lock = lock.acquire(timeout=30)
                os.write(w, f"{got_rlock} {got_lock}\\n".encode())
                time.sleep(0.3)  # hold it while the parent checks
                lock.release()
                sys.exit(0)
            os.close(w)
            line = os.fdopen(r).readline().split()
            parent_got_lock = lock.acquire(False)  # the child holds it: must be False
            results.append((line, parent_got_lock, reap(pid, limit=30)))
            assert lock.acquire(timeout=30)  # back to this process (cached again)
            lock.release()
        print(all(res == (["False", "True"], False, 0) for res in results), results[0])
        rlock.release()
        """,
        timeout=110,
    )
    assert out.startswith("True"), out


def test_a_broken_watch_stream_gives_every_cached_grant_back(children) -> None:
    """Another Watch on the child's session supersedes (ends) the child's stream; recalls
    would reach that other stream, so the child must surrender and stop using its cache."""
    child = children.start(
        """
        import sys
        import gilbridge.multiprocessing as mp
        from gilbridge._connection import get_connection
        free, held = mp.Lock(name="tests.cache.broken.free"), mp.RLock(name="tests.cache.broken.held")
        free.acquire(); free.release()  # cached, free
        held.acquire()                  # cached, held by this thread
        print("session", get_connection().session_id, flush=True)
        sys.stdin.readline()
        print("after", free.acquire(False), flush=True)
        held.release()
        print("released", flush=True)
        """,
        stdin=subprocess.PIPE,
    )
    session = child.wait_line("session").split()[1]
    free = mp.Lock(name="tests.cache.broken.free", create=False)
    held = mp.RLock(name="tests.cache.broken.held", create=False)
    from gilbridge._connection import get_connection
    from gilbridge._proto.bridge.v1 import common_pb2, sessions_pb2
    from gilbridge._proto.bridge.v1 import synchronization_pb2 as pb

    conn = get_connection()

    def cached(name: str) -> bool:
        ref = common_pb2.ObjectRef(session_id=conn.session_id, name=name)
        return bool(conn.call(conn.sync.GetLockState, pb.LockStateRequest(target=ref, owner="x")).cached)

    assert cached(free.name) and cached(held.name)
    stream = conn.sessions.Watch(sessions_pb2.WatchRequest(session_id=session), metadata=conn.metadata)
    try:
        assert next(stream).WhichOneof("event") == "started"
        # Both grants come back without anyone acquiring: the free one is released, the
        # held one stays held by the child's thread as a plain hold.
        assert wait_for(lambda: not cached(free.name) and not cached(held.name), timeout=30)
    finally:
        stream.cancel()
    assert free.acquire(False) is True
    assert held.acquire(False) is False
    _send(child, "go")
    assert child.wait_line("after") == "after False"  # no stale local use: this process holds it
    child.wait_line("released")
    child.wait_ok()
    assert held.acquire(timeout=30)
    held.release()
    free.release()

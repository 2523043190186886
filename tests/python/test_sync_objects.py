"""Event, Condition and Barrier: stdlib semantics, in one and across processes."""

from __future__ import annotations

import re
import threading
import time

import pytest

import gilbridge.multiprocessing as mp

pytestmark = pytest.mark.usefixtures("host")


# --------------------------------------------------------------------------- Event


def test_event_basics() -> None:
    ev = mp.Event()
    assert ev.is_set() is False
    t0 = time.monotonic()
    assert ev.wait(0.3) is False
    assert time.monotonic() - t0 >= 0.25
    assert ev.wait(0) is False
    ev.set()
    assert ev.is_set() is True
    assert ev.wait() is True
    assert ev.wait(0) is True
    ev.clear()
    assert ev.is_set() is False


def test_event_repr_has_the_stdlib_form_and_the_host_name() -> None:
    event = mp.Event()
    assert re.fullmatch(r"<Event at 0x[0-9a-f]+ name='[^']+' unset>", repr(event)), repr(event)
    event.set()
    assert repr(event).endswith(" set>")


def test_event_wait_timeout_validation() -> None:
    ev = mp.Event()
    with pytest.raises(ValueError, match="non-negative"):
        ev.wait(-1)
    with pytest.raises(TypeError):
        ev.wait("soon")  # type: ignore[arg-type]


def test_event_set_wakes_waiter_in_another_process(children) -> None:
    ev = mp.Event()
    done = mp.Event()
    child = children.start(
        """
        import pickle, sys, time
        ev, done = pickle.loads(bytes.fromhex(sys.argv[1]))
        print("waiting", flush=True)
        t0 = time.monotonic()
        print("woke", ev.wait(20), round(time.monotonic() - t0, 2), flush=True)
        done.set()
        """,
        __import__("pickle").dumps((ev, done)).hex(),
    )
    child.wait_line("waiting")
    time.sleep(0.4)
    assert not done.is_set()
    ev.set()
    _, flag, waited = child.wait_line("woke").split()
    assert flag == "True" and float(waited) >= 0.2
    assert done.wait(10)
    child.wait_ok()


# --------------------------------------------------------------------------- Condition


def test_condition_wait_requires_the_lock() -> None:
    cond = mp.Condition()
    with pytest.raises(AssertionError):
        cond.wait(0.1)
    with pytest.raises(AssertionError):
        cond.notify()
    with pytest.raises(AssertionError):
        cond.notify_all()


def test_condition_wait_timeout_returns_false_and_keeps_the_lock() -> None:
    cond = mp.Condition()
    with cond:
        t0 = time.monotonic()
        assert cond.wait(0.3) is False
        assert time.monotonic() - t0 >= 0.25
        # the lock was re-acquired by this thread
        cond.notify()
    with pytest.raises(AssertionError):
        cond.notify()


def test_condition_with_explicit_lock_and_notify_across_threads() -> None:
    lock = mp.Lock()
    cond = mp.Condition(lock)
    items: list[int] = []
    got: list[int] = []

    def consumer() -> None:
        with cond:
            assert cond.wait_for(lambda: items, timeout=20)
            got.append(items.pop())

    t = threading.Thread(target=consumer)
    t.start()
    time.sleep(0.3)
    with cond:
        items.append(7)
        cond.notify()
    t.join(20)
    assert got == [7]
    # the condition really uses our lock
    with cond:
        assert lock.acquire(False) is False


def test_condition_rlock_recursion_restored_after_wait() -> None:
    rlock = mp.RLock()
    cond = mp.Condition(rlock)
    rlock.acquire()
    rlock.acquire()
    assert cond.wait(0.05) is False
    # both levels are back: two releases succeed, a third fails
    rlock.release()
    rlock.release()
    with pytest.raises(AssertionError):
        rlock.release()


def test_condition_wait_for_timeout() -> None:
    cond = mp.Condition()
    with cond:
        t0 = time.monotonic()
        assert cond.wait_for(lambda: False, timeout=0.3) is False
        assert time.monotonic() - t0 >= 0.25
        assert cond.wait_for(lambda: 5) == 5


def test_condition_notify_all_across_processes(children) -> None:
    cond = mp.Condition(name="tests.cond.all")
    flag = mp.Value("i", 0, name="tests.cond.all.flag")
    ready = mp.Semaphore(0, name="tests.cond.all.ready")
    code = """
        import gilbridge.multiprocessing as mp
        cond = mp.Condition(name="tests.cond.all", create=False)
        flag = mp.Value("i", name="tests.cond.all.flag", create=False)
        ready = mp.Semaphore(name="tests.cond.all.ready", create=False)
        with cond:
            ready.release()
            ok = cond.wait_for(lambda: flag.value == 1, timeout=30)
        print("woken", ok, flush=True)
        """
    procs = [children.start(code) for _ in range(2)]
    for _ in procs:
        assert ready.acquire(timeout=30)
    with cond:  # both children are now waiting (they released the lock in wait)
        flag.value = 1
        cond.notify_all()
    for p in procs:
        assert p.wait_line("woken") == "woken True"
        p.wait_ok()


def test_named_condition_opened_by_two_processes_is_one_condition(children) -> None:
    # Both sides call Condition(name=...) as it is (create-or-attach): the second process
    # must attach to the first one's condition and its RLock, not make a lock of its own.
    cond = mp.Condition(name="tests.cond.shared")
    ready = mp.Semaphore(0, name="tests.cond.shared.ready")
    child = children.start(
        """
        import gilbridge.multiprocessing as mp
        cond = mp.Condition(name="tests.cond.shared")
        ready = mp.Semaphore(0, name="tests.cond.shared.ready")
        print("lock", cond._lock.name, type(cond._lock).__name__, flush=True)
        with cond:
            ready.release()
            print("woken", cond.wait(30), flush=True)
        """
    )
    assert child.wait_line("lock") == f"lock {cond._lock.name} RLock"
    assert ready.acquire(timeout=30)
    with cond:  # the child is waiting: it released the lock in wait()
        cond.notify()
    assert child.wait_line("woken") == "woken True"
    child.wait_ok()
    with pytest.raises(FileExistsError, match=re.escape(cond._lock.name)):
        mp.Condition(mp.Lock(), name="tests.cond.shared")  # another lock: refused, naming both


# --------------------------------------------------------------------------- Barrier


def test_barrier_single_process_threads() -> None:
    barrier = mp.Barrier(3)
    assert barrier.parties == 3
    assert barrier.n_waiting == 0 and barrier.broken is False
    indices: list[int] = []
    threads = [threading.Thread(target=lambda: indices.append(barrier.wait(20))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(indices) == [0, 1, 2]


def test_barrier_timeout_breaks_it() -> None:
    barrier = mp.Barrier(2)
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(0.2)
    assert barrier.broken is True
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(0.1)
    barrier.reset()
    assert barrier.broken is False


def test_barrier_default_timeout_from_constructor() -> None:
    barrier = mp.Barrier(2, timeout=0.2)
    t0 = time.monotonic()
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait()
    assert 0.15 <= time.monotonic() - t0 < 10


def test_barrier_abort_and_reset_wake_waiters() -> None:
    barrier = mp.Barrier(2)
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            barrier.wait(20)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    deadline = time.monotonic() + 10
    while barrier.n_waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert barrier.n_waiting == 1
    barrier.abort()
    t.join(20)
    assert len(errors) == 1 and isinstance(errors[0], threading.BrokenBarrierError)
    assert barrier.broken
    barrier.reset()
    assert not barrier.broken


def test_barrier_action_runs_once_and_failure_breaks() -> None:
    runs: list[int] = []
    barrier = mp.Barrier(2, action=lambda: runs.append(1))
    threads = [threading.Thread(target=barrier.wait, args=(20,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert runs == [1]

    def boom() -> None:
        raise KeyError("action failed")

    bad = mp.Barrier(2, action=boom)
    outcomes: list[str] = []

    def wait() -> None:
        try:
            bad.wait(20)
            outcomes.append("ok")
        except threading.BrokenBarrierError:
            outcomes.append("broken")
        except KeyError:
            outcomes.append("keyerror")

    threads = [threading.Thread(target=wait) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["broken", "keyerror"]
    assert bad.broken


def test_barrier_three_parties_across_processes(children) -> None:
    barrier = mp.Barrier(3, name="tests.barrier.three")
    code = """
        import time, gilbridge.multiprocessing as mp
        b = mp.Barrier(3, name="tests.barrier.three", create=False)
        t0 = time.monotonic()
        i = b.wait(30)
        print("index", i, round(time.monotonic() - t0, 2), flush=True)
        """
    first = children.start(code)
    time.sleep(0.5)
    second = children.start(code)
    deadline = time.monotonic() + 20
    while barrier.n_waiting < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert barrier.n_waiting == 2
    mine = barrier.wait(30)
    indices = [mine]
    for p in (first, second):
        indices.append(int(p.wait_line("index").split()[1]))
        p.wait_ok()
    assert sorted(indices) == [0, 1, 2]
    assert mine == 2  # the parent arrived last

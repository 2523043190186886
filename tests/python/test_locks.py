"""Lock, RLock, Semaphore, BoundedSemaphore: stdlib semantics, in one and across processes."""

from __future__ import annotations

import threading
import time

import pytest

import gilbridge.multiprocessing as mp

pytestmark = pytest.mark.usefixtures("host")


def test_lock_basics() -> None:
    lock = mp.Lock()
    assert lock.acquire() is True
    assert lock.acquire(False) is False
    assert lock.acquire(block=False) is False
    t0 = time.monotonic()
    assert lock.acquire(timeout=0.3) is False
    assert 0.25 <= time.monotonic() - t0 < 5
    lock.release()
    assert lock.acquire(block=True, timeout=0) is True
    lock.release()


def test_lock_context_manager_returns_true_and_releases() -> None:
    lock = mp.Lock()
    with lock as entered:
        assert entered is True
        assert lock.acquire(False) is False
    assert lock.acquire(False) is True
    lock.release()


def test_lock_release_unheld_is_value_error() -> None:
    lock = mp.Lock()
    with pytest.raises(ValueError, match="released too many times"):
        lock.release()


def test_lock_may_be_released_by_another_thread() -> None:
    lock = mp.Lock()
    lock.acquire()
    t = threading.Thread(target=lock.release)
    t.start()
    t.join(10)
    assert lock.acquire(timeout=5) is True
    lock.release()


def test_lock_wakes_a_blocked_thread() -> None:
    lock = mp.Lock()
    lock.acquire()
    got: list[float] = []

    def waiter() -> None:
        t0 = time.monotonic()
        assert lock.acquire()
        got.append(time.monotonic() - t0)
        lock.release()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    assert not got
    lock.release()
    t.join(10)
    assert got and got[0] >= 0.25


def test_rlock_recursion_and_ownership() -> None:
    rlock = mp.RLock()
    assert rlock.acquire() and rlock.acquire()
    rlock.release()
    # still owned once: another thread cannot take it
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(rlock.acquire(timeout=0.2)))
    t.start()
    t.join(10)
    assert result == [False]
    rlock.release()
    with pytest.raises(AssertionError):
        rlock.release()


def test_rlock_release_by_other_thread_is_assertion_error() -> None:
    rlock = mp.RLock()
    rlock.acquire()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            rlock.release()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], AssertionError)
    rlock.release()


def test_semaphore_counts() -> None:
    sem = mp.Semaphore(2)
    assert sem.get_value() == 2
    assert sem.acquire() and sem.acquire(False)
    assert sem.get_value() == 0
    assert sem.acquire(timeout=0.1) is False
    sem.release()
    sem.release()
    sem.release()  # a plain Semaphore may go above its initial value
    assert sem.get_value() == 3
    assert mp.Semaphore().get_value() == 1
    assert mp.Semaphore(0).acquire(False) is False


def test_bounded_semaphore_over_release_is_value_error() -> None:
    sem = mp.BoundedSemaphore(1)
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
    assert sem.get_value() == 1


def test_semaphore_negative_initial_value() -> None:
    with pytest.raises(ValueError):
        mp.Semaphore(-1)


@pytest.mark.parametrize("bad", [-1, -0.001, float("nan")])
def test_negative_timeout_is_value_error(bad: float) -> None:
    lock = mp.Lock()
    with pytest.raises(ValueError, match="non-negative"):
        lock.acquire(timeout=bad)
    with pytest.raises(ValueError, match="non-negative"):
        mp.Semaphore(0).acquire(True, bad)


@pytest.mark.parametrize("bad", ["1", b"1", [1], object()])
def test_non_numeric_timeout_is_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        mp.Lock().acquire(timeout=bad)  # type: ignore[arg-type]


def test_non_blocking_ignores_timeout_like_the_stdlib() -> None:
    lock = mp.Lock()
    assert lock.acquire(False, -5) is True  # timeout ignored when block is false
    lock.release()


def test_lock_across_processes(children) -> None:
    lock = mp.Lock(name="tests.locks.cross")
    lock.acquire()
    child = children.start(
        """
        import time, gilbridge.multiprocessing as mp
        lock = mp.Lock(name="tests.locks.cross", create=False)
        print("try", lock.acquire(False), flush=True)
        t0 = time.monotonic()
        print("acquired", lock.acquire(timeout=20), round(time.monotonic() - t0, 2), flush=True)
        lock.release()
        """
    )
    assert child.wait_line("try") == "try False"
    time.sleep(0.5)
    lock.release()
    line = child.wait_line("acquired")
    _, ok, waited = line.split()
    assert ok == "True" and float(waited) >= 0.3
    child.wait_ok()
    assert lock.acquire(timeout=5)
    lock.release()


def test_semaphore_across_processes_limits_concurrency(children) -> None:
    sem = mp.Semaphore(2, name="tests.locks.sem2")
    inside = mp.Value("i", 0, name="tests.locks.sem2.inside")
    peak = mp.Value("i", 0, name="tests.locks.sem2.peak")
    start = mp.Barrier(4, name="tests.locks.sem2.start")
    code = """
        import time, gilbridge.multiprocessing as mp
        mp.Barrier(4, name="tests.locks.sem2.start").wait(30)
        sem = mp.Semaphore(name="tests.locks.sem2", create=False)
        inside = mp.Value("i", name="tests.locks.sem2.inside", create=False)
        peak = mp.Value("i", name="tests.locks.sem2.peak", create=False)
        for _ in range(3):
            with sem:
                with inside.get_lock():
                    inside.value += 1
                    peak.value = max(peak.value, inside.value)
                time.sleep(0.2)
                with inside.get_lock():
                    inside.value -= 1
        """
    procs = [children.start(code) for _ in range(3)]
    start.wait(30)
    for p in procs:
        p.wait_ok()
    assert inside.value == 0
    assert peak.value == 2
    assert sem.get_value() == 2

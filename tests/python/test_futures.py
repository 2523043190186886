"""gilbridge.futures.ProcessPoolExecutor on real Bridge workers."""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import time

import pytest

import gilbridge
from gilbridge.futures import ProcessPoolExecutor

import _exec_targets as t

pytestmark = pytest.mark.usefixtures("host")


def test_submit_map_and_real_futures() -> None:
    with ProcessPoolExecutor(max_workers=2) as ex:
        f = ex.submit(t.add, 2, b=3)
        assert isinstance(f, concurrent.futures.Future)
        assert f.result(30) == 5 and f.done() and not f.cancelled()
        assert list(ex.map(t.square, range(10))) == [x * x for x in range(10)]
        assert list(ex.map(t.add, range(5), range(5), chunksize=2)) == [0, 2, 4, 6, 8]
        assert list(ex.map(lambda x: -x, [1, 2])) == [-1, -2]
        futures = [ex.submit(t.slow_pid, d) for d in (0.3, 0.0)]
        order = [futures.index(done) for done in concurrent.futures.as_completed(futures, timeout=30)]
        assert sorted(order) == [0, 1]
        done, not_done = concurrent.futures.wait(futures, timeout=30)
        assert len(done) == 2 and not not_done
        with pytest.raises(ValueError):
            ex.map(t.square, [1], chunksize=0)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(t.square, 1)


def test_exception_with_remote_traceback_and_timeout() -> None:
    with ProcessPoolExecutor(max_workers=1) as ex:
        f = ex.submit(t.divide, 1, 0)
        with pytest.raises(ZeroDivisionError) as info:
            f.result(30)
        assert isinstance(info.value.__cause__, concurrent.futures.process._RemoteTraceback)
        assert "in divide" in str(info.value.__cause__)
        assert isinstance(f.exception(), ZeroDivisionError)
        slow = ex.submit(time.sleep, 1.0)
        with pytest.raises(concurrent.futures.TimeoutError):
            slow.result(timeout=0.1)
        assert slow.result(30) is None
        it = ex.map(time.sleep, [1.0], timeout=0.1)
        with pytest.raises(concurrent.futures.TimeoutError):
            next(it)


def test_wait_first_completed_and_cancel_pending() -> None:
    ex = ProcessPoolExecutor(max_workers=1)
    try:
        running = ex.submit(time.sleep, 1.0)
        # max_workers + 1 are handed to the host; later ones stay PENDING and cancellable
        queued = [ex.submit(t.square, i) for i in range(6)]
        time.sleep(0.3)
        done, pending = concurrent.futures.wait([running, *queued], timeout=30,
                                                return_when=concurrent.futures.FIRST_COMPLETED)
        assert done and pending
        assert queued[-1].cancel()
        ex.shutdown(wait=True, cancel_futures=True)
        assert queued[-1].cancelled()
        assert any(f.cancelled() for f in queued[:-1])  # those still pending were cancelled
        for f in queued:
            assert f.cancelled() or f.result(0) in (0, 1, 4, 9, 16)
        assert running.result(0) is None
    finally:
        ex.shutdown(wait=False)


def test_broken_pool_and_initializer() -> None:
    ex = ProcessPoolExecutor(max_workers=2, initializer=t.init_worker, initargs=("init",))
    try:
        assert ex.submit(t.initialized).result(30)[0] == "init"
        started = time.monotonic()
        crashed = ex.submit(t.exit_hard, 1)
        blocked = ex.submit(time.sleep, 30)
        with pytest.raises(gilbridge.BrokenProcessPool):
            crashed.result(30)
        assert isinstance(crashed.exception(), concurrent.futures.process.BrokenProcessPool)
        with pytest.raises(concurrent.futures.process.BrokenProcessPool):
            blocked.result(30)  # the whole executor is broken, as in the stdlib
        assert time.monotonic() - started < 10
        with pytest.raises(concurrent.futures.process.BrokenProcessPool):
            ex.submit(t.square, 2)
    finally:
        ex.shutdown(wait=True)


def test_kernels_and_validation() -> None:
    primes = gilbridge.dotnet("Bridge.Kernels.Primes.Count")
    with ProcessPoolExecutor(2) as ex:
        assert ex.submit(primes, 0, 1000).result(30) == 168
        assert list(ex.map(primes, [0, 0], [100, 1000])) == [25, 168]
    with pytest.raises(ValueError):
        ProcessPoolExecutor(0)
    with pytest.raises(TypeError):
        ProcessPoolExecutor(1, max_tasks_per_child="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ProcessPoolExecutor(1, max_tasks_per_child=0)
    with ProcessPoolExecutor(1, max_tasks_per_child=1) as ex:
        pids = [ex.submit(t.pid_of).result(30) for _ in range(2)]
    assert pids[0] != pids[1]

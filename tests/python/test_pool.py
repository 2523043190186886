"""Pool on real Bridge workers: the stdlib's API and semantics, callables that travel
with cloudpickle, remote tracebacks, initializers, worker crashes, C# kernels, shared
objects used from tasks, and Ctrl-C."""

from __future__ import annotations

import concurrent.futures.process
import multiprocessing as stdlib_mp
import multiprocessing.pool as stdlib_pool
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import gilbridge
import gilbridge.multiprocessing as mp
import gilbridge.multiprocessing.managers
from gilbridge.multiprocessing.pool import Pool

import _exec_targets as t
from conftest import CHILD_TIMEOUT, wait_for

pytestmark = pytest.mark.usefixtures("host")

PRIMES = gilbridge.dotnet("Bridge.Kernels.Primes.Count")
SLEEP = gilbridge.dotnet("Bridge.Kernels.Timing.Sleep")


@pytest.fixture(scope="module")
def pool(bridge_host: object) -> Iterator[Pool]:
    """One Pool(2) shared by the tests that do not change its state."""
    p = mp.Pool(2)
    yield p
    p.terminate()


# --------------------------------------------------------------------------- API


def test_map_imap_starmap_results_and_order(pool: Pool) -> None:
    assert pool.map(t.square, range(20)) == [x * x for x in range(20)]
    assert pool.map(t.square, []) == []
    assert list(pool.imap(t.square, range(10))) == [x * x for x in range(10)]
    assert list(pool.imap(t.square, range(10), chunksize=3)) == [x * x for x in range(10)]
    assert sorted(pool.imap_unordered(t.square, range(10))) == [x * x for x in range(10)]
    assert sorted(pool.imap_unordered(t.square, range(10), chunksize=4)) == [x * x for x in range(10)]
    assert pool.starmap(t.add, [(1, 2), (3, 4), [5, 6]]) == [3, 7, 11]
    assert pool.starmap_async(t.add, [(1, 1)]).get(30) == [2]
    assert pool.apply(t.add, (2,), {"b": 5}) == 7
    assert pool.apply_async(divmod, (7, 2)).get(30) == (3, 1)
    # tuples, dicts, bytes, None and non-plain objects come back as they went
    value = {"a": (1, [2, b"x"]), "b": None, "c": {1, 2}}
    assert pool.apply(lambda v: v, (value,)) == value


def test_imap_orders_slow_early_items(pool: Pool) -> None:
    # The slow item's second must outlast any stall of the other worker on a loaded
    # 2-core machine (0.4 s did not, once, right after the wheel test).
    delays = [1.0, 0.0, 0.0, 0.0]
    started = time.monotonic()
    unordered = list(pool.imap_unordered(lambda d: (time.sleep(d), d)[1], delays))
    assert time.monotonic() - started < 5
    assert unordered[0] == 0.0 and sorted(unordered) == sorted(delays)  # completion order
    assert list(pool.imap(lambda d: (time.sleep(d), d)[1], delays)) == delays


def test_imap_feeds_an_endless_generator_lazily() -> None:
    import itertools

    # Its own pool: as in the stdlib, the task handler feeds an endless generator
    # forever, so later tasks of the same pool would wait behind it.
    with mp.Pool(1) as p:
        it = p.imap(t.square, itertools.count())
        assert [next(it) for _ in range(50)] == [x * x for x in range(50)]
        in_flight = p._core._outstanding
        assert 0 < in_flight <= 1024  # bounded, not the whole (endless) iterable


def test_map_default_chunksize_is_the_stdlibs(pool: Pool) -> None:
    # 2 processes: divmod(100, 8) -> 13 per chunk, so 8 chunks; chunks run in order on
    # a worker, so each chunk's items report one pid.
    pids = pool.map(t.pid_of, range(100))
    runs = [pids[i:i + 13] for i in range(0, 100, 13)]
    assert all(len(set(run)) == 1 for run in runs)
    explicit = pool.map(t.pid_of, range(10), chunksize=10)
    assert len(set(explicit)) == 1


def test_lambdas_closures_and_builtins(pool: Pool) -> None:
    factor = 3

    def scale(x: int) -> int:
        return x * factor

    assert pool.map(lambda x: x + 1, [1, 2, 3]) == [2, 3, 4]
    assert pool.map(scale, [1, 2]) == [3, 6]
    assert pool.map(abs, [-1, -2]) == [1, 2]


_SHIFT = {"by": 1}


def test_functions_by_reference_are_pickled_once_and_closures_each_time(pool: Pool) -> None:
    core = pool._core
    # A module-level function and a builtin are named, not copied: one pickle serves every call.
    assert core.function_ref(t.square) is core.function_ref(t.square)
    assert core.function_ref(divmod) is core.function_ref(divmod)
    assert [pool.apply(t.square, (x,)) for x in range(3)] == [0, 1, 4]
    # A closure travels by value: each submission carries what it captured then.
    factor = [2]

    def scale(x: int) -> int:
        return x * factor[0]

    assert core.function_ref(scale) is not core.function_ref(scale)
    assert pool.apply(scale, (5,)) == 10
    factor[0] = 7
    assert pool.apply(scale, (5,)) == 35
    shift = lambda x: x + _SHIFT["by"]  # noqa: E731 - the point is a lambda
    assert pool.apply(shift, (1,)) == 2
    _SHIFT["by"] = 10
    assert pool.apply(shift, (1,)) == 11


def test_callbacks_run_in_the_result_handler_thread(pool: Pool) -> None:
    seen: list[tuple[str, object]] = []
    done = threading.Event()

    def callback(value: object) -> None:
        seen.append((threading.current_thread().name, value))
        done.set()

    pool.apply_async(t.square, (4,), callback=callback).wait(30)
    assert done.wait(10)
    assert seen[0][1] == 16 and seen[0][0] != threading.main_thread().name

    errors: list[BaseException] = []
    r = pool.apply_async(t.divide, (1, 0), error_callback=errors.append)
    r.wait(30)
    assert r.ready() and not r.successful()
    assert isinstance(errors[0], ZeroDivisionError)

    results: list[object] = []
    pool.map_async(t.square, [1, 2, 3], callback=results.append).wait(30)
    assert results == [[1, 4, 9]]
    map_errors: list[BaseException] = []
    mr = pool.starmap_async(t.fail_on, [(1, 2), (2, 2), (3, 2)], chunksize=1,
                            error_callback=map_errors.append)
    mr.wait(30)
    assert mr.ready() and not mr.successful()
    assert len(map_errors) == 1 and isinstance(map_errors[0], ValueError)


def test_apply_async_from_many_threads_beside_maps_gets_every_result(pool: Pool) -> None:
    # A caller sends its own apply_async task when the pool is idle and the task handler
    # feeds maps and large payloads: both write to the same worker sockets, one at a time.
    big = b"x" * (200 << 10)  # over the inline limit: the task handler's way
    errors: list[BaseException] = []

    def caller(k: int) -> None:
        try:
            for i in range(60):
                if i % 20 == 0:
                    assert pool.map_async(t.square, range(50), chunksize=3).get(60) == [x * x for x in range(50)]
                if i % 15 == 0:
                    assert pool.apply_async(len, (big,)).get(60) == len(big)
                assert pool.apply_async(t.add, (k, i)).get(60) == k + i
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(k * 1000,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    # Many at once, none waited for: more than the workers have credits for.
    results = [pool.apply_async(t.square, (i,)) for i in range(300)]
    assert [r.get(60) for r in results] == [i * i for i in range(300)]


def test_asyncresult_get_timeout_ready_successful(pool: Pool) -> None:
    r = pool.apply_async(time.sleep, (1.0,))
    with pytest.raises(ValueError, match="not ready"):
        r.successful()
    assert not r.ready()
    with pytest.raises(stdlib_mp.TimeoutError):
        r.get(timeout=0.1)
    assert not r.ready()  # it gave up before the task could finish
    assert r.get(timeout=30) is None
    assert r.ready() and r.successful()
    it = pool.imap(time.sleep, [1.0])
    with pytest.raises(stdlib_mp.TimeoutError):
        it.next(timeout=0.1)
    assert it.next(timeout=30) is None
    with pytest.raises(StopIteration):
        it.next()


def test_exception_keeps_type_and_remote_traceback(pool: Pool) -> None:
    with pytest.raises(ZeroDivisionError) as info:
        pool.apply(t.divide, (1, 0))
    cause = info.value.__cause__
    assert isinstance(cause, stdlib_pool.RemoteTraceback)
    assert "in divide" in str(cause) and "_exec_targets.py" in str(cause)
    assert str(cause).startswith('\n"""\nTraceback')

    with pytest.raises(ValueError, match="bad item 3"):
        pool.starmap(t.fail_on, [(i, 3) for i in range(6)])

    with pytest.raises(RuntimeError) as info2:
        pool.apply(t.raise_unpicklable)
    assert type(info2.value).__name__ == "Unpicklable"
    assert "no pickle for me" in str(info2.value)
    assert "raise_unpicklable" in str(info2.value.__cause__)


def test_errors_in_the_parent_fail_their_task(pool: Pool) -> None:
    def gen() -> Iterator[int]:
        yield 1
        raise OSError("generator broke")

    it = pool.imap(t.square, gen())
    assert next(it) == 1
    with pytest.raises(OSError, match="generator broke"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)
    # an argument that cannot be pickled fails its task only
    r = pool.apply_async(t.square, (threading.Lock(),))
    with pytest.raises(TypeError, match="cannot send"):
        r.get(30)
    assert pool.apply(t.square, (3,)) == 9


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        mp.Pool(0)
    with pytest.raises(ValueError, match="maxtasksperchild"):
        mp.Pool(1, maxtasksperchild=0)
    with pytest.raises(ValueError, match="maxtasksperchild"):
        mp.Pool(1, maxtasksperchild=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        mp.Pool(1, initializer=3)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError):
        import pickle

        p = mp.Pool(1)
        try:
            pickle.dumps(p)
        finally:
            p.terminate()


def test_lifecycle_close_join_terminate_context_manager() -> None:
    p = mp.Pool(1)
    with pytest.raises(ValueError, match="still running"):
        p.join()
    r = p.map_async(t.slow_pid, [0.2, 0.2])
    p.close()
    with pytest.raises(ValueError, match="Pool not running"):
        p.apply_async(t.square, (1,))
    p.join()  # waits for the submitted work
    assert r.ready() and len(r.get()) == 2
    p.terminate()  # after join: harmless

    with mp.Pool(2) as p2:
        assert p2.map(t.square, [2]) == [4]
        pending = p2.apply_async(time.sleep, (30,))
    # __exit__ terminated the pool: the pending result fails instead of hanging
    with pytest.raises(gilbridge.BrokenProcessPool):
        pending.get(10)
    with pytest.raises(ValueError, match="Pool not running"):
        p2.map(t.square, [1])


def test_initializer_and_initargs() -> None:
    with mp.Pool(2, initializer=t.init_worker, initargs=("ready",)) as p:
        values = p.map(t.initialized, range(4), chunksize=1)
        pids = set(p.worker_pids)
    assert all(v[0] == "ready" for v in values)
    assert {v[1] for v in values} <= pids  # run in the workers themselves


def test_maxtasksperchild_replaces_workers() -> None:
    with mp.Pool(1, maxtasksperchild=1) as p:
        pids = [p.apply(t.pid_of) for _ in range(3)]
    assert len(set(pids)) == 3, pids


@pytest.mark.parametrize("crash", [t.exit_hard, t.kill_self], ids=["os._exit", "SIGKILL"])
def test_worker_crash_fails_the_task_quickly_and_the_pool_keeps_working(crash: object) -> None:
    with mp.Pool(2) as p:
        before = set(p.worker_pids)
        started = time.monotonic()
        r = p.apply_async(crash, (1,))
        with pytest.raises(gilbridge.BrokenProcessPool) as info:
            r.get(30)
        assert time.monotonic() - started < 10
        assert isinstance(info.value, concurrent.futures.process.BrokenProcessPool)
        # the host replaced the dead worker; the pool still works
        assert p.map(t.square, range(6)) == [x * x for x in range(6)]
        assert wait_for(lambda: len(p.worker_pids) == 2 and set(p.worker_pids) != before, timeout=15)


# --------------------------------------------------------------------------- C# kernels


def test_kernels_in_map_starmap_apply_async(pool: Pool) -> None:
    assert pool.starmap(PRIMES, [(0, 1_000_000), (0, 100), (100, 200)]) == [78498, 25, 21]
    assert pool.apply_async(PRIMES, (0, 10_000)).get(30) == 1229
    assert pool.apply(PRIMES, (), {"start": 0, "stop": 1000}) == 168
    assert pool.map(SLEEP, [0.0, 0.01]) == [0.0, 0.01]
    assert list(pool.imap(SLEEP, [0.0, 0.0])) == [0.0, 0.0]


def test_kernel_exception_is_a_dotnet_error_with_the_stack_trace(pool: Pool) -> None:
    with pytest.raises(gilbridge.DotnetError) as info:
        pool.apply(SLEEP, (-1.0,))
    err = info.value
    assert err.dotnet_type == "System.ArgumentOutOfRangeException"
    assert "Bridge.Kernels.Timing.Sleep" in err.remote_traceback
    assert "Bridge.Kernels.Timing.Sleep" in str(err.__cause__)
    # argument mismatches are reported in Python's terms
    with pytest.raises(TypeError):
        pool.apply(PRIMES, ("not a number", 5))
    with pytest.raises(AttributeError, match="NoSuch"):
        pool.apply(gilbridge.dotnet("Bridge.Kernels.NoSuch.Kernel"), (1,))


def test_kernel_called_directly_runs_in_a_one_off_pool() -> None:
    assert PRIMES(0, 100) == 25
    with pytest.raises(gilbridge.DotnetError):
        SLEEP(-5.0)
    with pytest.raises(ValueError):
        gilbridge.dotnet("not a kernel name")


# --------------------------------------------------------------------------- shared objects


def test_tasks_fill_a_queue(pool: Pool) -> None:
    q = mp.Queue()
    counts = pool.starmap(t.put_items, [(q, w, 25) for w in range(4)], chunksize=1)
    assert counts == [25] * 4
    items = [q.get(timeout=10) for _ in range(100)]
    assert sorted(items) == sorted((w, i) for w in range(4) for i in range(25))
    for w in range(4):  # FIFO per producer
        assert [i for ww, i in items if ww == w] == list(range(25))


def test_lock_guards_a_value_counter(pool: Pool) -> None:
    lock = mp.Lock()
    counter = mp.Value("i", 0, lock=False)
    assert pool.starmap(t.locked_increments, [(lock, counter, 250)] * 4, chunksize=1) == [250] * 4
    assert counter.value == 1000


def test_event_releases_waiting_workers(pool: Pool) -> None:
    event = mp.Event()
    started = mp.Queue()
    r = pool.starmap_async(t.wait_event, [(event, started, 30)] * 2, chunksize=1)
    pids = {started.get(timeout=20), started.get(timeout=20)}
    assert len(pids) == 2  # both workers are blocked in event.wait
    assert not r.ready()
    event.set()
    assert r.get(20) == [True, True]


def test_stdlib_manager_proxies_travel(pool: Pool) -> None:
    # Pickled as the stdlib's spawn pickles a child: a proxy carries its authkey.
    with stdlib_mp.get_context("spawn").Manager() as manager:
        d = manager.dict()
        pool.starmap(t.store_square, [(d, i) for i in range(3)])
        p = mp.Process(target=t.store_square, args=(d, 5))
        p.start()
        p.join(30)
        assert p.exitcode == 0
        assert dict(d) == {0: 0, 1: 1, 2: 4, 5: 25}


class _TallyManager(gilbridge.multiprocessing.managers.SyncManager):
    pass


_TallyManager.register("Tally", t.Tally)


def test_a_bridge_manager_serves_a_process_and_pool_tasks(pool: Pool) -> None:
    with _TallyManager() as manager:
        # its server is a Bridge Process, on a worker: not a child of this process
        server = manager._process
        assert isinstance(server, mp.Process) and server.pid != os.getpid()
        assert server.pid not in [c.pid for c in stdlib_mp.active_children()]
        d, q, lock, tally = manager.dict(), manager.Queue(), manager.Lock(), manager.Tally()
        assert tally.server_pid() == server.pid
        # host objects, not proxies through the server
        assert isinstance(lock, type(mp.Lock())) and isinstance(q, type(mp.JoinableQueue()))
        pool.starmap(t.managed_work, [(d, q, lock, tally, k) for k in range(3)], chunksize=1)
        p = mp.Process(target=t.managed_work, args=(d, q, lock, tally, 5))
        p.start()
        p.join(CHILD_TIMEOUT)
        assert p.exitcode == 0
        assert dict(d) == {0: 0, 1: 1, 2: 4, 5: 25}
        assert sorted(q.get(timeout=10) for _ in range(4)) == [0, 1, 2, 5]
        assert tally.add(0) == 8
    # shut down: the server's worker is done with it, and the manager creates nothing more
    assert not server.is_alive()
    with pytest.raises(AssertionError):
        manager.Lock()


def test_pipe_ends_reach_pool_tasks_and_processes(pool: Pool) -> None:
    # A worker is not this process's child: the Pipe end's descriptor is handed over a
    # Unix socket when the worker unpickles it, and the two ends then talk directly.
    mine, theirs = stdlib_mp.Pipe()
    job = pool.apply_async(t.pipe_echo, (theirs,))
    mine.send(21)
    assert mine.poll(CHILD_TIMEOUT)
    assert mine.recv() == 42
    assert job.get(CHILD_TIMEOUT) == "echoed"
    theirs.close()  # after the task took it: the task handler pickles it asynchronously
    mine.close()

    mine, theirs = stdlib_mp.Pipe()
    p = mp.Process(target=t.pipe_echo, args=(theirs,))
    p.start()
    theirs.close()  # start() pickled it: as with a spawned child, the parent closes its copy
    mine.send("ab")
    assert mine.poll(CHILD_TIMEOUT)
    assert mine.recv() == "abab"
    p.join(CHILD_TIMEOUT)
    assert p.exitcode == 0
    mine.close()


def test_a_raw_array_written_by_two_workers_is_read_by_the_caller(pool: Pool) -> None:
    shared = mp.RawArray("i", 100)
    assert pool.starmap(t.fill_shared, [(shared, 0, 50, 7), (shared, 50, 100, 9)], chunksize=1) == [50, 50]
    assert list(shared[:50]) == [7] * 50 and list(shared[50:]) == [9] * 50


# --------------------------------------------------------------------------- Ctrl-C


CTRL_C_PARENT = """
import os, sys, time
import gilbridge.multiprocessing as mp
import gilbridge.multiprocessing.managers

def work(x):
    time.sleep(60)
    return x

if __name__ == "__main__":
    pool = mp.Pool(2)
    print("PIDS", *pool.worker_pids, flush=True)
    try:
        pool.map(work, range(4), chunksize=1)
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
        raise
"""


def test_ctrl_c_terminates_the_pool_and_leaves_no_worker(tmp_path: object) -> None:
    import subprocess
    import sys

    script = tmp_path / "ctrlc.py"  # type: ignore[operator]
    script.write_text(CTRL_C_PARENT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PIDS"), (line, proc.stderr.read() if proc.poll() is not None else "")
        pids = [int(x) for x in line.split()[1:]]
        assert all(_alive(pid) for pid in pids)
        time.sleep(1.0)  # the map is running
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, err = proc.communicate(timeout=15)
        assert time.monotonic() - started < 5, err
        assert proc.returncode != 0
        assert "INTERRUPTED" in out and "KeyboardInterrupt" in err
        assert wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=10), pids
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _alive(pid: int) -> bool:
    from gilbridge._host import pid_alive

    return pid_alive(pid)


def test_a_quick_task_does_not_wait_behind_a_long_one_while_a_worker_is_free() -> None:
    """The host hands each chunk to the least busy worker: with one worker asleep for 30 s,
    a quick task runs on the other one at once instead of queueing behind the sleep."""
    with mp.Pool(2) as p:
        for _ in range(4):  # both workers have run Python chunks and announced their slots
            p.map(abs, range(8), chunksize=1)
        slow = p.apply_async(time.sleep, (30,))
        time.sleep(0.5)
        assert p.apply_async(abs, (-7,)).get(timeout=10) == 7
        assert not slow.ready()
        p.terminate()


def _unpicklable_result() -> object:
    return lambda: 42


def test_a_result_that_cannot_be_sent_is_a_maybe_encoding_error_and_the_pool_goes_on() -> None:
    from multiprocessing.pool import MaybeEncodingError as StdlibError

    from gilbridge.multiprocessing.pool import MaybeEncodingError

    assert MaybeEncodingError is StdlibError
    seen: list[BaseException] = []
    with mp.Pool(2) as pool:
        for _ in range(3):
            res = pool.apply_async(_unpicklable_result, error_callback=seen.append)
            with pytest.raises(MaybeEncodingError) as info:
                res.get(timeout=CHILD_TIMEOUT)
            assert "lambda" in info.value.value and info.value.exc
        assert pool.apply(int, ("7",)) == 7
    assert len(seen) == 3 and all(isinstance(e, MaybeEncodingError) for e in seen)


def test_pool_lists_its_workers_and_warns_when_collected_running() -> None:
    import gc
    import warnings

    pool = mp.Pool(3)
    try:
        assert len(pool._pool) == 3
        assert sorted(w.pid for w in pool._pool) == sorted(pool.worker_pids)
        assert all(w.is_alive() for w in pool._pool)
        pool._repopulate_pool()  # the host replaces workers itself: nothing to do
    finally:
        pool.terminate()
        pool.join()
    pool._state = stdlib_pool.RUN  # as CPython's test_resource_warning forces it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pool = None
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) and "unclosed running multiprocessing pool" in str(w.message)
               for w in caught)


def test_a_pool_whose_interpreter_cannot_start_is_a_runtime_error() -> None:
    # A raw CreatePool naming an interpreter that does not exist: a precise error (the
    # client's RuntimeError), for a Process's one-worker pool too; the host goes on.
    from gilbridge._connection import get_connection
    from gilbridge._execution import create_pool
    from gilbridge._proto.bridge.v1 import execution_pb2 as pb

    conn = get_connection()
    for process_mode in (False, True):
        request = pb.CreatePoolRequest(session_id=conn.session_id, processes=1, process_mode=process_mode)
        request.python.executable = "/nonexistent/python3"
        with pytest.raises(RuntimeError, match="did not start"):
            create_pool(conn, request)
    with mp.Pool(1) as pool:
        assert pool.apply(int, ("3",)) == 3


def test_a_worker_starts_dotnet_without_wxorx_or_its_debugger_and_its_tasks_inherit_neither(pool: Pool) -> None:
    # bridge_worker.py sets both for the runtime's start only (a host started by
    # gilbridge passes W^X off down to its workers too; this one, started by the tests,
    # does not).
    if "DOTNET_EnableWriteXorExecute" in os.environ:
        pytest.skip("the tests' host inherits DOTNET_EnableWriteXorExecute from this environment")
    assert pool.map(t.dotnet_start_settings, [0]) == [(None, None, False)]

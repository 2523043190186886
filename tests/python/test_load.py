"""Load: many items through one bounded queue, many clients on one lock, many named
objects made and dropped, each against a host of its own whose memory is measured.

The sizes scale with ``GILBRIDGE_LOAD_SCALE`` (default 0.02, what CI runs; 1 is the full
load: 1,000,000 items by 4 producer and 4 consumer processes, 200 client processes on
one lock, 1,000 named objects)::

    GILBRIDGE_LOAD_SCALE=1 .venv/bin/python -m pytest -q -s tests/python/test_load.py

Each test prints what it measured (``-s`` shows it). Every process is stopped by PID.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import HostProcess, scaled, start_host, stop_host, wait_for


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class PeakRss:
    """Samples a process's resident set every 50 ms in a thread, keeping the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = rss_mib(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except (OSError, AssertionError):
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak


@pytest.fixture()
def load_host() -> Iterator[HostProcess]:
    """A host of the test's own (its memory is the test's to measure), stopped by PID."""
    directory = Path(tempfile.mkdtemp(prefix="gb-load-"))
    host = start_host(directory)
    try:
        yield host
    finally:
        stop_host(host)


@contextlib.contextmanager
def connected_to(host: HostProcess) -> Iterator[None]:
    """This process's gilbridge connection goes to ``host`` for the block, then back to
    whatever GILBRIDGE_ADDRESS said before (the session's test host)."""
    from gilbridge import _connection

    old = os.environ.get("GILBRIDGE_ADDRESS")
    _connection._close_current()
    _connection._connection = None
    os.environ["GILBRIDGE_ADDRESS"] = host.address
    try:
        yield
    finally:
        _connection._close_current()
        _connection._connection = None
        if old is None:
            os.environ.pop("GILBRIDGE_ADDRESS", None)
        else:
            os.environ["GILBRIDGE_ADDRESS"] = old


def run_children(host: HostProcess, children: list[tuple[str, list[str]]], timeout: float) -> list[str]:
    """Runs one Python child per (code, arguments), all at once, against ``host``; returns
    their stdouts (each must exit 0). A child still running at ``timeout`` is killed."""
    import subprocess

    env = dict(os.environ, GILBRIDGE_ADDRESS=host.address)
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for code, args in children]
    deadline = time.monotonic() + timeout
    outputs: list[str] = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.returncode == 0, f"child {proc.args[3:]} exited {proc.returncode}:\n{err[-3000:]}"
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    return outputs


PRODUCER = """
import sys, gilbridge.multiprocessing as mp
name, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
q = mp.Queue(1000, name=name, create=False)
for item in range(first, first + count):
    q.put(item)
q.close()
q.join_thread()
"""

CONSUMER = """
import sys, array, gilbridge.multiprocessing as mp
name, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
q = mp.Queue(1000, name=name, create=False)
got = array.array("q", (q.get(timeout=120) for _ in range(count)))
with open(out, "wb") as f:
    got.tofile(f)
"""


@pytest.mark.timeout(900)
def test_four_producers_four_consumers_one_bounded_queue_nothing_lost_or_doubled(
        load_host: HostProcess, tmp_path: Path) -> None:
    import array

    import gilbridge.multiprocessing as mp

    items = scaled(1_000_000, 8_000)
    share = items // 4
    items = share * 4
    with connected_to(load_host):
        q = mp.Queue(1000, name="load.jobs")
        memory = PeakRss(load_host.pid)
        started = time.monotonic()
        children = [(PRODUCER, ["load.jobs", str(k * share), str(share)]) for k in range(4)]
        children += [(CONSUMER, ["load.jobs", str(share), str(tmp_path / f"c{k}.bin")]) for k in range(4)]
        run_children(load_host, children, timeout=60 + items / 500)
        elapsed = time.monotonic() - started
        peak = memory.stop()
        received = array.array("q")
        for k in range(4):
            with open(tmp_path / f"c{k}.bin", "rb") as f:
                received.frombytes(f.read())
        assert len(received) == items
        assert sorted(received) == list(range(items)), "items were lost or doubled"
        assert q.qsize() == 0
        print(f"\n{items:,} items, 4 x 4 through Queue(1000): {items / elapsed:,.0f} items/s; "
              f"host resident {memory.start:.0f} MiB at the start, {peak:.0f} MiB at the peak")
        # Bounded: the queue holds at most 1000 items, whatever the volume moved.
        assert peak - memory.start < 300, (memory.start, peak)
        del q
        gc.collect()


LOCKER = """
import sys, time, gilbridge.multiprocessing as mp
increments = int(sys.argv[1])
lock = mp.Lock(name="load.lock", create=False)
counter = mp.RawValue("q", 0, name="load.counter", create=False)
for _ in range(increments):
    with lock:
        value = counter.value
        time.sleep(0)  # another process runs here: only the lock keeps the update whole
        counter.value = value + 1
"""


@pytest.mark.timeout(900)
def test_many_client_processes_contend_on_one_lock_and_the_counter_ends_exact(
        load_host: HostProcess) -> None:
    clients = scaled(200, 8)
    increments = 200
    # This process holds the objects for the test: they outlive every child.
    with connected_to(load_host):
        import gilbridge.multiprocessing as mp

        lock = mp.Lock(name="load.lock")
        counter = mp.RawValue("q", 0, name="load.counter")
        started = time.monotonic()
        run_children(load_host, [(LOCKER, [str(increments)])] * clients, timeout=120 + clients * 3)
        elapsed = time.monotonic() - started
        assert counter.value == clients * increments, "mutual exclusion failed"
        assert lock.acquire(timeout=5)
        lock.release()
        print(f"\n{clients} client processes x {increments} locked increments: exact, {elapsed:.1f} s")
        del lock, counter
        gc.collect()


@pytest.mark.timeout(600)
def test_named_objects_made_and_dropped_leave_the_host_near_its_start(load_host: HostProcess) -> None:
    count = scaled(1_000, 100)
    from gilbridge import _host, _status

    address = _host.Address(load_host.address, is_default=False)
    with connected_to(load_host):
        import gilbridge.multiprocessing as mp

        def objects_now() -> int:
            status = _status.fetch(address, max_objects=1)
            return len(status.objects) + status.objects_omitted

        warm = mp.Queue(name="load.warm")  # the first objects of a kind load their code
        warm.put(1)
        del warm
        gc.collect()
        assert wait_for(lambda: objects_now() == 0, timeout=30)
        before = rss_mib(load_host.pid)
        after: list[float] = []
        for _round in range(2):
            made = []
            for i in range(count):
                q = mp.Queue(name=f"load.q.{i}")
                q.put(b"x" * 100)
                made += [q, mp.Lock(name=f"load.l.{i}"), mp.Value("d", 1.0, name=f"load.v.{i}")]
            listed = objects_now()
            assert listed >= 3 * count  # a Value's lock is an object too
            peak = rss_mib(load_host.pid)
            del made, q
            gc.collect()
            assert wait_for(lambda: objects_now() == 0, timeout=60), f"{objects_now()} objects left"
            after.append(rss_mib(load_host.pid))
        print(f"\n{listed} objects ({count} named queues, locks and values) made and dropped, twice: "
              f"host resident {before:.0f} MiB before, {peak:.0f} MiB with them, "
              f"{after[0]:.0f} and {after[1]:.0f} MiB after each round")
        # The runtime keeps the heap the first round grew; the second round reuses it:
        # memory does not keep climbing with objects that are gone.
        assert after[1] - after[0] < 15 + 0.25 * max(0.0, after[0] - before), (before, peak, after)

"""The workloads ``compare`` times, and the functions they run in worker processes.

The functions (:func:`noop`, :func:`trivial`, :func:`count_primes`, the queue's producer
and consumer) live in this importable module so the stdlib and Bridge pickle them alike,
by reference. A *bench* is one contender of one workload, set up once (pools created and
warmed here, outside the timing) and then sampled repeatedly; :func:`open_bench` makes
one. Benches run inside a runner process (:mod:`gilbridge.compare._runner`): the stdlib
ones in a process that never imports grpc (so ``fork`` is the plain stdlib fork), the
Bridge ones in another.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ITEM: Final = b"0123456789abcdef"  # 16 bytes, like the platform notes' stdlib baseline
PRIME_CHUNKS: Final = 16
MAP_ITEMS: Final = 100_000
SEED_PROCESSES: Final = 3
READY_TIMEOUT: Final = 60.0
BOUNDED_MAXSIZE: Final = 1000


@dataclass(frozen=True)
class Sizes:
    """How big each workload is (``--quick`` makes them small)."""

    workers: int = 2
    seed_sleep: float = 1.0
    map_items: int = MAP_ITEMS
    # The Python sieve needs ~1 CPU-second here (~0.1 s at 2,000,000, where 16 tasks of
    # ~6 ms would time the pool's per-task overhead rather than CPU-bound work).
    primes_below: int = 20_000_000
    queue_items: int = 100_000
    lock_pairs: int = 2_000           # Manager and Bridge locks (each pair is a round trip)
    local_lock_pairs: int = 200_000   # the stdlib's Lock (tens of ns a pair)
    apply_calls: int = 200
    cold_items: int = 100
    counter_increments: int = 100_000  # shared Value increments under its lock
    element_accesses: int = 200_000    # raw shared array element read+write pairs

    @classmethod
    def quick(cls, workers: int) -> Sizes:
        return cls(workers=workers, seed_sleep=0.2, map_items=10_000, primes_below=200_000,
                   queue_items=5_000, lock_pairs=200, local_lock_pairs=20_000, apply_calls=50,
                   cold_items=10, counter_increments=10_000, element_accesses=20_000)


@dataclass(frozen=True)
class Sample:
    """One timed repetition: ``value`` in the workload's unit, plus facts to check."""

    value: float
    extra: dict[str, Any]


class Bench:
    """One contender of one workload. :meth:`sample` blocks for one timed repetition."""

    def sample(self) -> Sample:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the setup made (pools, managers); outside any timing."""


# ------------------------------------------------------------------ worker-side functions


def noop() -> None:
    """The trivial target."""


def trivial(x: int) -> int:
    """The trivial mapped function."""
    return x


def count_primes(start: int, stop: int) -> int:
    """The primes p with ``start <= p < stop``, exactly what
    ``Bridge.Kernels.Primes.Count(start, stop)`` counts (values below 2 count from 2; an
    empty or inverted range is 0), by the same sieve of Eratosthenes (base primes up to
    √(stop-1), composites crossed off from max(p², the first multiple ≥ start)), in pure
    Python loops: CPU-bound interpreter work that holds the GIL."""
    start = max(start, 2)
    if stop <= start:
        return 0
    limit = math.isqrt(stop - 1)
    small = bytearray(limit + 1)
    base: list[int] = []
    for i in range(2, limit + 1):
        if not small[i]:
            base.append(i)
            for m in range(i * i, limit + 1, i):
                small[m] = 1
    length = stop - start
    composite = bytearray(length)
    for p in base:
        first = max(p * p, (start + p - 1) // p * p)
        for m in range(first - start, length, p):
            composite[m] = 1
    return composite.count(0)


def prime_ranges(below: int, chunks: int = PRIME_CHUNKS) -> list[tuple[int, int]]:
    """``chunks`` consecutive (start, stop) ranges covering [0, below)."""
    step = -(-below // chunks)
    return [(i * step, min((i + 1) * step, below)) for i in range(chunks) if i * step < below]


def _producer(q: Any, items: int, ready: Any, go: Any) -> None:
    q.qsize()  # connect (Bridge) before saying ready
    ready.wait(READY_TIMEOUT)
    go.wait(READY_TIMEOUT)
    put = q.put
    for _ in range(items):
        put(ITEM)
    if hasattr(q, "close"):
        q.close()
        q.join_thread()


def _consumer(q: Any, items: int, ready: Any, go: Any, done: Any) -> None:
    q.qsize()
    ready.wait(READY_TIMEOUT)
    go.wait(READY_TIMEOUT)
    get = q.get
    for _ in range(items):
        get()
    done.send(time.perf_counter())


# ------------------------------------------------------------------ contexts


def _stdlib(method: str | None) -> Any:
    import multiprocessing

    return multiprocessing.get_context(method)


def _bridge() -> Any:
    import gilbridge.multiprocessing

    return gilbridge.multiprocessing


def _context(contender: str) -> Any:
    """The multiprocessing module or context a contender's label names."""
    if contender.startswith("bridge"):
        return _bridge()
    for method in ("spawn", "fork", "forkserver"):
        if method in contender.split():
            return _stdlib(method)
    return _stdlib(None)


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


# ------------------------------------------------------------------ benches


# The seed blog's example as a user's script: run by a fresh interpreter each sample.
SEED_SCRIPT: Final = """\
import multiprocessing
import sys
import time


def main(sleep):
    processes = [multiprocessing.Process(target=time.sleep, args=(sleep,)) for _ in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    assert [p.exitcode for p in processes] == [0, 0, 0], [p.exitcode for p in processes]


if __name__ == "__main__":
    main(float(sys.argv[1]))
"""


class SeedBench(Bench):
    """The seed blog's example, a script that starts three Processes that each sleep and
    joins them, timed as a user runs it: the whole fresh interpreter, `python seed.py`
    for the stdlib and `python -m gilbridge seed.py` (the same file) for Bridge."""

    def __init__(self, contender: str, sizes: Sizes) -> None:
        self._directory = Path(tempfile.mkdtemp(prefix="gilbridge-seed-"))
        self._script = self._directory / "seed.py"
        self._script.write_text(SEED_SCRIPT, encoding="utf-8")
        runner = [sys.executable, "-m", "gilbridge"] if contender.startswith("bridge") else [sys.executable]
        self._command = [*runner, str(self._script), repr(sizes.seed_sleep)]

    def sample(self) -> Sample:
        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run(self._command, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=120, cwd=self._directory)

        elapsed, proc = _timed(run)
        if proc.returncode != 0:
            raise RuntimeError(f"the seed script exited with {proc.returncode}:\n{proc.stderr.strip()[-2000:]}")
        return Sample(elapsed, {})

    def close(self) -> None:
        shutil.rmtree(self._directory, ignore_errors=True)


class ProcessBench(Bench):
    def __init__(self, contender: str, sizes: Sizes) -> None:
        self._ctx = _context(contender)

    def sample(self) -> Sample:
        def run() -> int | None:
            p = self._ctx.Process(target=noop)
            p.start()
            p.join()
            return p.exitcode  # type: ignore[no-any-return]

        elapsed, code = _timed(run)
        _check_exit_codes([code])
        return Sample(elapsed, {})


class PoolStartBench(Bench):
    def __init__(self, contender: str, sizes: Sizes) -> None:
        self._ctx = _context(contender)
        self._workers = sizes.workers

    def sample(self) -> Sample:
        pool: Any = None

        def run() -> None:
            nonlocal pool
            pool = self._ctx.Pool(self._workers)
            pool.apply(noop)

        try:
            elapsed, _ = _timed(run)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
        return Sample(elapsed, {})


class PoolCycleBench(Bench):
    """What a script writes: ``with Pool(n) as pool: pool.map(trivial, range(items))``
    (``cycle``: 10 items; ``map-cycle``: the map workload's items), the pool's creation,
    the map and the pool's end all inside the timing."""

    def __init__(self, contender: str, sizes: Sizes, items: int = 10) -> None:
        self._ctx = _context(contender)
        self._workers = sizes.workers
        self._items = range(items)

    def sample(self) -> Sample:
        def run() -> list[int]:
            with self._ctx.Pool(self._workers) as pool:
                return pool.map(trivial, self._items)  # type: ignore[no-any-return]

        elapsed, result = _timed(run)
        if len(result) != len(self._items) or result[-1] != self._items[-1]:
            raise AssertionError(f"map returned {len(result)} results, expected {len(self._items)}")
        return Sample(elapsed, {})


class MapCycleBench(PoolCycleBench):
    def __init__(self, contender: str, sizes: Sizes) -> None:
        super().__init__(contender, sizes, items=sizes.map_items)


class CpuCycleBench(Bench):
    """The cpu workload as a script writes it: ``with Pool(n) as pool:
    pool.starmap(count_primes or the C# kernel, ranges, chunksize=1)``, the pool made and
    ended in the timing. Reports the total (checked against the other contenders)."""

    def __init__(self, contender: str, sizes: Sizes) -> None:
        self._ctx = _context(contender)
        self._workers = sizes.workers
        self._function = _prime_counter(contender)
        self._ranges = prime_ranges(sizes.primes_below)

    def sample(self) -> Sample:
        def run() -> list[int]:
            with self._ctx.Pool(self._workers) as pool:
                return pool.starmap(self._function, self._ranges, chunksize=1)  # type: ignore[no-any-return]

        elapsed, counts = _timed(run)
        return Sample(elapsed, {"primes": int(sum(counts))})


def _prime_counter(contender: str) -> Callable[..., Any]:
    """The C# kernel for a "... kernel" contender, else the Python function."""
    if contender.endswith("kernel"):
        import gilbridge

        return gilbridge.dotnet("Bridge.Kernels.Primes.Count")  # type: ignore[no-any-return]
    return count_primes


class _WarmPool(Bench):
    """A pool created and warmed at setup; samples reuse it."""

    def __init__(self, contender: str, sizes: Sizes) -> None:
        self._pool = _context(contender).Pool(sizes.workers)
        try:
            self._pool.map(trivial, range(sizes.workers * 50))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


class MapBench(_WarmPool):
    def __init__(self, contender: str, sizes: Sizes) -> None:
        super().__init__(contender, sizes)
        self._items = range(sizes.map_items)

    def sample(self) -> Sample:
        elapsed, result = _timed(lambda: self._pool.map(trivial, self._items))
        if len(result) != len(self._items) or result[-1] != self._items[-1]:
            raise AssertionError(f"map returned {len(result)} results, expected {len(self._items)}")
        return Sample(elapsed, {})


class CpuBench(_WarmPool):
    """``pool.starmap(count_primes or the C# kernel, 16 ranges, chunksize=1)``. Reports
    the total, so the contenders can be checked against each other, and the pool
    workers' CPU seconds over the wall time ("cores busy": ~2 when both of 2 workers
    compute the whole time)."""

    def __init__(self, contender: str, sizes: Sizes) -> None:
        super().__init__(contender, sizes)
        self._function = _prime_counter(contender)
        self._ranges = prime_ranges(sizes.primes_below)
        self._pool.starmap(self._function, [(0, 1000)] * sizes.workers, chunksize=1)

    def _worker_pids(self) -> list[int]:
        if hasattr(self._pool, "worker_pids"):  # Bridge
            return list(self._pool.worker_pids)
        return [p.pid for p in self._pool._pool]  # the stdlib's worker Process objects

    def sample(self) -> Sample:
        pids = self._worker_pids()
        before = sum(_cpu_seconds(pid) for pid in pids)
        elapsed, counts = _timed(lambda: self._pool.starmap(self._function, self._ranges, chunksize=1))
        busy = (sum(_cpu_seconds(pid) for pid in pids) - before) / elapsed
        return Sample(elapsed, {"primes": int(sum(counts)), "cores_busy": round(busy, 3)})


def _cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of ``pid`` so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class QueueBench(Bench):
    """Items per second through one queue, from ``producers`` to ``consumers`` processes
    (all started with the stdlib's spawn context), from the moment all are ready to the
    last consumer's last get. Each producer puts its share of the items and each consumer
    gets its share, so every item is taken exactly once."""

    producers = 1
    consumers = 1
    maxsize = 0

    def __init__(self, contender: str, sizes: Sizes) -> None:
        self._make_queue = _context(contender).Queue if contender.startswith("bridge") \
            else _stdlib("spawn").Queue
        self._items = sizes.queue_items

    @staticmethod
    def _shares(items: int, parts: int) -> list[int]:
        return [items // parts + (1 if i < items % parts else 0) for i in range(parts)]

    def sample(self) -> Sample:
        ctx = _stdlib("spawn")
        q = self._make_queue(self.maxsize)
        ready = ctx.Barrier(self.producers + self.consumers + 1)
        go = ctx.Event()
        processes = [
            ctx.Process(target=_producer, args=(q, share, ready, go))
            for share in self._shares(self._items, self.producers)
        ]
        receivers = []
        for share in self._shares(self._items, self.consumers):
            receive, send = ctx.Pipe(duplex=False)
            receivers.append(receive)
            processes.append(ctx.Process(target=_consumer, args=(q, share, ready, go, send)))
        for process in processes:
            process.start()
        try:
            ready.wait(READY_TIMEOUT)
            start = time.perf_counter()
            go.set()
            finished = []
            for receive in receivers:
                if not receive.poll(240):
                    raise TimeoutError("a consumer did not finish within 240 s")
                finished.append(receive.recv())
            return Sample(self._items / (max(finished) - start), {})
        finally:
            for process in processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()
                    process.join(timeout=5)
            _check_exit_codes([process.exitcode for process in processes])


class BoundedQueueBench(QueueBench):
    maxsize = BOUNDED_MAXSIZE


class BoundedManyQueueBench(QueueBench):
    producers = consumers = 4
    maxsize = BOUNDED_MAXSIZE


class LockBench(Bench):
    """Seconds per acquire+release pair, over many pairs."""

    def __init__(self, contender: str, sizes: Sizes) -> None:
        self._manager: Any = None
        if contender == "stdlib Lock":
            self._lock = _stdlib(None).Lock()
            self._pairs = sizes.local_lock_pairs
        elif "Manager" in contender:
            self._manager = _stdlib(None).Manager()
            self._lock = self._manager.Lock()
            self._pairs = sizes.lock_pairs
        else:
            self._lock = _bridge().Lock()
            self._pairs = sizes.lock_pairs
        self._pairs_cost(50)  # connections, the host's JIT

    def _pairs_cost(self, pairs: int) -> float:
        acquire, release = self._lock.acquire, self._lock.release
        start = time.perf_counter()
        for _ in range(pairs):
            acquire()
            release()
        return (time.perf_counter() - start) / pairs

    def sample(self) -> Sample:
        return Sample(self._pairs_cost(self._pairs), {"pairs": self._pairs})

    def close(self) -> None:
        if self._manager is not None:
            self._manager.shutdown()


class CounterBench(Bench):
    """Seconds per ``with v.get_lock(): v.value += 1`` on a shared ``Value('i')``: the
    shared counter as users write it (one process; the lock uncontended)."""

    def __init__(self, contender: str, sizes: Sizes) -> None:
        self._value = _context(contender).Value("i", 0)
        self._increments = sizes.counter_increments
        self._cost(1_000)  # the lock's first grant, connections

    def _cost(self, increments: int) -> float:
        value = self._value
        lock = value.get_lock()
        before = value.value
        start = time.perf_counter()
        for _ in range(increments):
            with lock:
                value.value += 1
        elapsed = time.perf_counter() - start
        if value.value != before + increments:
            raise RuntimeError(f"the counter went from {before} to {value.value}, not +{increments}")
        return elapsed / increments

    def sample(self) -> Sample:
        return Sample(self._cost(self._increments), {"increments": self._increments})


class ElementBench(Bench):
    """Seconds per ``a[i] = a[i] + 1.0`` on a shared ``RawArray('d', 1000)``."""

    def __init__(self, contender: str, sizes: Sizes) -> None:
        self._array = _context(contender).RawArray("d", 1_000)
        self._accesses = sizes.element_accesses

    def sample(self) -> Sample:
        array = self._array
        size = len(array)
        start = time.perf_counter()
        for i in range(self._accesses):
            k = i % size
            array[k] = array[k] + 1.0
        return Sample((time.perf_counter() - start) / self._accesses, {"accesses": self._accesses})


class ApplyBench(_WarmPool):
    """The median of ``apply_calls`` round trips of ``apply_async(noop).get()``."""

    def __init__(self, contender: str, sizes: Sizes) -> None:
        super().__init__(contender, sizes)
        self._calls = sizes.apply_calls

    def sample(self) -> Sample:
        apply_async = self._pool.apply_async
        times = []
        for _ in range(self._calls):
            start = time.perf_counter()
            apply_async(noop).get()
            times.append(time.perf_counter() - start)
        return Sample(statistics.median(times), {"calls": self._calls})


# A fresh interpreter timed from before the import to the first Pool.map result.
COLD_SCRIPT: Final = """\
import sys, time
started = time.perf_counter()
side, workers, items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if side == "bridge":
    import gilbridge.multiprocessing as mp
else:
    import multiprocessing
    mp = multiprocessing.get_context("spawn")
pool = mp.Pool(workers)
result = pool.map(abs, range(items))
elapsed = time.perf_counter() - started
pool.terminate()
assert result == list(range(items)), result
print(f"elapsed {elapsed!r}")
"""


class ColdBench(Bench):
    """A fresh interpreter, no host running: ``import`` to the first ``Pool.map`` result.

    For Bridge the interpreter gets a private ``XDG_RUNTIME_DIR`` and no
    ``GILBRIDGE_ADDRESS``/``GILBRIDGE_RUNTIME_DIR``, so its default address is new and the
    client auto-starts a host there (``GILBRIDGE_HOST_PATH`` or the repository's
    ``artifacts/host/Bridge.Host``). Afterwards that host is stopped by the PID in its pid
    file (SIGTERM, then SIGKILL) and the directory removed.
    """

    def __init__(self, contender: str, sizes: Sizes) -> None:
        self._bridge = contender.startswith("bridge")
        self._workers = sizes.workers
        self._items = sizes.cold_items
        self._host_exe: Path | None = None
        if self._bridge:
            from .._host import find_host_executable

            self._host_exe = find_host_executable()

    def sample(self) -> Sample:
        if not self._bridge:
            return Sample(self._run(dict(os.environ)), {})
        from .._host import pid_alive, read_pid_file, stop_host

        runtime = Path(tempfile.mkdtemp(prefix="gilbridge-cold-"))
        env = {k: v for k, v in os.environ.items()
               if k not in ("GILBRIDGE_ADDRESS", "GILBRIDGE_TOKEN", "GILBRIDGE_RUNTIME_DIR")}
        env["XDG_RUNTIME_DIR"] = str(runtime)
        env["GILBRIDGE_HOST_PATH"] = str(self._host_exe)
        env["GILBRIDGE_IDLE_TIMEOUT"] = "60"  # a safety net should stopping it below fail
        host_pid: int | None = None
        try:
            elapsed = self._run(env)
        finally:
            host_pid = read_pid_file(runtime / "gilbridge")
            if host_pid is not None and pid_alive(host_pid):
                stop_host(host_pid, timeout=10.0)
            shutil.rmtree(runtime, ignore_errors=True)
        return Sample(elapsed, {"host_pid": host_pid, "runtime_dir": str(runtime)})

    def _run(self, env: dict[str, str]) -> float:
        side = "bridge" if self._bridge else "stdlib"
        proc = subprocess.run(
            [sys.executable, "-c", COLD_SCRIPT, side, str(self._workers), str(self._items)],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("elapsed ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"the cold-start script exited with {proc.returncode}:\n"
                               f"{proc.stderr.strip()[-2000:]}")
        return float(lines[-1].split()[1])


def _check_exit_codes(codes: list[int | None]) -> None:
    if any(code != 0 for code in codes):
        raise RuntimeError(f"a child process exited with {codes}")


BENCHES: Final[dict[str, Callable[[str, Sizes], Bench]]] = {
    "seed": SeedBench,
    "process": ProcessBench,
    "pool-start": PoolStartBench,
    "cycle": PoolCycleBench,
    "map": MapBench,
    "cpu": CpuBench,
    "map-cycle": MapCycleBench,
    "cpu-cycle": CpuCycleBench,
    "queue": QueueBench,
    "bounded": BoundedQueueBench,
    "bounded-4x4": BoundedManyQueueBench,
    "lock": LockBench,
    "counter": CounterBench,
    "element": ElementBench,
    "apply": ApplyBench,
    "cold": ColdBench,
}


def open_bench(workload: str, contender: str, sizes: Sizes) -> Bench:
    """Set up ``contender`` of ``workload`` (blocks while pools start and warm up)."""
    return BENCHES[workload](contender, sizes)

"""``ProcessPoolExecutor`` on Bridge workers (``concurrent.futures``' API).

Data flow::

    submit(fn, *args) ──► Future (PENDING) ──► task queue ──► task handler ──► SubmitTasks ──► host pool
                                                  │ at most max_workers + 1 in flight;             │
                                                  │ a future turns RUNNING when it is sent,         │ workers pull
                                                  │ so queued ones can still be cancelled           ▼
    Future.set_result / set_exception ◄── result handler ◄── WatchPool stream ◄── TaskResult / worker exit

It returns real ``concurrent.futures.Future`` objects (a subclass), so
``concurrent.futures.as_completed`` and ``wait`` work. The worker pool is created on the
first ``submit``. Functions travel with cloudpickle (lambdas work); C# kernels
(``gilbridge.dotnet(...)``) are callables too.

Broken pools, as in the stdlib: when a worker dies while running a task (``os._exit``,
a signal, a crash) that future fails with :class:`gilbridge.BrokenProcessPool`, every
other pending future fails with it as well, and later ``submit`` calls raise it.

A KeyboardInterrupt while waiting in ``Future.result()``/``exception()`` terminates the
executor's workers and is re-raised. At interpreter exit an executor that was not shut
down finishes its queued work first, as the stdlib's does (unless exiting on Ctrl-C).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Executor, Future
from concurrent.futures import as_completed, wait
from typing import Any

from ._execution import CALL, STARMAP
from ._poolcore import PoolCore, Task
from ._progress import ProgressOption, check_option, track_futures
from ._remote import BrokenProcessPool

__all__ = [
    "ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION", "BrokenProcessPool", "Future",
    "ProcessPoolExecutor", "as_completed", "wait",
]

_job_ids = itertools.count()

_BROKEN_MESSAGE = "A child process terminated abruptly, the process pool is not usable anymore"


class _BridgeFuture(Future):  # type: ignore[type-arg]
    """A ``concurrent.futures.Future`` whose blocking getters poll, so Ctrl-C is seen
    at once and terminates the executor's workers."""

    _executor_core: PoolCore | None = None

    def _interruptible(self, getter: Callable[[float | None], Any], timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        try:
            while True:
                step = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
                if step <= 0:
                    return getter(0)
                try:
                    return getter(step)
                except TimeoutError:
                    if self.done():
                        return getter(0)
                    continue
        except KeyboardInterrupt:
            core = self._executor_core
            if core is not None:
                try:
                    core.interrupt()
                except BaseException:  # noqa: BLE001
                    pass
            raise

    def result(self, timeout: float | None = None) -> Any:
        """The result, blocking up to ``timeout`` seconds (TimeoutError after that)."""
        return self._interruptible(super().result, timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception, blocking up to ``timeout`` seconds (TimeoutError after that)."""
        return self._interruptible(super().exception, timeout)


class _FutureJob:
    """Feeds one future from the pool's result handler."""

    __slots__ = ("future", "_job", "_cache")

    def __init__(self, future: Future, cache: dict[int, Any]) -> None:  # type: ignore[type-arg]
        self.future = future
        self._job = next(_job_ids)
        self._cache = cache
        cache[self._job] = self

    def prepare(self) -> bool:
        """Just before submission: PENDING → RUNNING; False if it was cancelled."""
        try:
            running = self.future.set_running_or_notify_cancel()
        except RuntimeError:  # already finished (aborted)
            running = False
        if not running:
            self._cache.pop(self._job, None)
        return running

    def _set(self, i: int, obj: tuple[bool, Any]) -> None:
        self._cache.pop(self._job, None)
        success, value = obj
        if self.future.done():
            return
        try:
            if success:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)
        except Exception:  # noqa: BLE001 - InvalidStateError: finished meanwhile
            pass

    def _abort(self, exc: BaseException) -> None:
        self._cache.pop(self._job, None)
        future = self.future
        if future.done():
            return
        if future.cancelled():
            return
        try:
            future.set_exception(exc)
        except Exception:  # noqa: BLE001
            pass


class ProcessPoolExecutor(Executor):
    """An executor running calls on Bridge worker processes.

    ``ProcessPoolExecutor(max_workers=None, mp_context=None, initializer=None,
    initargs=(), *, max_tasks_per_child=None)``: ``max_workers`` defaults to the host's
    CPU count; ``mp_context`` is accepted and ignored (every start method runs on Bridge
    workers).
    """

    def __init__(self, max_workers: int | None = None, mp_context: Any = None,
                 initializer: Callable[..., object] | None = None, initargs: Iterable[Any] = (),
                 *, max_tasks_per_child: int | None = None) -> None:
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        self._max_workers = max_workers
        self._mp_context = mp_context
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._max_tasks_per_child = max_tasks_per_child
        self._core: PoolCore | None = None
        self._shutdown_lock = threading.Lock()
        self._shutdown_thread = False
        self._broken: str | bool = False
        self._jobs: list[_FutureJob] = []

    # ------------------------------------------------------------------ pool

    def _ensure_core(self) -> PoolCore:
        if self._core is None:
            workers = self._max_workers
            if workers is None:
                from ._connection import get_connection

                workers = int(get_connection().host_info.cpu_count) or 1
                self._max_workers = workers
            core = PoolCore(
                processes=workers, initializer=self._initializer, initargs=self._initargs,
                maxtasksperchild=self._max_tasks_per_child, name="ProcessPoolExecutor",
                max_outstanding=workers + 1, for_executor=True, exit_action="join",
            )
            core.on_worker_died = self._on_worker_died
            self._core = core
        return self._core

    def _on_worker_died(self, exc: BaseException) -> None:
        # Runs in the result handler: fail everything pending, stop the workers.
        core = self._core
        if core is None or self._broken:
            return
        self._broken = _BROKEN_MESSAGE
        with core._deliver_lock:
            for job in list(core.cache.values()):
                error = BrokenProcessPool(_BROKEN_MESSAGE)
                error.__cause__ = exc
                job._abort(error)
        threading.Thread(target=core.terminate, kwargs={"wait": False}, daemon=True).start()

    # ------------------------------------------------------------------ API

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[type-arg]
        """Schedule ``fn(*args, **kwargs)``; returns a Future at once (the first call
        also creates the worker pool, blocking for it). Raises RuntimeError after
        shutdown, BrokenProcessPool when the pool is broken."""
        with self._shutdown_lock:
            if self._broken:
                raise BrokenProcessPool(self._broken)
            if self._shutdown_thread:
                raise RuntimeError("cannot schedule new futures after shutdown")
            core = self._ensure_core()
            return self._submit(core, fn, CALL, [[list(args), dict(kwargs)]], single=True)

    def _submit(self, core: PoolCore, fn: Any, style: int, items: list[Any], single: bool) -> Future:  # type: ignore[type-arg]
        future = _BridgeFuture()
        future._executor_core = core
        job = _FutureJob(future, core.cache)
        core.put_one(Task(job, 0, core.function_ref(fn), style, items, single, prepare=job.prepare))
        return future

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1, progress: ProgressOption = False) -> Iterator[Any]:
        """``map(fn, *iterables)`` on the workers, ``chunksize`` calls per task; results
        in order. Submits everything at once (as the stdlib does); the iterator raises
        TimeoutError when a result is not ready ``timeout`` seconds after this call.

        ``progress`` (a Bridge extension): False (default) draws nothing; True, or a
        description string, draws a bar on stderr counting completed items (tqdm when
        installed, else a plain text bar), closed once every chunk is done, failed or
        cancelled; an object with ``update(n)`` (not closed here) or a callable ``fn(n)``
        is told each completed chunk's item count. Raises TypeError for another kind."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        check_option(progress)
        end_time = None if timeout is None else timeout + time.monotonic()
        with self._shutdown_lock:
            if self._broken:
                raise BrokenProcessPool(self._broken)
            if self._shutdown_thread:
                raise RuntimeError("cannot schedule new futures after shutdown")
            core = self._ensure_core()
            function = core.function_ref(fn)
            futures = []
            sizes = []
            it = zip(*iterables)
            while True:
                chunk = [tuple(args) for args in itertools.islice(it, chunksize)]
                if not chunk:
                    break
                future = _BridgeFuture()
                future._executor_core = core
                job = _FutureJob(future, core.cache)
                core.put([Task(job, 0, function, STARMAP, chunk, False, prepare=job.prepare)])
                futures.append(future)
                sizes.append(len(chunk))
        # Everything is submitted, so the total is known; chunks done meanwhile count at once.
        track_futures(progress, futures, sizes)

        def result_iterator() -> Iterator[Any]:
            try:
                futures.reverse()
                while futures:
                    future = futures.pop()
                    try:
                        if end_time is None:
                            values = future.result()
                        else:
                            values = future.result(end_time - time.monotonic())
                    finally:
                        future.cancel()
                    yield from values
            finally:
                for future in futures:
                    future.cancel()

        return result_iterator()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more submissions; with ``cancel_futures`` cancel those not yet running;
        with ``wait`` block until all running work is done and the workers exited."""
        with self._shutdown_lock:
            self._shutdown_thread = True
            core = self._core
            if core is not None and cancel_futures:
                with core._deliver_lock:
                    for job in list(core.cache.values()):
                        if isinstance(job, _FutureJob) and job.future.cancel():
                            core.cache.pop(job._job, None)
        if core is None:
            return
        core.close()
        if wait:
            core.join()

    def __repr__(self) -> str:
        state = "broken" if self._broken else "shutdown" if self._shutdown_thread else "running"
        return f"<gilbridge.futures.ProcessPoolExecutor max_workers={self._max_workers} {state}>"


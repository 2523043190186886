"""``Pool`` on Bridge workers, with the API and semantics of ``multiprocessing.pool``.

``Pool(processes)`` asks the host for ``processes`` worker processes (this interpreter's
executable with .NET loaded into it; warm ones start in milliseconds, and a closed
pool's workers serve this process's next pool). Work is sent in chunks and
results come back on one event stream per pool (see ``gilbridge._poolcore`` for the
data flow). Differences from the stdlib, all in the direction of not hanging:

* functions travel with cloudpickle: lambdas, closures and ``__main__`` functions work;
  arguments and results are MessagePack payloads (``gilbridge._codec``);
* a worker that dies mid-task fails that task's result with
  :class:`gilbridge.BrokenProcessPool` (the stdlib hangs); the host replaces the worker;
* after ``terminate()`` (or a Ctrl-C while waiting), results that can no longer arrive
  fail with BrokenProcessPool instead of blocking forever;
* a callback that raises is reported on stderr; it does not kill the result handler;
* ``processes=None`` means the host's CPU count; ``context`` is accepted and ignored;
* ``map``, ``map_async``, ``starmap``, ``starmap_async``, ``imap`` and ``imap_unordered``
  take keyword-only ``progress=`` (default False: nothing drawn): True or a description
  draws a bar on stderr counting completed items (see ``gilbridge._progress``).

``gilbridge.dotnet("Ns.Type.Method")`` kernels are callables here too: they run in the
workers' .NET runtime without the GIL.
"""

from __future__ import annotations

import itertools
import threading
import types
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from multiprocessing import TimeoutError
from multiprocessing import pool as _stdlib_pool
from multiprocessing.pool import MaybeEncodingError, RemoteTraceback, ThreadPool
from typing import Any, Final, NamedTuple

from .._execution import (
    CALL,
    CLOSE,
    MAP,
    RUN,
    STARMAP,
    TERMINATE,
    wait_event,
)
from .._poolcore import FailedTask, FunctionRef, PoolCore, Task
from ._base import stdlib_fallback
from .._progress import Progress, ProgressOption, open_progress

__all__ = [
    "ApplyResult", "AsyncResult", "IMapIterator", "IMapUnorderedIterator", "MapResult",
    "MaybeEncodingError", "Pool", "RemoteTraceback", "ThreadPool",
]

INIT: Final = "INIT"

job_counter = itertools.count()


def _host_cpu_count() -> int:
    from .._connection import get_connection

    return int(get_connection().host_info.cpu_count) or 1


# The rest of the stdlib's module (mapstar, starmapstar, rebuild_exc, ...): pickle looks
# the stdlib pool's helpers up here when a stdlib Pool (a Manager's, say) sends them.
__getattr__ = stdlib_fallback(__name__, _stdlib_pool)


class _WorkerView(NamedTuple):
    """One worker of a pool, as ``Pool._pool`` lists it: its OS pid."""

    pid: int

    def is_alive(self) -> bool:
        """Whether the worker process still exists (never blocks)."""
        from .._host import pid_alive

        return pid_alive(self.pid)


class Pool:
    """A pool of Bridge worker processes (``multiprocessing.pool.Pool``'s API).

    The constructor blocks until the workers are connected (reused or warm workers: a few
    ms; cold ones: the interpreter starting and loading .NET, ~0.5 s). Raises ValueError
    for ``processes < 1`` or a ``maxtasksperchild`` that is not a positive int, TypeError
    for a non-callable ``initializer``.
    """

    _wrap_exception = True

    def __init__(self, processes: int | None = None, initializer: Callable[..., object] | None = None,
                 initargs: Iterable[Any] = (), maxtasksperchild: int | None = None,
                 context: Any = None, *, _kernel_only: bool = False) -> None:
        self._state = INIT
        self._ctx = context
        if processes is not None and processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if processes is None:
            processes = _host_cpu_count()
        self._processes = processes
        self._maxtasksperchild = maxtasksperchild
        self._initializer = initializer
        self._initargs = initargs
        self._core = PoolCore(
            processes=processes, initializer=initializer, initargs=initargs,
            maxtasksperchild=maxtasksperchild, name="kernel" if _kernel_only else "Pool",
            python=not _kernel_only,
        )
        self._cache = self._core.cache
        self._state = RUN
        # Collected while running: free the workers. At exit the runtime handles it.
        self._finalizer = weakref.finalize(self, PoolCore.terminate, self._core, False)
        self._finalizer.atexit = False

    # ------------------------------------------------------------------ info

    @property
    def worker_pids(self) -> list[int]:
        """The OS pids of the pool's live workers (a Bridge extension; changes as
        workers are replaced)."""
        with self._core._lock:
            return list(self._core.worker_pids)

    @property
    def _pool(self) -> list[_WorkerView]:
        """The live workers, as the stdlib's list of worker processes (each with its
        ``pid``): code and tests that count or compare a pool's workers read it."""
        return [_WorkerView(pid) for pid in self.worker_pids]

    def _repopulate_pool(self) -> None:
        """The stdlib's refill of exited workers: the host replaces a pool's workers
        itself (after maxtasksperchild or a crash), so there is nothing to do."""

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # As the stdlib's: a pool collected while running was never closed.
        if getattr(self, "_state", None) == RUN:
            _warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, source=self)

    def _check_running(self) -> None:
        if self._state != RUN:
            raise ValueError("Pool not running")

    def __repr__(self) -> str:
        cls = self.__class__
        return (f"<{cls.__module__}.{cls.__qualname__} state={self._state} "
                f"pool_size={self._processes}>")

    def __reduce__(self) -> Any:
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    # ------------------------------------------------------------------ submitting

    def apply(self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: Mapping[str, Any] = {}) -> Any:
        """``func(*args, **kwds)`` in a worker; blocks until it returns."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: Mapping[str, Any] = {},
                    callback: Callable[[Any], object] | None = None,
                    error_callback: Callable[[BaseException], object] | None = None) -> ApplyResult:
        """Asynchronous :meth:`apply`: returns at once with an :class:`ApplyResult`."""
        self._check_running()
        result = ApplyResult(self, callback, error_callback)
        task = Task(result, 0, self._core.function_ref(func), CALL, [[list(args), dict(kwds)]], single=True)
        self._core.put_one(task)
        return result

    def map(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None,
            *, progress: ProgressOption = False) -> list[Any]:
        """``[func(x) for x in iterable]`` in chunks; blocks until all are done.

        ``progress``: False (default) draws nothing; True, or a description string, draws
        a bar on stderr counting completed items (tqdm when installed, else a plain text
        bar); an object with ``update(n)`` (e.g. your own tqdm, not closed here) or a
        callable ``fn(n)`` is told each completed chunk's item count. Raises TypeError
        for another kind of value."""
        return self._map_async(func, iterable, MAP, chunksize, progress=progress).get()

    def starmap(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]],
                chunksize: int | None = None, *, progress: ProgressOption = False) -> list[Any]:
        """``[func(*args) for args in iterable]``; blocks until all are done.
        ``progress`` as for :meth:`map`."""
        return self._map_async(func, iterable, STARMAP, chunksize, progress=progress).get()

    def map_async(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None,
                  callback: Callable[[Any], object] | None = None,
                  error_callback: Callable[[BaseException], object] | None = None,
                  *, progress: ProgressOption = False) -> MapResult:
        """Asynchronous :meth:`map`; a bar (``progress``) closes when the job completes,
        fails or the pool is terminated."""
        return self._map_async(func, iterable, MAP, chunksize, callback, error_callback, progress)

    def starmap_async(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]],
                      chunksize: int | None = None, callback: Callable[[Any], object] | None = None,
                      error_callback: Callable[[BaseException], object] | None = None,
                      *, progress: ProgressOption = False) -> MapResult:
        """Asynchronous :meth:`starmap`; ``progress`` as for :meth:`map_async`."""
        return self._map_async(func, iterable, STARMAP, chunksize, callback, error_callback, progress)

    def _map_async(self, func: Callable[..., Any], iterable: Iterable[Any], style: int,
                   chunksize: int | None = None, callback: Callable[[Any], object] | None = None,
                   error_callback: Callable[[BaseException], object] | None = None,
                   progress: ProgressOption = False) -> MapResult:
        self._check_running()
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)
        items: Sequence[Any] = iterable  # type: ignore[assignment]
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * 4)
            if extra:
                chunksize += 1
        if len(items) == 0:
            chunksize = 0
        function = self._core.function_ref(func)
        bar = open_progress(progress, len(items))
        result = MapResult(self, chunksize, len(items), callback, error_callback=error_callback,
                           progress=bar)
        self._core.put(_guarded(result, _chunks(items, chunksize), function, style, single=False))
        return result

    def imap(self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1,
             *, progress: ProgressOption = False) -> Iterator[Any]:
        """Lazy, ordered :meth:`map`: items are consumed as workers free up.
        ``progress`` as for :meth:`map`; the total is ``len(iterable)`` when it has one,
        else unknown (the bar counts up)."""
        return self._imap(IMapIterator, func, iterable, chunksize, progress)

    def imap_unordered(self, func: Callable[[Any], Any], iterable: Iterable[Any],
                       chunksize: int = 1, *, progress: ProgressOption = False) -> Iterator[Any]:
        """Like :meth:`imap`, results in completion order."""
        return self._imap(IMapUnorderedIterator, func, iterable, chunksize, progress)

    def _imap(self, cls: type[IMapIterator], func: Callable[[Any], Any], iterable: Iterable[Any],
              chunksize: int, progress: ProgressOption) -> Iterator[Any]:
        self._check_running()
        function = self._core.function_ref(func)
        if chunksize == 1:
            result = cls(self, progress=open_progress(progress, sized=iterable))
            self._core.put(_SetLength(
                _guarded(result, ([x] for x in iterable), function, MAP, single=True), result))
            return result
        if chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        result = cls(self, progress=open_progress(progress, sized=iterable), chunked=True)
        self._core.put(_SetLength(
            _guarded(result, _chunks(iterable, chunksize), function, MAP, single=False), result))
        return (item for chunk in result for item in chunk)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """No more tasks; workers exit once the submitted work is done. Does not block."""
        if self._state == RUN:
            self._state = CLOSE
            self._core.close()

    def terminate(self) -> None:
        """Stop now: the host kills the workers running or holding tasks; unfinished
        results fail with BrokenProcessPool. Blocks until those workers are gone (normally
        milliseconds); when no task was queued or running, returns once the host has the
        order, and the idle workers rejoin the session's warm set meanwhile."""
        self._state = TERMINATE
        self._finalizer.detach()
        self._core.terminate(wait=True)

    def join(self) -> None:
        """Wait for the workers to exit (after :meth:`close` or :meth:`terminate`).
        Blocks until all submitted work is done; Ctrl-C terminates the pool."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        self._core.join()

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.terminate()


def _chunks(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(iterable)
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk


class _SetLength:
    """A task sequence that tells an imap iterator its length once exhausted (the
    stdlib's ``set_length``)."""

    def __init__(self, tasks: Iterator[Task | FailedTask], result: IMapIterator) -> None:
        self._tasks = tasks
        self._result = result

    def __iter__(self) -> Iterator[Task | FailedTask]:
        n = 0
        for task in self._tasks:
            n = task.index + 1
            yield task
        self._result._set_length(n)


def _guarded(job: Any, chunks: Iterable[list[Any]], function: FunctionRef, style: int,
             single: bool) -> Iterator[Task | FailedTask]:
    """Tasks for ``chunks``; an exception from iterating becomes the next index's
    failure, as the stdlib's ``_guarded_task_generation`` does."""
    i = -1
    try:
        for i, chunk in enumerate(chunks):
            yield Task(job, i, function, style, chunk, single)
    except Exception as exc:  # noqa: BLE001 - delivered to the job
        yield FailedTask(job, i + 1, exc)


# ---------------------------------------------------------------------- results


class ApplyResult:
    """The result of :meth:`Pool.apply_async` (``multiprocessing.pool.ApplyResult``)."""

    def __init__(self, pool: Pool, callback: Callable[[Any], object] | None,
                 error_callback: Callable[[BaseException], object] | None) -> None:
        self._pool: Pool | None = pool
        self._core = pool._core
        self._event = threading.Event()
        self._job = next(job_counter)
        self._cache = pool._cache
        self._callback = callback
        self._error_callback = error_callback
        self._cache[self._job] = self

    def ready(self) -> bool:
        """Whether the call has completed."""
        return self._event.is_set()

    def successful(self) -> bool:
        """Whether the call completed without raising; ValueError if not ready."""
        if not self.ready():
            raise ValueError("{0!r} not ready".format(self))
        return bool(self._success)

    def wait(self, timeout: float | None = None) -> None:
        """Block until ready or ``timeout`` seconds passed (None: no limit). Ctrl-C
        terminates the pool and re-raises."""
        wait_event(self._event, timeout, self._core.interrupt)

    def get(self, timeout: float | None = None) -> Any:
        """The result, blocking up to ``timeout`` seconds (multiprocessing.TimeoutError
        after that); re-raises the task's exception (remote traceback as __cause__)."""
        self.wait(timeout)
        if not self.ready():
            raise TimeoutError
        if self._success:
            return self._value
        raise self._value

    def _set(self, i: int, obj: tuple[bool, Any]) -> None:
        self._success, self._value = obj
        if self._callback and self._success:
            self._callback(self._value)
        if self._error_callback and not self._success:
            self._error_callback(self._value)
        self._event.set()
        del self._cache[self._job]
        self._pool = None

    def _abort(self, exc: BaseException) -> None:
        if not self._event.is_set():
            self._set(0, (False, exc))

    __class_getitem__ = classmethod(types.GenericAlias)


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    """The result of :meth:`Pool.map_async` / :meth:`Pool.starmap_async`."""

    def __init__(self, pool: Pool, chunksize: int, length: int, callback: Callable[[Any], object] | None,
                 error_callback: Callable[[BaseException], object] | None,
                 *, progress: Progress | None = None) -> None:
        ApplyResult.__init__(self, pool, callback, error_callback=error_callback)
        self._success = True
        self._value: Any = [None] * length
        self._chunksize = chunksize
        self._progress = progress
        if chunksize <= 0:
            self._number_left = 0
            if progress is not None:
                progress.close()
            self._event.set()
            del self._cache[self._job]
        else:
            self._number_left = length // chunksize + bool(length % chunksize)

    def _set(self, i: int, success_result: tuple[bool, Any]) -> None:
        self._number_left -= 1
        success, result = success_result
        if self._progress is not None:
            if success:
                self._progress.update(len(result))
            if self._number_left == 0:
                self._progress.close()
        if success and self._success:
            self._value[i * self._chunksize:(i + 1) * self._chunksize] = result
            if self._number_left == 0:
                if self._callback:
                    self._callback(self._value)
                del self._cache[self._job]
                self._event.set()
                self._pool = None
        else:
            if not success and self._success:
                # only store first exception
                self._success = False
                self._value = result
            if self._number_left == 0:
                # only consider the result ready once all jobs are done
                if self._error_callback:
                    self._error_callback(self._value)
                del self._cache[self._job]
                self._event.set()
                self._pool = None

    def _abort(self, exc: BaseException) -> None:
        if self._progress is not None:
            self._progress.close()
        if self._event.is_set():
            return
        if self._success:
            self._success = False
            self._value = exc
        self._number_left = 0
        self._cache.pop(self._job, None)
        self._event.set()
        self._pool = None
        if self._error_callback:
            self._error_callback(self._value)


class IMapIterator:
    """The iterator :meth:`Pool.imap` returns (``multiprocessing.pool.IMapIterator``)."""

    def __init__(self, pool: Pool, *, progress: Progress | None = None, chunked: bool = False) -> None:
        self._pool: Pool | None = pool
        self._core = pool._core
        self._progress = progress
        # Results are lists of a chunk's values (imap with chunksize > 1), not one value.
        self._chunked = chunked
        self._cond = threading.Condition(threading.Lock())
        self._job = next(job_counter)
        self._cache = pool._cache
        self._items: deque[tuple[bool, Any]] = deque()
        self._index = 0
        self._length: int | None = None
        self._unsorted: dict[int, tuple[bool, Any]] = {}
        self._cache[self._job] = self

    def __iter__(self) -> IMapIterator:
        return self

    def next(self, timeout: float | None = None) -> Any:
        """The next result, blocking up to ``timeout`` seconds (None: no limit;
        multiprocessing.TimeoutError after that). Ctrl-C terminates the pool."""
        with self._cond:
            try:
                item = self._items.popleft()
            except IndexError:
                if self._index == self._length:
                    self._pool = None
                    raise StopIteration from None
                self._wait(timeout)
                try:
                    item = self._items.popleft()
                except IndexError:
                    if self._index == self._length:
                        self._pool = None
                        raise StopIteration from None
                    raise TimeoutError from None
        success, value = item
        if success:
            return value
        raise value

    __next__ = next

    def _wait(self, timeout: float | None) -> None:
        # Condition.wait in slices (cond held), so Ctrl-C is seen at once.
        import time

        from .._execution import POLL

        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        try:
            while not self._items and self._index != self._length:
                step = POLL if deadline is None else min(POLL, deadline - time.monotonic())
                if step <= 0:
                    return
                self._cond.wait(step)
        except KeyboardInterrupt:
            try:
                self._core.interrupt()
            except BaseException:  # noqa: BLE001
                pass
            raise

    def _count_progress(self, obj: tuple[bool, Any]) -> None:
        if self._progress is not None and obj[0]:
            self._progress.update(len(obj[1]) if self._chunked else 1)

    def _set(self, i: int, obj: tuple[bool, Any]) -> None:
        self._count_progress(obj)
        with self._cond:
            if self._index == i:
                self._items.append(obj)
                self._index += 1
                while self._index in self._unsorted:
                    obj = self._unsorted.pop(self._index)
                    self._items.append(obj)
                    self._index += 1
                self._cond.notify()
            else:
                self._unsorted[i] = obj

            if self._index == self._length:
                self._finish_progress()
                del self._cache[self._job]
                self._pool = None

    def _set_length(self, length: int) -> None:
        with self._cond:
            self._length = length
            if self._index == self._length:
                self._finish_progress()
                self._cond.notify()
                self._cache.pop(self._job, None)
                self._pool = None

    def _finish_progress(self) -> None:
        if self._progress is not None:
            self._progress.close()

    def _abort(self, exc: BaseException) -> None:
        self._finish_progress()
        with self._cond:
            if self._length is not None and self._index >= self._length:
                return
            # Deliver what arrived out of order, then the failure; nothing after it.
            for key in sorted(self._unsorted):
                self._items.append(self._unsorted.pop(key))
                self._index += 1
            self._items.append((False, exc))
            self._index += 1
            self._length = self._index
            self._cond.notify_all()
            self._cache.pop(self._job, None)
            self._pool = None


class IMapUnorderedIterator(IMapIterator):
    """The iterator :meth:`Pool.imap_unordered` returns."""

    def _set(self, i: int, obj: tuple[bool, Any]) -> None:
        self._count_progress(obj)
        with self._cond:
            self._items.append(obj)
            self._index += 1
            self._cond.notify()
            if self._index == self._length:
                self._finish_progress()
                del self._cache[self._job]
                self._pool = None

"""A pool of Bridge workers on the client side, fed and watched (:class:`PoolCore`).

Data flow of one pool (``Pool``, ``ProcessPoolExecutor`` and one-off kernel calls share
it; a ``Process`` is a one-worker pool in process mode, see
``gilbridge.multiprocessing.process``). The host leases the workers and watches them;
the chunks go straight to the workers (a *direct* pool, ``gilbridge._direct``)::

    caller ── taskseq ──► task queue ──► task handler thread ──► the least busy worker with a credit
              (apply, map, imap…)        (iterates lazily,        (its data socket; blocks for a credit)
                                          pickles, encodes,
                                          bounds in-flight)
    jobs ◄── _set(index, (ok, value)) ◄── one reader thread per worker ◄── results, credits and
    sys.stdout / sys.stderr ◄── OutputText ◄──┘                          what the tasks print
    WatchPool stream (one per pool, from the host): workers leaving, joining or exiting

A pool with ``maxtasksperchild`` stays on the host's path (the host counts each worker's
tasks): the task handler queues chunks for a submitter thread, which sends everything
queued meanwhile in one ``SubmitTasks`` call, and results come back on the WatchPool stream.

* Tasks are generated lazily in the task handler thread, as the stdlib's ``Pool`` does,
  so ``imap`` over an endless generator is fed as results come back: at most
  ``max_outstanding`` chunks are submitted and unfinished at any time.
* One WatchPool stream per pool, read by a daemon thread for the pool's whole life;
  results are routed to their job by ``task_id``. Callbacks run in the thread that
  received the result (a worker's reader, or the WatchPool thread), one at a time.
* A worker that dies mid-task fails exactly its tasks (``BrokenProcessPool``); the host
  replaces the worker and the pool keeps working.
* Waiting calls poll in 0.25 s slices; a KeyboardInterrupt while waiting terminates the
  pool (TerminatePool: the host kills its workers) and is re-raised.

Functions and task items are pickled with cloudpickle (lambdas, closures and ``__main__``
functions work). When the main script has an ``if __name__ == "__main__":`` guard, the
workers run it as ``__mp_main__`` (as the stdlib's spawn does) and objects defined at its
top level travel by reference, so instances of its classes can come back from tasks;
without a guard the script is never re-run in workers and everything from ``__main__``
travels by value.
"""

from __future__ import annotations

import collections
import itertools
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from . import _codec
from ._connection import get_connection
from ._direct import DirectDispatcher
from ._environment import main_info, python_environment
from ._execution import (
    CALL,
    CLOSE,
    DIRECT_DRAIN_SECONDS,
    INLINE_SEND_MAX_BYTES,
    POLL,
    POOL_MAX_OUTSTANDING,
    RUN,
    SUBMIT_MAX_BYTES,
    SUBMIT_MAX_CHUNKS,
    TERMINATE,
    PoolWatch,
    _pb,
    create_pool,
    join_thread,
    runtime,
    terminate_pool,
    terminate_pool_soon,
    wait_event,
    write_output,
)
from ._kernels import DotnetKernel
from ._pickling import ItemEncoder, dumps, pickled_by_reference

__all__ = ["FailedTask", "FunctionRef", "Job", "PoolCore", "Task", "encode_items"]


class Job(Protocol):
    """A result object fed by the result handler (ApplyResult, MapResult, IMapIterator,
    an executor future)."""

    _job: int

    def _set(self, i: int, obj: tuple[bool, Any]) -> None: ...

    def _abort(self, exc: BaseException) -> None: ...


_FUNCTION_TYPES: Final = (types.FunctionType, types.BuiltinFunctionType)
_FUNCTION_REFS_KEPT: Final = 64


class FunctionRef:
    """A job's callable, converted to a ``Callable`` message once (in the task handler)."""

    __slots__ = ("func", "_message", "_error", "is_kernel")

    def __init__(self, func: Any) -> None:
        self.func = func
        self.is_kernel = isinstance(func, DotnetKernel)
        self._message: Any = None
        self._error: BaseException | None = None

    def message(self, main_names: frozenset[str] | None) -> Any:
        if self._error is not None:
            raise self._error
        if self._message is None:
            pb = _pb()
            try:
                if self.is_kernel:
                    self._message = pb.Callable(kernel=self.func.name)
                else:
                    self._message = pb.Callable(python=dumps(self.func, main_names))
            except Exception as exc:
                self._error = exc
                raise
        return self._message


@dataclass(slots=True)
class Task:
    """One chunk of calls for one job: ``items`` are Python objects, one per call (for
    CALL: ``[args_list, kwargs_dict]``). ``single``: the job takes the chunk's one
    value, not the list. ``prepare``: called just before submission; False skips the
    task (an executor future cancelled meanwhile)."""

    job: Job
    index: int
    function: FunctionRef
    style: int
    items: list[Any]
    single: bool
    prepare: Callable[[], bool] | None = None


def encode_items(chunk: Any, task: Task, encoder: ItemEncoder) -> None:
    """Fills ``chunk`` with the task's items: a Python chunk of several items as ONE
    MessagePack array (``packed_items``: one encode here, one decode in the worker,
    instead of one per item), anything else, or a packed chunk over the host's payload
    limit, one payload per item (each item then has the limit to itself)."""
    if len(task.items) > 1 and not task.function.is_kernel:
        try:
            chunk.packed_items = encoder.encode(task.items)
            return
        except _codec.PayloadTooLarge:
            pass
    chunk.items.extend([encoder.encode(x) for x in task.items])


# Error delivered for a task whose generation failed (stdlib _helper_reraises_exception).
@dataclass(slots=True)
class FailedTask:
    job: Job
    index: int
    error: BaseException


TaskSeq = Iterable["Task | FailedTask"]


class PoolCore:
    """One host pool and the three threads that serve it (see the module docstring).

    Thread-safety: public methods may be called from any thread. Jobs are registered in
    ``cache`` (job id → job) by their constructors and removed when complete, as in the
    stdlib; whatever is left when the pool's stream ends is aborted with
    BrokenProcessPool, so no waiter hangs.
    """

    def __init__(self, *, processes: int, initializer: Callable[..., object] | None = None,
                 initargs: Iterable[Any] = (), maxtasksperchild: int | None = None,
                 name: str = "", python: bool = True, max_outstanding: int = POOL_MAX_OUTSTANDING,
                 for_executor: bool = False, exit_action: str = "terminate") -> None:
        # Imported now, by the thread making the pool: result handlers need it and may
        # first run during interpreter shutdown, when a module can no longer be imported
        # (or one a daemon thread was importing stays locked). Not on a Process's path:
        # concurrent.futures.process and what it imports take ~12 ms.
        from . import _remote  # noqa: F401

        pb = _pb()
        conn = get_connection()
        self.conn = conn
        self.runtime = runtime(conn)
        self.name = name
        self.processes = processes
        self.for_executor = for_executor
        self.exit_action = exit_action
        self.state = RUN
        self.terminated_by_owner = False
        self.cache: dict[int, Job] = {}
        self.max_outstanding = max(1, max_outstanding)
        self.on_worker_died: Callable[[BaseException], None] | None = None

        main = main_info() if python else None
        self.main_names = main.names if main else None
        # Direct: this process feeds the workers over their data sockets (see
        # gilbridge._direct); maxtasksperchild pools stay on the host's path, which counts
        # each worker's tasks.
        request = pb.CreatePoolRequest(
            session_id=conn.session_id, processes=processes,
            max_tasks_per_child=maxtasksperchild or 0, name=name, direct=not maxtasksperchild,
        )
        if python:
            request.python.CopyFrom(python_environment(conn, main))
        if initializer is not None:
            request.initializer = dumps((initializer, tuple(initargs)), self.main_names)
        info = create_pool(conn, request)
        self.pool_id: str = info.pool_id
        self.worker_pids: list[int] = list(info.worker_pids)

        self._lock = threading.Condition(threading.Lock())
        # Jobs are updated by the result handler and, for tasks that never reached the
        # host, by the task handler and submitter: one lock keeps each job's updates serial.
        self._deliver_lock = threading.RLock()
        self._routes: dict[int, Task] = {}
        self._task_ids = itertools.count(1)
        self._outstanding = 0
        self._submit_queue: collections.deque[tuple[Any, Task]] = collections.deque()
        self._submitting = False
        self._submitter_done = False
        self._closing = False
        self._finished = threading.Event()
        self._end_error: BaseException | None = None
        self.taskqueue: collections.deque[TaskSeq | None] = collections.deque()
        self._task_cond = threading.Condition(threading.Lock())
        # One feeder at a time encodes and sends: the task handler while it works through
        # a task sequence, or a caller sending its own task (put_one). Both use _encoder.
        self._feeding = False
        self._encoder = ItemEncoder(self.main_names, conn.max_payload)
        # Functions that travel by reference, pickled once: cloudpickle took ~20 µs of
        # each apply_async to pickle the same module-level function again.
        self._function_refs: dict[Callable[..., Any], FunctionRef] = {}

        self._direct: DirectDispatcher | None = None
        if info.data_token:
            self._direct = DirectDispatcher(info.data_token, self._on_result, write_output)
            try:
                for worker in info.workers:
                    self._direct.add_worker(worker.pid, worker.data_address, strict=True, token=worker.data_token)
            except OSError as exc:
                self._direct.close()
                terminate_pool(conn, self.pool_id)
                raise RuntimeError(f"cannot reach a Bridge worker's data socket ({exc}); "
                                   f"the pool was terminated") from exc
        self._watch = PoolWatch(conn, self.pool_id, name or "pool", self._on_event, self._on_end)
        if self._direct is None:
            self._submitter = threading.Thread(target=self._submit_loop, name="gilbridge-submitter", daemon=True)
            self._submitter.start()
        else:
            self._submitter_done = True  # the task handler dispatches each chunk itself
        self._task_handler = threading.Thread(target=self._handle_tasks, name="gilbridge-tasks", daemon=True)
        self._task_handler.start()
        self.runtime.pools.add(self)

    def function_ref(self, func: Any) -> FunctionRef:
        """``func`` as a job's :class:`FunctionRef`: the same one each time for a function
        pickled by reference (its pickle never changes), a new one otherwise (a lambda
        or closure is pickled by value, as it is when submitted)."""
        if type(func) not in _FUNCTION_TYPES:
            return FunctionRef(func)
        ref = self._function_refs.get(func)
        if ref is None:
            ref = FunctionRef(func)
            if pickled_by_reference(func, self.main_names):
                if len(self._function_refs) >= _FUNCTION_REFS_KEPT:
                    self._function_refs.clear()
                self._function_refs[func] = ref
        return ref

    # ---------------------------------------------------------------- feeding

    def put(self, taskseq: TaskSeq) -> None:
        """Queue a sequence of tasks (iterated lazily by the task handler)."""
        with self._task_cond:
            self.taskqueue.append(taskseq)
            self._task_cond.notify()

    def put_one(self, task: Task) -> None:
        """Queue one task (apply_async, an executor's submit). When nothing is queued
        before it and a worker of a direct pool has a free slot, the calling thread sends
        it itself: one thread hand-over less than through the task handler (~40 µs per
        round trip on this machine). Never waits for a worker; anything else (no free
        slot, a large or unencodable payload, a pool closing) goes the task handler's way,
        in order."""
        direct = self._direct
        with self._task_cond:
            if direct is None or self._feeding or self.taskqueue or self.state != RUN:
                self.taskqueue.append([task])
                self._task_cond.notify()
                return
            self._feeding = True
        sent = False
        try:
            sent = self._send_now(task, direct)
        finally:
            with self._task_cond:
                self._feeding = False
                if not sent:
                    self.taskqueue.appendleft([task])
                # Only the task handler waits here, and only for queued work: waking it
                # for nothing cost it ~40 µs of CPU (and the GIL) per apply.
                if self.taskqueue:
                    self._task_cond.notify()

    def _send_now(self, task: Task, direct: DirectDispatcher) -> bool:
        """put_one's own sending: True when the task was sent (or skipped: its future was
        cancelled), False when the task handler must take it (nothing was sent)."""
        if not direct.can_take():
            return False
        try:
            chunk = self._chunk_of(task)
        except Exception:  # noqa: BLE001 - the task handler encodes it again and delivers the error
            return False
        if chunk.ByteSize() > INLINE_SEND_MAX_BYTES:
            return False  # the socket could fill: sending may block, the task handler's job
        with self._lock:
            if self._outstanding >= self.max_outstanding or self.state != RUN:
                return False
            self._outstanding += 1
            self._routes[chunk.task_id] = task
        if task.prepare is not None:
            proceed = task.prepare()
            task.prepare = None  # done: should the task handler take it, it must not ask again
            if not proceed:
                self._unroute(chunk.task_id)
                return True
        if direct.try_dispatch(chunk):
            return True
        self._unroute(chunk.task_id)
        return False

    def _chunk_of(self, task: Task) -> Any:
        """The TaskChunk of ``task`` under a new task id, its items encoded (by the one
        feeder: see ``_feeding``); raises what pickling or encoding raises."""
        chunk = _pb().TaskChunk(task_id=next(self._task_ids),
                                function=task.function.message(self.main_names), style=task.style)
        encode_items(chunk, task, self._encoder)
        return chunk

    def _unroute(self, task_id: int) -> bool:
        """Forget an unanswered chunk and free its slot; False when it was not routed
        (answered or failed already)."""
        with self._lock:
            if self._routes.pop(task_id, None) is None:
                return False
            self._outstanding -= 1
            self._lock.notify_all()
            return True

    def _next_taskseq(self) -> TaskSeq | None:
        """The next task sequence, once no caller is sending its own task; the task
        handler is the feeder until :meth:`_done_feeding`."""
        with self._task_cond:
            while not self.taskqueue or self._feeding:
                self._task_cond.wait()
            self._feeding = True
            return self.taskqueue.popleft()

    def _done_feeding(self) -> None:
        with self._task_cond:
            self._feeding = False
            if self.taskqueue:
                self._task_cond.notify()

    def _handle_tasks(self) -> None:
        direct = self._direct
        terminated = lambda: self.state == TERMINATE  # noqa: E731
        while True:
            taskseq = self._next_taskseq()
            if taskseq is None:
                break
            try:
                for task in taskseq:
                    if self.state == TERMINATE:
                        break
                    if isinstance(task, FailedTask):
                        self._deliver(task.job, task.index, (False, task.error))
                        continue
                    if not self._reserve_slot():
                        break
                    if task.prepare is not None and not task.prepare():
                        self._release_slot()
                        continue
                    try:
                        chunk = self._chunk_of(task)
                    except Exception as exc:  # noqa: BLE001 - the task's own failure
                        self._release_slot()
                        self._deliver(task.job, task.index, (False, exc))
                        continue
                    with self._lock:
                        self._routes[chunk.task_id] = task
                        if direct is None:
                            self._submit_queue.append((chunk, task))
                            self._lock.notify_all()
                    if direct is not None:
                        # Straight to a worker with a free slot (blocks until one has).
                        if not direct.dispatch(chunk, terminated):
                            self._fail_batch([(chunk, task)], None)
                    else:
                        # Hand the GIL to the submitter now: encoding the next chunk would
                        # otherwise hold it for up to the 5 ms switch interval, and the
                        # workers would idle while this chunk waits to be sent.
                        time.sleep(0)
            except Exception as exc:  # noqa: BLE001 - a broken task generator
                print(f"gilbridge: task generation failed: {exc!r}", file=sys.stderr)
            finally:
                task = taskseq = None  # type: ignore[assignment]
                self._done_feeding()
            if self.state == TERMINATE:
                break
        # Closed (or terminated): once everything queued is sent, tell the host. A direct
        # pool's chunks bypass the host, so it is told only once they are all answered: a
        # release that overtook a chunk still in a worker's socket would drop it.
        with self._lock:
            self._closing = True
            self._lock.notify_all()
            while not self._submitter_done or (direct is not None and self._routes and self.state != TERMINATE):
                self._lock.wait(POLL)
        if self.state != TERMINATE:
            pb = _pb()
            try:
                self.conn.call(self.conn.execution.ClosePool,
                               pb.PoolRequest(session_id=self.conn.session_id, pool_id=self.pool_id))
            except Exception:  # noqa: BLE001 - the pool is gone already: its stream says why
                pass

    def _reserve_slot(self) -> bool:
        with self._lock:
            while self._outstanding >= self.max_outstanding and self.state != TERMINATE:
                self._lock.wait()
            if self.state == TERMINATE:
                return False
            self._outstanding += 1
            return True

    def _release_slot(self, n: int = 1) -> None:
        with self._lock:
            self._outstanding -= n
            self._lock.notify_all()

    def _submit_loop(self) -> None:
        pb = _pb()
        conn = self.conn
        while True:
            with self._lock:
                while not self._submit_queue and not self._closing:
                    self._lock.wait()
                if not self._submit_queue:
                    self._submitter_done = True
                    self._lock.notify_all()
                    return
                batch: list[tuple[Any, Task]] = []
                size = 0
                while self._submit_queue and len(batch) < SUBMIT_MAX_CHUNKS:
                    chunk, task = self._submit_queue[0]
                    n = sum(len(i) for i in chunk.items) + len(chunk.packed_items) + len(chunk.function.python)
                    if batch and size + n > SUBMIT_MAX_BYTES:
                        break
                    batch.append(self._submit_queue.popleft())
                    size += n
            if self.state == TERMINATE:
                self._fail_batch(batch, None)
                continue
            request = pb.SubmitTasksRequest(session_id=conn.session_id, pool_id=self.pool_id,
                                            tasks=[c for c, _ in batch])
            try:
                conn.call(conn.execution.SubmitTasks, request)
            except Exception as exc:  # noqa: BLE001 - those tasks fail with it
                self._fail_batch(batch, exc)

    def _fail_batch(self, batch: list[tuple[Any, Task]], exc: BaseException | None) -> None:
        from ._remote import BrokenProcessPool

        for chunk, task in batch:
            if not self._unroute(chunk.task_id):
                continue
            error = exc if exc is not None else BrokenProcessPool("the pool was terminated before this task ran")
            self._deliver(task.job, task.index, (False, error))

    # ---------------------------------------------------------------- results

    def _deliver(self, job: Job, index: int, obj: tuple[bool, Any]) -> None:
        try:
            with self._deliver_lock:
                job._set(index, obj)
        except KeyError:
            pass  # aborted meanwhile
        except Exception:  # noqa: BLE001 - a failing callback must not stop the handler
            import traceback

            print("gilbridge: exception in a Pool callback:", file=sys.stderr)
            traceback.print_exc()

    def _on_event(self, event: Any) -> None:
        kind = event.WhichOneof("event")
        if kind == "result":
            self._on_result(event.result)
        elif kind == "output":
            write_output(event.output)
        elif kind in ("worker_exit", "worker_released"):
            pid = event.worker_exit.pid if kind == "worker_exit" else event.worker_released
            with self._lock:
                if pid in self.worker_pids:
                    self.worker_pids.remove(pid)
        elif kind == "worker_started":
            with self._lock:
                self.worker_pids.append(event.worker_started)
        elif kind == "worker_joined":  # a direct pool's replacement worker
            joined = event.worker_joined
            with self._lock:
                self.worker_pids.append(joined.pid)
            if self._direct is not None:
                self._direct.add_worker(joined.pid, joined.data_address)

    def _on_result(self, result: Any) -> None:
        from ._remote import BrokenProcessPool, alias_main_module, rebuild_exception

        with self._lock:
            task = self._routes.pop(result.task_id, None)
            if task is None:
                return
            self._outstanding -= 1
            self._lock.notify_all()
        obj: tuple[bool, Any]
        if result.HasField("error"):
            exc = rebuild_exception(result.error, kernel=task.function.is_kernel,
                                    terminated=self.terminated_by_owner, for_executor=self.for_executor)
            obj = (False, exc)
            if isinstance(exc, BrokenProcessPool) and result.error.worker_died and \
                    not self.terminated_by_owner and self.on_worker_died is not None:
                self.on_worker_died(exc)
        else:
            try:
                alias_main_module()
                values = _codec.decode(result.packed_values) if result.packed_values \
                    else [_codec.decode(v) for v in result.values]
                obj = (True, values[0] if task.single else values)
            except Exception as exc:  # noqa: BLE001 - an undecodable result fails its task
                obj = (False, exc)
        self._deliver(task.job, task.index, obj)

    def _on_end(self, error: BaseException | None) -> None:
        if self._direct is not None:
            # A released worker's last results may still be on their way over its data
            # socket (the host's word that the pool finished can overtake them): let each
            # link end by itself, briefly, unless the pool was terminated or broke.
            clean = error is None and not self.terminated_by_owner
            self._direct.close(wait=DIRECT_DRAIN_SECONDS if clean else 0.0)
        try:
            self._abort_all(error)
        finally:
            self._finished.set()
            # Wake a task handler blocked on the in-flight bound or on its queue.
            with self._lock:
                self._lock.notify_all()
            with self._task_cond:
                if self.state == TERMINATE:
                    self.taskqueue.append(None)
                self._task_cond.notify_all()

    def _abort_all(self, error: BaseException | None) -> None:
        from ._remote import BrokenProcessPool

        self._end_error = error
        if self.state == RUN and error is not None:
            self.state = TERMINATE
        with self._lock:
            routes = list(self._routes.values())
            self._routes.clear()
            self._outstanding = 0
        if self.terminated_by_owner:
            reason = "the pool was terminated before this task finished"
        elif error is not None:
            reason = f"the pool's workers are gone: {error}"
        else:
            reason = "the pool finished before this task ran"
        for task in routes:
            self._deliver(task.job, task.index, (False, BrokenProcessPool(reason)))
        for job in list(self.cache.values()):
            try:
                with self._deliver_lock:
                    job._abort(BrokenProcessPool(reason))
            except Exception:  # noqa: BLE001
                pass

    # ---------------------------------------------------------------- lifecycle

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def close(self) -> None:
        """No more tasks: the host is told once everything queued has been submitted;
        workers exit when the work is done. Does not block."""
        if self.state == RUN:
            self.state = CLOSE
            self.put(None)  # type: ignore[arg-type]

    def terminate(self, wait: bool = True) -> None:
        """TerminatePool now (queued and running tasks fail with BrokenProcessPool);
        with ``wait``, block until the host reports every worker gone (normally
        milliseconds; at most 30 s) — unless no task was queued or running: then idle
        workers have nothing to stop, and they return to the session's warm set while
        the caller goes on (a next pool waits for them at the host, at most 250 ms)."""
        idle = False
        if self.state != TERMINATE:
            idle = self._idle()
            self.state = TERMINATE
            self.terminated_by_owner = True
            with self._lock:
                self._lock.notify_all()
            with self._task_cond:
                self.taskqueue.append(None)
                self._task_cond.notify_all()
            if not self._finished.is_set():
                try:
                    if idle:
                        # Nothing of the caller's to stop: the workers only go back to
                        # the warm set, so the caller need not wait for the host's answer.
                        terminate_pool_soon(self.conn, self.pool_id)
                    else:
                        terminate_pool(self.conn, self.pool_id)
                except Exception:  # noqa: BLE001 - host gone: the stream ends anyway
                    pass
        if wait and not idle:
            self._wait_terminated(30.0)

    def _idle(self) -> bool:
        """No job unfinished, no chunk queued, sent or unanswered (``with Pool(n)``
        leaving after its map returned)."""
        with self._lock:
            if self._routes or self._outstanding or self._submit_queue:
                return False
        with self._task_cond:
            if any(seq is not None for seq in self.taskqueue):
                return False
        return not self.cache

    def _wait_terminated(self, timeout: float, on_interrupt: Callable[[], None] | None = None) -> None:
        """After TerminatePool: wait for the stream's end, asking the host every 0.5 s
        whether the pool is finished and ending the stream ourselves when it is (the
        host may not close the stream of a pool terminated while a replacement worker
        was starting)."""
        pb = _pb()
        deadline = time.monotonic() + timeout
        while not wait_event(self._finished, 0.5, on_interrupt):
            finished = time.monotonic() > deadline
            if not finished:
                try:
                    state = self.conn.call(self.conn.execution.GetPoolState, pb.PoolRequest(
                        session_id=self.conn.session_id, pool_id=self.pool_id))
                    finished = bool(state.finished)
                except Exception:  # noqa: BLE001 - unknown pool / host gone: it is over
                    finished = True
            if finished:
                try:
                    self._watch.call.cancel()
                except Exception:  # noqa: BLE001
                    pass
                wait_event(self._finished, 5.0)
                return

    def interrupt(self) -> None:
        """Ctrl-C while waiting on this pool: terminate without waiting long."""
        self.terminate(wait=False)

    def join(self) -> None:
        """Block until the pool finished (after close: all work done and every worker
        exited; after terminate: workers killed). Ctrl-C terminates the pool."""
        join_thread(self._task_handler, None, self.interrupt)
        if self.state == TERMINATE:
            self._wait_terminated(30.0, self.interrupt)
        else:
            wait_event(self._finished, None, self.interrupt)
        join_thread(self._watch.thread, 5.0, self.interrupt)

    def at_exit(self, interrupted: bool) -> None:
        if self.finished:
            return
        if interrupted or self.exit_action == "terminate":
            self.terminate(wait=True)
        else:
            self.close()
            self.join()

    def task_ids(self) -> Iterator[int]:  # pragma: no cover - debugging aid
        with self._lock:
            return iter(list(self._routes))

"""The client side of the Execution service that pools and Processes share: waiting in
interruptible slices, forwarding what workers print, this process's runtime (its live
pools and started Processes, and the stdlib's exit behaviour for them), and creating a
pool on the host with the stream of its events. The pool itself is
:mod:`gilbridge._poolcore`.

Per-process state hangs off the connection (``Connection.attachment``): the
:class:`ExecutionRuntime` holds this process's live pools (weakly) and its started
``Process`` children, and runs the stdlib's exit behaviour (terminate pools and daemonic
children, join the others) before the connection says Goodbye.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final, Protocol

from ._connection import Connection, current_connection, get_connection

__all__ = [
    "ExecutionRuntime",
    "PoolWatch",
    "create_pool",
    "current_runtime",
    "runtime",
    "terminate_pool",
    "terminate_pool_soon",
    "wait_event",
    "write_output",
]

POLL: Final = 0.25
# Unfinished chunks a Pool keeps submitted (the stdlib is bounded by its pipe instead).
POOL_MAX_OUTSTANDING: Final = 1024
SUBMIT_MAX_CHUNKS: Final = 1000
SUBMIT_MAX_BYTES: Final = 4 << 20
# How long a finished direct pool waits for each worker's data socket to deliver its last results.
DIRECT_DRAIN_SECONDS: Final = 5.0
# How many of this process's unanswered TerminatePool calls a CreatePool names
# (CreatePoolRequest.ends_pools, the host's limit); it waits for any older ones.
_ENDS_POOLS_MAX: Final = 64
_TERMINATION_WAIT: Final = 5.0
# The largest chunk a caller sends itself (PoolCore.put_one): well under a Unix socket's
# buffer, so the send cannot block on a worker that is slow to read.
INLINE_SEND_MAX_BYTES: Final = 64 << 10

# CallStyle values (protos/bridge/v1/execution.proto), spelled out so that building
# tasks needs no protobuf import.
CALL: Final = 0
MAP: Final = 1
STARMAP: Final = 2
RUN_PROCESS: Final = 3

RUN: Final = "RUN"
CLOSE: Final = "CLOSE"
TERMINATE: Final = "TERMINATE"


def _pb() -> Any:
    from ._proto.bridge.v1 import execution_pb2

    return execution_pb2


# ---------------------------------------------------------------------------- waiting


def wait_event(event: threading.Event, timeout: float | None,
               on_interrupt: Callable[[], None] | None = None) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds (None: forever) in 0.25 s slices.

    Returns whether it is set. On KeyboardInterrupt runs ``on_interrupt`` (best effort)
    and re-raises.
    """
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    try:
        while True:
            if deadline is None:
                step = POLL
            else:
                step = min(POLL, deadline - time.monotonic())
                if step <= 0:
                    return event.is_set()
            if event.wait(step):
                return True
    except KeyboardInterrupt:
        if on_interrupt is not None:
            try:
                on_interrupt()
            except BaseException:  # noqa: BLE001 - the interrupt wins
                pass
        raise


def join_thread(thread: threading.Thread, timeout: float | None,
                on_interrupt: Callable[[], None] | None = None) -> bool:
    """``thread.join`` in 0.25 s slices (Ctrl-C runs ``on_interrupt`` and re-raises).
    Returns whether the thread has finished."""
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    try:
        while thread.is_alive():
            step = POLL if deadline is None else min(POLL, deadline - time.monotonic())
            if step <= 0:
                break
            thread.join(step)
    except KeyboardInterrupt:
        if on_interrupt is not None:
            try:
                on_interrupt()
            except BaseException:  # noqa: BLE001
                pass
        raise
    return not thread.is_alive()


# ---------------------------------------------------------------------------- output


def write_output(output: Any) -> None:
    """Write a worker's OutputText to this process's sys.stdout/sys.stderr and flush."""
    stream = sys.stdout if output.stream == 1 else sys.stderr
    if stream is None:
        return
    try:
        stream.write(output.text)
        stream.flush()
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------------------- runtime


class _ExitParticipant(Protocol):
    def _exit(self, interrupted: bool) -> None: ...


class ExecutionRuntime:
    """This process's execution state, attached to its connection.

    * ``children``: started gilbridge ``Process`` objects not yet joined (what
      ``active_children()`` reports after discarding finished ones);
    * ``pools``: live pool cores (weak), terminated or joined at exit.

    At interpreter exit (an ``atexit`` handler registered after the connection's own, so
    it runs first, while the connection still works) it does what the stdlib does:
    executors finish their work, pools are terminated, daemonic children are terminated
    and the others joined. When the process is exiting because of a KeyboardInterrupt,
    everything is terminated instead, so no worker outlives a Ctrl-C.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.children: set[Any] = set()
        self.pools: weakref.WeakSet[_ExitParticipant] = weakref.WeakSet()
        # TerminatePool calls sent without waiting (terminate_pool_soon): the pool id, the
        # grpc future (kept: a collected future cancels its call) and the Event set when
        # it is answered. The next CreatePool names the unanswered ones (ends_pools).
        self.pending_terminations: list[tuple[str, Any, threading.Event]] = []
        atexit.register(self._at_exit)

    def add_child(self, process: Any) -> None:
        with self.lock:
            self.children.add(process)

    def discard_child(self, process: Any) -> None:
        with self.lock:
            self.children.discard(process)

    def cleanup_children(self) -> list[Any]:
        """Forget children that have finished; return the rest (stdlib ``_cleanup``)."""
        with self.lock:
            for p in list(self.children):
                popen = p._popen
                if popen is not None and popen.poll() is not None:
                    self.children.discard(p)
            return list(self.children)

    def _at_exit(self) -> None:
        if os.getpid() != self.pid or self.conn.closed:
            return
        interrupted = _exiting_on_interrupt()
        try:
            for core in list(self.pools):
                core.at_exit(interrupted)
            with self.lock:
                children = list(self.children)
            for p in children:
                if interrupted or p.daemon:
                    p._popen.terminate()
            for p in children:
                p.join()
        except KeyboardInterrupt:
            # A second Ctrl-C while waiting at exit: kill what is left, do not hang.
            for core in list(self.pools):
                core.terminate(wait=False)
            for p in list(self.children):
                try:
                    p._popen.terminate()
                except Exception:  # noqa: BLE001
                    pass


def _exiting_on_interrupt() -> bool:
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return isinstance(last, KeyboardInterrupt) or getattr(sys, "last_type", None) is KeyboardInterrupt


def runtime(conn: Connection | None = None) -> ExecutionRuntime:
    """This process's execution runtime (creating the connection if needed)."""
    conn = conn or get_connection()
    return conn.attachment("execution", ExecutionRuntime)


def current_runtime() -> ExecutionRuntime | None:
    """The runtime if this process has a connection and used execution (creates nothing)."""
    conn = current_connection()
    if conn is None:
        return None
    return conn.existing_attachment("execution")  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------- pools


def create_pool(conn: Connection, request: Any) -> Any:
    """CreatePool; blocks until the workers are connected (warm: milliseconds; cold:
    the interpreter starting and loading .NET, up to the host's WorkerStartSeconds).
    This process's TerminatePool calls still unanswered (see :func:`terminate_pool_soon`)
    are named in the request, so the host ends those pools first and this one finds
    their workers, without waiting here for the answers. Ctrl-C while waiting
    terminates the pool if it got created anyway."""
    request.ends_pools.extend(_unanswered_terminations(conn))

    def undo(future: Any) -> None:
        try:
            info = future.result(timeout=0) if future.done() else None
        except Exception:  # noqa: BLE001
            info = None
        if info is not None:
            terminate_pool(conn, info.pool_id)

    return conn.call(conn.execution.CreatePool, request, long_wait=True, on_interrupt=undo)


def terminate_pool(conn: Connection, pool_id: str) -> Any:
    """TerminatePool, ignoring a pool that already finished (NOT_FOUND)."""
    pb = _pb()
    try:
        return conn.call(conn.execution.TerminatePool,
                         pb.PoolRequest(session_id=conn.session_id, pool_id=pool_id))
    except (FileNotFoundError, ConnectionResetError):
        return None


def terminate_pool_soon(conn: Connection, pool_id: str) -> None:
    """TerminatePool without waiting for the answer (an idle pool's: nothing of the
    caller's is running, its workers only go back to the warm set). The caller goes on
    at once; this process's next CreatePool names the pool while the answer is
    outstanding (see :func:`create_pool`), so a pool made right after still finds the
    workers this one releases. Failures are ignored, as :func:`terminate_pool` ignores a
    finished pool: the session's end stops its pools."""
    pb = _pb()
    future, answered = conn.start_call(conn.execution.TerminatePool,
                                       pb.PoolRequest(session_id=conn.session_id, pool_id=pool_id))
    execution = runtime(conn)
    with execution.lock:
        # Answered ones are dropped as new ones come: the list is as long as the calls in flight.
        execution.pending_terminations = [
            pending for pending in execution.pending_terminations if not pending[2].is_set()]
        execution.pending_terminations.append((pool_id, future, answered))


def _unanswered_terminations(conn: Connection) -> list[str]:
    """The pools of this process's unanswered TerminatePool calls, at most
    _ENDS_POOLS_MAX of them, after waiting (at most 5 s) for any older ones."""
    execution = conn.existing_attachment("execution")
    if execution is None or not execution.pending_terminations:
        return []
    with execution.lock:
        pending = [entry for entry in execution.pending_terminations if not entry[2].is_set()]
        execution.pending_terminations = pending
    older, named = pending[:-_ENDS_POOLS_MAX], pending[-_ENDS_POOLS_MAX:]
    deadline = time.monotonic() + _TERMINATION_WAIT
    for _pool_id, _future, answered in older:
        answered.wait(max(0.0, deadline - time.monotonic()))  # never blocks inside grpc
    return [pool_id for pool_id, _future, answered in named if not answered.is_set()]


class PoolWatch:
    """One WatchPool stream, read by a daemon thread until the pool finishes.

    ``on_event(event)`` runs in that thread for every event; ``on_end(error)`` once at
    the end (``error`` None when the pool finished, else the exception that broke the
    stream, e.g. HostUnavailableError).
    """

    def __init__(self, conn: Connection, pool_id: str, name: str,
                 on_event: Callable[[Any], None], on_end: Callable[[BaseException | None], None]) -> None:
        pb = _pb()
        self._conn = conn
        self._on_event = on_event
        self._on_end = on_end
        self.call = conn.execution.WatchPool(
            pb.WatchPoolRequest(session_id=conn.session_id, pool_id=pool_id),
            metadata=conn.metadata,
        )
        self.thread = threading.Thread(target=self._run, name=f"gilbridge-watch-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from ._errors import translate

        grpc = self._conn._grpc
        error: BaseException | None = None
        try:
            for event in self.call:
                self._on_event(event)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                error = translate(err, self._conn.address.target)
            else:
                error = ConnectionAbortedError("the pool's event stream was cancelled")
        except BaseException as exc:  # noqa: BLE001 - reported through on_end
            error = exc
        finally:
            self._on_end(error)

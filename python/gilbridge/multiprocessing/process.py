"""``Process`` on a Bridge worker, with the API of ``multiprocessing.Process``.

``start()`` asks the host for a one-worker pool in process mode (a warm worker: a few
milliseconds) and sends it the Process object itself, pickled with cloudpickle (so a
lambda or a ``__main__`` function is a fine target, and subclasses overriding ``run()``
work). The worker runs it exactly as a spawned stdlib child does
(``BaseProcess._bootstrap``): in the child ``current_process()`` is this object (its name,
its pid), ``parent_process()`` names the parent, ``sys.exit(n)`` gives exit code ``n`` and
an uncaught exception prints its traceback on the child's stderr and gives 1. The
child's stdout/stderr come back as events and are written to this process's
``sys.stdout``/``sys.stderr`` as they arrive.

``pid`` is the worker's OS pid; ``terminate()``/``kill()`` signal it (exit code -15/-9).
``join()`` returns once the Process has finished (``run()``, its atexit handlers and its
output done, the exit code reported); the worker process itself may need ~0.1 s more to
disappear;
``sentinel`` is a pipe that becomes readable when the child has exited, so
``multiprocessing.connection.wait`` works. Started, unjoined children are tracked on this
process's connection (``gilbridge._execution.ExecutionRuntime``): at exit daemonic ones
are terminated and the others joined, as the stdlib does.

The start method (``fork``, ``spawn``, ``forkserver``) is recorded but does not matter:
every Process runs on a Bridge worker, which behaves like ``spawn`` with cloudpickle.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from multiprocessing import process as _stdlib_process
from typing import Any

from .. import _codec
from .._environment import main_info, python_environment
from .._execution import (
    RUN_PROCESS,
    PoolWatch,
    create_pool,
    current_runtime,
    runtime,
    wait_event,
    write_output,
)
from .._pickling import ItemEncoder
from ._base import stdlib_fallback

__all__ = ["Process", "active_children", "current_process", "parent_process"]


def current_process() -> _stdlib_process.BaseProcess:
    """The Process object of this process (in a Bridge child: the Process it runs)."""
    return _stdlib_process.current_process()


def parent_process() -> _stdlib_process.BaseProcess | None:
    """The parent's Process object (name, pid) in a child; None in the main process."""
    return _stdlib_process.parent_process()


def active_children() -> list[Process]:
    """Started children of this process that are still running (finished ones are
    forgotten, as the stdlib's ``active_children`` joins them)."""
    rt = current_runtime()
    return rt.cleanup_children() if rt is not None else []


def _cleanup() -> None:
    """Forgets children that have finished (the stdlib's ``process._cleanup``)."""
    rt = current_runtime()
    if rt is not None:
        rt.cleanup_children()


# The rest of the stdlib's module (BaseProcess, _dangling, ORIGINAL_DIR, ...): the
# Process objects here are its BaseProcess, tracked in its own sets.
__getattr__ = stdlib_fallback(__name__, _stdlib_process)


def _close_fds(*fd_lists: list[int]) -> None:
    """Closes each descriptor once: it leaves its list as it is closed, so a later call
    (close(), then the finalizer) cannot close a number the OS has since reused."""
    for fds in fd_lists:
        while True:
            try:
                fd = fds.pop()  # atomic: the watch thread may be closing too
            except IndexError:
                break
            try:
                os.close(fd)
            except OSError:
                pass


class _BridgePopen:
    """What ``BaseProcess`` expects of ``self._popen`` (``pid``, ``poll``, ``wait``,
    ``terminate``, ``kill``, ``close``, ``sentinel``), backed by a process-mode pool."""

    method = "bridge"

    def __init__(self, process_obj: Process) -> None:
        from .._connection import get_connection
        from .._proto.bridge.v1 import execution_pb2 as pb

        conn = get_connection()
        self._conn = conn
        self.returncode: int | None = None
        self._exited = threading.Event()
        main = main_info()
        # Pickle first: an unpicklable target fails here, before a worker is taken.
        payload = ItemEncoder(main.names if main else None, conn.max_payload).pickled(process_obj)
        # The Process's chunk travels with CreatePool: the worker gets it right behind its
        # assignment, and start() makes no SubmitTasks call.
        chunk = pb.TaskChunk(task_id=1, function=pb.Callable(python=b""), style=RUN_PROCESS,
                             items=[payload])
        request = pb.CreatePoolRequest(session_id=conn.session_id, processes=1, process_mode=True,
                                       name=process_obj.name, tasks=[chunk])
        request.python.CopyFrom(python_environment(conn, main))
        info = create_pool(conn, request)
        self.pool_id: str = info.pool_id
        self.pid: int = info.worker_pids[0] if info.worker_pids else 0
        read_fd, write_fd = os.pipe()
        self.sentinel = read_fd
        self._write_fds = [write_fd]
        self._fds = [read_fd]
        # The same lists as close() and _set_exit(), not a copy: a copy would close the
        # write end a second time, by then perhaps another file's descriptor.
        self._fd_finalizer = weakref.finalize(self, _close_fds, self._fds, self._write_fds)
        self._fd_finalizer.atexit = False
        self._name = process_obj.name
        self._watch = PoolWatch(conn, self.pool_id, process_obj.name, self._on_event, self._on_end)

    # ------------------------------------------------------------------ events

    def _on_event(self, event: Any) -> None:
        kind = event.WhichOneof("event")
        if kind == "output":
            write_output(event.output)
        elif kind == "result":
            # The RUN_PROCESS task's value is the exit code, reported once run(), the
            # atexit handlers and the output are done: the Process has finished, only
            # the worker's own teardown is left (~0.1 s before the WorkerExit event).
            result = event.result
            if not result.HasField("error") and result.values:
                try:
                    code = _codec.decode(result.values[0])
                except Exception:  # noqa: BLE001 - wait for WorkerExit instead
                    code = None
                if isinstance(code, int):
                    self._set_exit(code)
        elif kind == "worker_exit":  # the pool's one worker
            self._set_exit(int(event.worker_exit.exit_code))

    def _on_end(self, error: BaseException | None) -> None:
        if self.returncode is None:
            if error is not None:
                print(f"gilbridge: lost track of {self._name} (pid {self.pid}): {error}", file=sys.stderr)
            self._set_exit(1)

    def _set_exit(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
        self._exited.set()
        _close_fds(self._write_fds)  # the sentinel becomes readable (EOF)

    # ------------------------------------------------------------------ Popen API

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        """The exit code, or None while running (never blocks)."""
        return self.returncode

    def wait(self, timeout: float | None = None, on_interrupt: Any = None) -> int | None:
        """Block until the child exits or ``timeout`` seconds pass; the exit code or None."""
        wait_event(self._exited, timeout, on_interrupt)
        return self.returncode

    def _send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            return
        from .._proto.bridge.v1 import execution_pb2 as pb

        conn = self._conn
        try:
            conn.call(conn.execution.SignalWorker, pb.SignalWorkerRequest(
                session_id=conn.session_id, pool_id=self.pool_id, pid=self.pid, signal=sig))
        except (FileNotFoundError, ConnectionResetError):
            pass  # it exited meanwhile (the stdlib ignores ProcessLookupError too)

    def terminate(self) -> None:
        """SIGTERM the worker (exit code -15)."""
        self._send_signal(15)

    def kill(self) -> None:
        """SIGKILL the worker (exit code -9)."""
        self._send_signal(9)

    def close(self) -> None:
        _close_fds(self._fds, self._write_fds)


class Process(_stdlib_process.BaseProcess):
    """A process running on a Bridge worker: ``multiprocessing.Process``'s API.

    ``Process(group=None, target=None, name=None, args=(), kwargs={}, *, daemon=None)``;
    subclass and override :meth:`run` as with the stdlib.
    """

    _start_method = None

    @staticmethod
    def _Popen(process_obj: Process) -> _BridgePopen:
        return _BridgePopen(process_obj)

    def start(self) -> None:
        """Start the child on a Bridge worker. Blocks for one call to the host (a few
        ms), not for the worker: one still starting runs the child once it is ready, as
        a spawned child runs once its interpreter is up. Raises what pickling the object
        raises."""
        self._check_closed()
        assert self._popen is None, "cannot start a process twice"
        assert self._parent_pid == os.getpid(), "can only start a process object created by current process"
        assert not _stdlib_process.current_process()._config.get("daemon"), \
            "daemonic processes are not allowed to have children"
        rt = runtime()
        rt.cleanup_children()
        self._popen = self._Popen(self)
        self._sentinel = self._popen.sentinel
        # Avoid a refcycle if the target function holds an indirect reference to the
        # process object (as the stdlib does).
        del self._target, self._args, self._kwargs
        rt.add_child(self)

    def join(self, timeout: float | None = None) -> None:
        """Wait until the child exits, at most ``timeout`` seconds (None: no limit).
        Ctrl-C while waiting terminates the child and re-raises."""
        self._check_closed()
        assert self._parent_pid == os.getpid(), "can only join a child process"
        assert self._popen is not None, "can only join a started process"
        res = self._popen.wait(timeout, on_interrupt=self._popen.terminate)
        if res is not None:
            self._forget()

    def is_alive(self) -> bool:
        """Whether the child is running (never blocks)."""
        self._check_closed()
        if self is _stdlib_process.current_process():
            return True
        assert self._parent_pid == os.getpid(), "can only test a child process"
        if self._popen is None:
            return False
        if self._popen.poll() is None:
            return True
        self._forget()
        return False

    def close(self) -> None:
        """Release the sentinel; ValueError while the child is still running."""
        if self._popen is not None:
            if self._popen.poll() is None:
                raise ValueError("Cannot close a process while it is still running. "
                                 "You should first call join() or terminate().")
            self._popen.close()
            self._popen = None
            del self._sentinel
            self._forget()
        self._closed = True

    def _forget(self) -> None:
        rt = current_runtime()
        if rt is not None:
            rt.discard_child(self)

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_popen"] = None
        state.pop("_sentinel", None)
        config = dict(state.get("_config", {}))
        if "authkey" in config:
            config["authkey"] = bytes(config["authkey"])
        state["_config"] = config
        state["_parent_logging"] = _logging_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The child applies _parent_logging before it runs (_worker.run_process).
        config = state.get("_config", {})
        if "authkey" in config:
            config["authkey"] = _stdlib_process.AuthenticationString(config["authkey"])
        self.__dict__.update(state)


def _logging_state() -> tuple[bool, int | None]:
    """What the stdlib's spawn passes a child of the ``multiprocessing`` logger: whether
    ``log_to_stderr()`` was called, and the logger's effective level (None: no logger)."""
    from multiprocessing import util

    logger = util._logger  # type: ignore[attr-defined]
    return bool(util._log_to_stderr), (None if logger is None else logger.getEffectiveLevel())  # type: ignore[attr-defined]


def apply_logging_state(state: tuple[bool, int | None] | None) -> None:
    """In the child, before ``run()``: as ``multiprocessing.spawn.prepare`` does."""
    if state is None:
        return
    from multiprocessing import util

    to_stderr, level = state
    if to_stderr:
        util.log_to_stderr()
    if level is not None:
        util.get_logger().setLevel(level)

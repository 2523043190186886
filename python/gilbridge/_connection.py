"""The per-process connection to the Bridge host: the package's only global state.

One :class:`Connection` per OS process, created lazily by :func:`get_connection` on the
first object creation (so ``import gilbridge`` does not import grpc). It owns:

* the gRPC channel and the four service stubs,
* the session (Hello at start, Goodbye at exit) and its lease, renewed by a daemon
  thread calling KeepAlive every lease/3 seconds; if the host says the session ended
  (the process was stopped longer than the lease) a new session is started with a
  warning,
* the per-process reference counts of live proxies, so that the last proxy of an object
  collected in this process sends Detach (from the background thread, never from a
  garbage-collection callback, never during interpreter shutdown),
* the queues whose buffered puts and pending acks must be flushed before Goodbye,
* per-connection attachments (:meth:`Connection.attachment`): the execution runtime
  (this process's pools and Process children, ``gilbridge._execution``) and the lock
  cache (``gilbridge.multiprocessing._lockcache``) hang here, so they die with the
  connection and a forked child starts with none,
* hooks for those attachments: before an object is detached, and around ``os.fork``
  (no long-lived stream may be in flight across a fork).

After ``os.fork()`` the child must not touch the parent's channel: an at-fork handler
drops the child's reference (keeping the object alive, unclosed, so nothing is sent on
the parent's socket) and the child creates its own connection on first use.
"""

from __future__ import annotations

import atexit
import functools
import gc
import os
import queue
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import _host
from ._errors import HostUnavailableError, ObjectLostError, translate

if TYPE_CHECKING:  # pragma: no cover
    import grpc

    from ._proto.bridge.v1 import sessions_pb2

__all__ = ["Connection", "get_connection", "LONG_WAIT_THRESHOLD"]

# Blocking calls that may wait longer than this (seconds) go through a future polled in
# short slices, so that Ctrl-C interrupts them; shorter ones use the plain blocking call.
LONG_WAIT_THRESHOLD = 0.5
_POLL_SLICE = 0.25

_R = TypeVar("_R")


class _AtExitFlushable(Protocol):
    def _at_exit(self) -> None: ...

    def _session_lost(self) -> None: ...


class _ForkGuard:
    """Keeps fork() from happening while one of this process's threads is inside grpc.

    Measured here: with GRPC_ENABLE_FORK_SUPPORT, a child forked while another thread was
    starting or finishing an RPC (e.g. the queue feeder sending a batch) sometimes hangs
    for good inside grpc's post-fork handler (a lock held by the vanished thread). Every
    RPC this module makes runs between ``enter()`` and ``exit()``; an ``os.fork`` hook
    waits (at most 2 s) for those to finish and holds new ones back until the fork is
    done. Long waits never sit inside grpc: they wait on a plain Event set by the call's
    done-callback.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._forking = False

    def enter(self) -> None:
        with self._cond:
            while self._forking:
                self._cond.wait()
            self._active += 1

    def exit(self) -> None:
        with self._cond:
            self._active -= 1
            if self._active == 0 and self._forking:
                self._cond.notify_all()

    def before_fork(self) -> None:
        self._cond.acquire()  # held across fork(): no RPC can start meanwhile
        self._forking = True
        deadline = time.monotonic() + 2.0
        while self._active:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)

    def after_fork_parent(self) -> None:
        self._forking = False
        self._cond.notify_all()
        self._cond.release()


class _LazyStub:
    """A service stub of a Connection, made on its first use and then a plain attribute
    (a non-data descriptor: the instance's own attribute wins from then on). No lock, so
    a fork can never leave one held in the child (``functools.cached_property`` holds a
    class-wide lock while it computes): two threads may both make a stub, either does."""

    def __init__(self, module: str, stub_type: str) -> None:
        self._module = module
        self._stub_type = stub_type
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, conn: Connection | None, owner: type | None = None) -> Any:
        if conn is None:
            return self
        import importlib

        module = importlib.import_module(f"{__package__}._proto.bridge.v1.{self._module}")
        stub = getattr(module, self._stub_type)(conn.channel)
        conn.__dict__[self._name] = stub
        return stub


class Connection:
    """A session with the Bridge host over one gRPC channel. Thread-safe."""

    def __init__(self, address: _host.Address) -> None:
        grpc = _host.import_grpc()

        from ._proto.bridge.v1 import execution_pb2_grpc, sessions_pb2, sessions_pb2_grpc

        self._grpc = grpc
        self._pb = sessions_pb2
        self.pid = os.getpid()
        self.address = address
        self.metadata = address.metadata()
        self.channel = address.open_channel(grpc)
        self.sessions = sessions_pb2_grpc.SessionsStub(self.channel)
        self.execution = execution_pb2_grpc.ExecutionStub(self.channel)
        self._attachments: dict[str, Any] = {}
        self._attachments_lock = threading.Lock()

        self.guard = _ForkGuard()
        self._session_lock = threading.Lock()
        self._refs_lock = threading.Lock()
        self._refs: dict[tuple[int, str], int] = {}
        self._background_work: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._flushables: weakref.WeakSet[_AtExitFlushable] = weakref.WeakSet()
        self._detach_hooks: list[Callable[[int, str], None]] = []
        self._fork_hooks: list[tuple[Callable[[], None], Callable[[], None]]] = []
        self.closed = False
        # A call found the host unreachable: the next get_connection() checks whether it
        # answers again, or replaces this connection with one to the host now there.
        self.host_lost = False
        # Objects this process used on an earlier host that went away (see _replace_lost).
        self.lost_names: frozenset[str] = frozenset()
        self.lost_host_pid = 0

        self.session_id = ""
        self.lease_seconds = 0.0
        # Until when a cached lock grant may be used without asking the host (half a
        # lease after the last successful KeepAlive): one comparison on the hot path.
        self.cache_fresh_until = 0.0
        self._last_renewed = 0.0
        self.host_info: sessions_pb2.HostInfo
        try:
            self._hello()
        except BaseException:
            self.channel.close()
            raise
        self._thread = threading.Thread(
            target=self._background, name="gilbridge-keepalive", daemon=True
        )
        self._thread.start()

    # The other services' stubs, made on first use: a script that only runs Processes or
    # pools never imports their messages.
    sync = _LazyStub("synchronization_pb2_grpc", "SynchronizationStub")
    queues = _LazyStub("queues_pb2_grpc", "QueuesStub")
    values = _LazyStub("values_pb2_grpc", "SharedValuesStub")

    # ------------------------------------------------------------------ session

    def _hello(self) -> None:
        argv = " ".join(sys.argv) if sys.argv and sys.argv[0] else "<interactive>"
        request = self._pb.HelloRequest(
            client_name=f"python {argv}", pid=os.getpid(), language="python"
        )
        try:
            reply = self.invoke(self.sessions.Hello, request, timeout=30)
        except self._grpc.RpcError as err:
            raise translate(err, self.address.target) from None
        self.session_id = reply.session_id
        self.lease_seconds = reply.lease_seconds or 5.0
        self.host_info = reply.host
        self.last_renewed = time.monotonic()

    @property
    def last_renewed(self) -> float:
        """When the last successful KeepAlive (or Hello) was sent (``time.monotonic``)."""
        return self._last_renewed

    @last_renewed.setter
    def last_renewed(self, when: float) -> None:
        self._last_renewed = when
        self.cache_fresh_until = when + self.lease_seconds / 2.0

    def check_session(self) -> None:
        """Cheap unless no KeepAlive succeeded for a whole lease (this process was
        stopped or starved): then ask the host now, and start a new session if the old
        one ended, so stale local state (prefetched queue items) is not used."""
        if time.monotonic() - self.last_renewed <= self.lease_seconds or self.closed:
            return
        sid = self.session_id
        try:
            self._keepalive(sid)
        except self._grpc.RpcError as err:
            if err.code() == self._grpc.StatusCode.NOT_FOUND:
                self._renew_session(sid, "its lease lapsed")
            else:
                raise translate(err, self.address.target) from None

    def renew_if_stale(self, max_age: float) -> bool:
        """True when the session surely still runs: the last successful KeepAlive was
        sent less than ``max_age`` seconds ago, or one sent now succeeds (blocks for that
        call). False when it failed; a session found ended is replaced (with a warning)."""
        if time.monotonic() - self.last_renewed <= max_age:
            return True
        if self.closed:
            return False
        sid = self.session_id
        try:
            self._keepalive(sid)
            return True
        except self._grpc.RpcError as err:
            if err.code() == self._grpc.StatusCode.NOT_FOUND:
                try:
                    self._renew_session(sid, "its lease lapsed")
                except Exception:  # noqa: BLE001 - the caller falls back to plain calls
                    pass
            return False

    def _keepalive(self, sid: str) -> float:
        """One KeepAlive; returns the lease the host granted."""
        now = time.monotonic()
        reply = self.invoke(
            self.sessions.KeepAlive,
            self._pb.KeepAliveRequest(session_id=sid),
            timeout=max(self.lease_seconds / 3.0, 1.0),
        )
        if sid == self.session_id:
            self.last_renewed = now
        return float(reply.lease_seconds)

    def _renew_session(self, old_session: str, reason: str) -> None:
        with self._session_lock:
            if self.closed or self.session_id != old_session:
                return  # another thread renewed it already
            self._hello()
            new_session = self.session_id
        for obj in list(self._flushables):
            obj._session_lost()
        _warn_session_replaced(old_session, new_session, reason, stacklevel=3)

    @property
    def max_payload(self) -> int:
        """The host's ``max_payload_bytes`` (0 when it reports no limit)."""
        return int(self.host_info.max_payload_bytes)

    def host_info_now(self) -> sessions_pb2.HostInfo:
        """A fresh GetHostInfo."""
        return self.call(self.sessions.GetHostInfo, self._pb.HostInfoRequest())

    # ------------------------------------------------------------------ calls

    def call(self, method: Any, request: Any, *, long_wait: bool = False,
             on_interrupt: Callable[[Any], None] | None = None, retry: bool = True) -> Any:
        """Invoke a unary method, translating failures into Python exceptions.

        ``long_wait``: the call may block for long (an unbounded or > 0.5 s wait); it is
        then run as a future polled every 0.25 s so that KeyboardInterrupt cancels it
        (``on_interrupt(future)`` runs after the cancel, before re-raising, to undo a
        result that raced with the cancel). If the host says this session has ended
        (ConnectionResetError: the lease lapsed, e.g. the process was stopped), a new
        session is started with a warning and, when ``retry``, the call is made once more
        with it (a wait keeps only what is left of its timeout).
        """
        grpc = self._grpc
        started = time.monotonic()
        for attempt in (0, 1):
            sid = _session_of(request)
            try:
                if long_wait:
                    return self._wait_future(method, request, on_interrupt)
                return self.invoke(method, request)
            except grpc.RpcError as err:
                exc = translate(err, self.address.target)
            if isinstance(exc, HostUnavailableError):
                self.host_lost = True
            elif type(exc) is FileNotFoundError and self.lost_names:
                exc = self._lost_object_error(request, exc)
            if attempt == 0 and isinstance(exc, ConnectionResetError) and sid and not self.closed:
                self._renew_session(sid, str(exc))
                if retry:
                    _set_session(request, self.session_id)
                    if hasattr(request, "ack"):
                        request.ack = 0  # the old session's leases went back to the queue
                    _shrink_timeout(request, time.monotonic() - started)
                    continue
            raise exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _lost_object_error(self, request: Any, exc: FileNotFoundError) -> FileNotFoundError:
        """ObjectLostError instead of "no such object" for an object this process used on
        the host that went away (its state went with that host)."""
        target = getattr(request, "target", None)
        name = getattr(target, "name", "")
        if name and name in self.lost_names:
            return ObjectLostError(
                f"{name!r} was lost with the Bridge host (pid {self.lost_host_pid}) that held it, "
                f"which went away; this process now uses the host at {self.address.target} "
                f"(creating the name again makes a new, empty object)")
        return exc

    def still_answers(self) -> bool:
        """After the host was found unreachable: True (and no longer lost) when this
        session's host answers a KeepAlive again (the failure passed), False when it does
        not or no longer knows the session (it is gone, or another host took its place).
        Blocks for that one call."""
        try:
            self._keepalive(self.session_id)
        except self._grpc.RpcError:
            return False
        self.host_lost = False
        return True

    def succeed(self, lost: Connection, host_gone: bool) -> None:
        """This connection replaces ``lost``, whose session ended; with ``host_gone`` (its
        host went away) calls on the objects ``lost`` used raise ObjectLostError naming
        them. ``lost`` stops without Goodbye (nobody would hear it); its queues drop what
        they prefetched."""
        if host_gone:
            with lost._refs_lock:
                names = {name for _kind, name in lost._refs}
            self.lost_names = frozenset(names) | lost.lost_names
            self.lost_host_pid = lost.host_info.pid
        else:
            self.lost_names = lost.lost_names
            self.lost_host_pid = lost.lost_host_pid
        lost.closed = True
        lost._background_work.put(None)
        for obj in list(lost._flushables):
            try:
                obj._session_lost()
            except Exception:  # noqa: BLE001 - best effort for an abandoned session
                pass
        try:
            lost.channel.close()
        except Exception:  # noqa: BLE001
            pass

    def invoke(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        """One plain blocking call (raises grpc.RpcError), fork-guarded."""
        guard = self.guard
        guard.enter()
        try:
            return method(request, metadata=self.metadata, timeout=timeout)
        finally:
            guard.exit()

    def start_call(self, method: Any, request: Any) -> tuple[Any, threading.Event]:
        """Starts one unary call without waiting (fork-guarded, as :meth:`invoke`): its
        grpc future, and an Event set once it is answered or failed. Wait on the Event,
        which holds no grpc lock; read the future (under the guard) once it is set."""
        done = threading.Event()
        guard = self.guard
        guard.enter()
        try:
            future = method.future(request, metadata=self.metadata)
            future.add_done_callback(lambda _f: done.set())
        finally:
            guard.exit()
        return future, done

    def _wait_future(self, method: Any, request: Any,
                     on_interrupt: Callable[[Any], None] | None) -> Any:
        future, done = self.start_call(method, request)
        guard = self.guard
        try:
            while not done.wait(_POLL_SLICE):  # interruptible; holds no grpc lock
                pass
        except KeyboardInterrupt:
            guard.enter()
            try:
                future.cancel()
            finally:
                guard.exit()
            if on_interrupt is not None:
                try:
                    on_interrupt(future)
                except Exception:  # noqa: BLE001 - best effort while interrupted
                    pass
            raise
        guard.enter()
        try:
            return future.result()
        finally:
            guard.exit()

    # ------------------------------------------------------------------ references

    def add_ref(self, kind: int, name: str) -> None:
        """Count one more live proxy of (kind, name) in this process."""
        with self._refs_lock:
            key = (kind, name)
            self._refs[key] = self._refs.get(key, 0) + 1

    def drop_ref(self, kind: int, name: str) -> None:
        """Undo :meth:`add_ref` after a failed attach (sends nothing)."""
        with self._refs_lock:
            key = (kind, name)
            n = self._refs.get(key, 0) - 1
            if n > 0:
                self._refs[key] = n
            else:
                self._refs.pop(key, None)

    def release_ref_later(self, kind: int, name: str) -> None:
        """Called from a proxy's finalizer: queue the decrement for the background thread
        (safe from any thread and from garbage collection)."""
        self.run_in_background(functools.partial(self._release_ref, (kind, name)))

    def run_in_background(self, work: Callable[[], object]) -> None:
        """Run ``work`` on the keep-alive thread (used by finalizers, which must not make
        RPCs themselves). Safe from garbage-collection callbacks."""
        if not self.closed:
            self._background_work.put(work)

    def _release_ref(self, key: tuple[int, str]) -> None:
        from ._proto.bridge.v1 import sessions_pb2

        with self._refs_lock:
            n = self._refs.get(key, 0) - 1
            if n > 0:
                self._refs[key] = n
                return
            self._refs.pop(key, None)
            if self.closed or sys.is_finalizing():
                return
            for hook in list(self._detach_hooks):
                try:
                    hook(*key)
                except Exception:  # noqa: BLE001 - detach is best effort
                    pass
            try:
                self.invoke(
                    self.sessions.Detach,
                    sessions_pb2.DetachRequest(session_id=self.session_id, kind=key[0], name=key[1]),
                    timeout=10,
                )
            except Exception:  # noqa: BLE001 - detach is best effort
                pass

    def register_detach_hook(self, hook: Callable[[int, str], None]) -> None:
        """Call ``hook(kind, name)`` on the background thread right before this process
        detaches from an object (its last proxy is gone), e.g. to hand back a cached lock."""
        self._detach_hooks.append(hook)

    def register_fork_hooks(self, before: Callable[[], None],
                            after_in_parent: Callable[[], None]) -> None:
        """Call ``before()`` in the forking thread before ``os.fork`` (RPCs are still
        allowed then; e.g. to end a long-lived stream, which grpc's fork handlers do not
        survive reliably) and ``after_in_parent()`` after it, in the parent only."""
        self._fork_hooks.append((before, after_in_parent))

    def ref_count(self, kind: int, name: str) -> int:
        with self._refs_lock:
            return self._refs.get((kind, name), 0)

    def existing_attachment(self, key: str) -> Any:
        """The singleton :meth:`attachment` made under ``key``, or None (makes nothing)."""
        return self._attachments.get(key)

    def attachment(self, key: str, factory: Callable[[Connection], _R]) -> _R:
        """The per-connection singleton stored under ``key``, made by ``factory(self)``
        on first use (thread-safe; ``factory`` runs at most once per connection)."""
        try:
            return self._attachments[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
        with self._attachments_lock:
            if key not in self._attachments:
                self._attachments[key] = factory(self)
            return self._attachments[key]  # type: ignore[no-any-return]

    def register_flushable(self, obj: _AtExitFlushable) -> None:
        """Flush ``obj`` (a queue's local state) at exit, before Goodbye; tell it when
        the session is replaced (its leases are gone)."""
        self._flushables.add(obj)

    # ------------------------------------------------------------------ background

    def _background(self) -> None:
        grpc = self._grpc
        interval = max(self.lease_seconds / 3.0, 0.05)
        next_keepalive = time.monotonic() + interval
        while not self.closed and os.getpid() == self.pid:
            wait = next_keepalive - time.monotonic()
            item: Callable[[], object] | None = None
            if wait > 0:
                try:
                    item = self._background_work.get(timeout=wait)
                except queue.Empty:
                    item = None
            if self.closed:
                return
            if item is not None:
                try:
                    item()
                except Exception:  # noqa: BLE001 - background work is best effort
                    pass
                continue
            sid = self.session_id
            try:
                lease = self._keepalive(sid)
                if lease > 0:
                    interval = max(lease / 3.0, 0.05)
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND and not self.closed:
                    try:
                        self._renew_session(sid, "its lease lapsed")
                    except Exception:  # noqa: BLE001 - host unreachable: retry next round
                        pass
                elif err.code() == grpc.StatusCode.UNAVAILABLE:
                    # The next get_connection() finds out whether the host comes back.
                    self.host_lost = True
            except Exception:  # noqa: BLE001 - never let the keep-alive thread die
                pass
            next_keepalive = time.monotonic() + interval

    # ------------------------------------------------------------------ shutdown

    def flush_buffers(self) -> None:
        """Send every queue's buffered puts and acknowledgements now, as at exit (a
        reused worker does this when it leaves a pool). Blocks for those RPCs; failures
        are reported on stderr."""
        for obj in list(self._flushables):
            try:
                obj._at_exit()
            except Exception as exc:  # noqa: BLE001 - report, keep going
                print(f"gilbridge: flushing {obj!r} failed: {exc}", file=sys.stderr)

    def close(self) -> None:
        """Flush queues, say Goodbye and close the channel. Idempotent."""
        if self.closed or os.getpid() != self.pid:
            return
        self.flush_buffers()
        self.closed = True
        self._background_work.put(None)
        try:
            self.invoke(
                self.sessions.Goodbye,
                self._pb.GoodbyeRequest(session_id=self.session_id),
                timeout=5,
            )
        except Exception:  # noqa: BLE001 - the lease ends the session anyway
            pass
        try:
            self.channel.close()
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self) -> str:
        return f"<gilbridge Connection {self.address.target} session={self.session_id}>"


def _session_of(request: Any) -> str:
    if hasattr(request, "target"):
        return str(request.target.session_id)
    return str(getattr(request, "session_id", ""))


def _shrink_timeout(request: Any, elapsed: float) -> None:
    """Deduct ``elapsed`` seconds from the request's wait timeout, if it has one."""
    if hasattr(request, "wait") and request.HasField("wait") and request.wait.HasField("timeout_seconds"):
        request.wait.timeout_seconds = max(0.0, request.wait.timeout_seconds - elapsed)


def _set_session(request: Any, session_id: str) -> None:
    if hasattr(request, "target"):
        request.target.session_id = session_id
    elif hasattr(request, "session_id"):
        request.session_id = session_id


# ---------------------------------------------------------------------- the one instance

_connection: Connection | None = None
_connection_lock = threading.Lock()
# Connections inherited from a parent through fork(): kept referenced (never closed or
# collected) so that nothing in the child touches the parent's channel.
_inherited: list[Connection] = []
_exit_hooks_pid = 0


def get_connection() -> Connection:
    """This process's connection, created (and the default host started) on first use.

    Blocks while connecting; up to 30 s if the default host has to be started.
    """
    conn = _connection
    # No pid check here (a getpid() system call on every queue and lock operation): a
    # forked child never sees the parent's connection, _after_fork_in_child drops it.
    if conn is not None and not conn.host_lost:
        return conn
    return _connect()


def current_connection() -> Connection | None:
    """This process's connection if one exists (never creates one)."""
    conn = _connection
    if conn is not None and conn.pid == os.getpid() and not conn.closed:
        return conn
    return None


def _connect() -> Connection:
    global _connection
    with _connection_lock:
        conn = _connection
        if conn is not None and conn.pid == os.getpid():
            if conn.host_lost and not conn.closed:
                conn = _connection = _replace_lost(conn)
            return conn
        if conn is not None:
            _inherited.append(conn)
        address = _host.configured_address()
        conn = _hello_running_default(address) if address.is_default else None
        if conn is None:
            if address.is_default:
                _host.ensure_host(address)
            conn = Connection(address)
        _connection = conn
        _install_exit_hooks()
        return conn


def _warn_session_replaced(old_session: str, new_session: str, reason: str, stacklevel: int) -> None:
    """The RuntimeWarning of a session the host ended (its lease lapsed) and replaced;
    ``stacklevel`` as warnings.warn counts it from here (2: this function's caller)."""
    warnings.warn(
        f"gilbridge: session {old_session} ended ({reason}); started session "
        f"{new_session}. Locks it held were released and its unacknowledged queue "
        f"items returned to their queues.",
        RuntimeWarning,
        stacklevel=stacklevel,
    )


def _replace_lost(lost: Connection) -> Connection:
    """The connection to use after ``lost`` found its host unreachable: ``lost`` itself
    when its host answers again; otherwise a new session with the host now at the
    address GILBRIDGE_ADDRESS gives (read again: a client of a cluster host that died
    points it at another host of the cluster and goes on; the default host is started
    again when none runs there), on which the lost host's objects raise ObjectLostError.
    HostUnavailableError when no host answers. Blocks for a KeepAlive, and up to 30 s
    when a host has to be started."""
    if lost.still_answers():
        return lost
    address = _host.configured_address()
    if address.is_default:
        _host.ensure_host(address)
    conn = Connection(address)
    if conn.host_info.pid == lost.host_info.pid and conn.host_info.host_id == lost.host_info.host_id:
        # The same host, which no longer knew the session (its lease lapsed meanwhile):
        # as after any lapsed session, its objects live on while others reference them.
        conn.succeed(lost, host_gone=False)
        _warn_session_replaced(lost.session_id, conn.session_id,
                               "the host was unreachable for a while", stacklevel=4)
        return conn
    conn.succeed(lost, host_gone=True)
    warnings.warn(
        f"gilbridge: the Bridge host (pid {lost.host_info.pid}) went away; this process now "
        f"uses the host at {address.target} (pid {conn.host_info.pid}). Objects made on the "
        f"old host are lost: using them raises ObjectLostError.",
        RuntimeWarning,
        stacklevel=3,
    )
    return conn


def _hello_running_default(address: _host.Address) -> Connection | None:
    """A session with the default host when it already runs, without probing it first
    (a probe is a channel and a call more, ~10 ms of a script's start); None when
    nothing answers there, so the caller starts the host."""
    sock = address.socket_file
    if sock is None or not os.path.exists(sock):
        return None
    try:
        return Connection(address)
    except HostUnavailableError:
        return None


def _install_exit_hooks() -> None:
    global _exit_hooks_pid
    if _exit_hooks_pid == os.getpid():
        return
    _exit_hooks_pid = os.getpid()
    atexit.register(_close_current)
    # A child started by multiprocessing with "fork" ends with os._exit() after running
    # multiprocessing's own finalizers, never atexit: hook into those as well.
    try:
        from multiprocessing import util

        util.Finalize(None, _close_current, exitpriority=-100)
    except Exception:  # noqa: BLE001 - multiprocessing unavailable: atexit suffices
        pass


def _close_current() -> None:
    conn = _connection
    if conn is not None and conn.pid == os.getpid():
        conn.close()


def _after_fork_in_child() -> None:
    global _connection, _connection_lock, _exit_hooks_pid
    if _gc_was_enabled:
        gc.enable()
    _connection_lock = threading.Lock()  # another thread may have held it at fork time
    conn = _connection
    if conn is not None:
        _inherited.append(conn)
        _connection = None
    _exit_hooks_pid = 0


_gc_was_enabled = False


def _before_fork() -> None:
    global _gc_was_enabled
    conn = _connection
    if conn is not None and conn.pid == os.getpid():
        for before, _after in conn._fork_hooks:
            try:
                before()
            except Exception:  # noqa: BLE001 - never fail a fork over it
                pass
        conn.guard.before_fork()
    # No garbage collection inside grpc's own post-fork handler: a finalizer run there
    # can wait forever on a lock held by a thread that did not survive the fork.
    _gc_was_enabled = gc.isenabled()
    gc.disable()


def _after_fork_in_parent() -> None:
    if _gc_was_enabled:
        gc.enable()
    conn = _connection
    if conn is not None and conn.pid == os.getpid():
        conn.guard.after_fork_parent()
        for _before, after in conn._fork_hooks:
            try:
                after()
            except Exception:  # noqa: BLE001
                pass


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


def release_ref_from_finalizer(pid: int, kind: int, name: str) -> None:
    """``weakref.finalize`` callback of a proxy created in process ``pid``."""
    if sys.is_finalizing():
        return
    conn = _connection
    if conn is not None and conn.pid == pid == os.getpid():
        conn.release_ref_later(kind, name)

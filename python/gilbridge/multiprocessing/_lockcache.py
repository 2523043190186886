"""Lock caching with recall: this process keeps a Lock/RLock the host granted it *cached*
and takes and releases it locally, with no RPC, until another client wants it.

The protocol (``AcquireRequest.cacheable``, ``SurrenderLock``, ``Sessions.Watch``):

* Acquires ask for a cacheable grant unless the watch stream below is known to be broken.
  A cached grant (``AcquireReply.cache_token``) belongs to the session; it is recorded in
  this process's :class:`_Entry` for the lock (one per lock name, shared by every proxy
  and thread of the process) and stays after ``release()``.
* One daemon thread per connection, ``gilbridge-watch``, started by the first cached
  grant, reads the session's ``Watch`` stream. A ``LockRecall`` (someone else acquires or
  releases the lock) is answered at once with ``SurrenderLock``: free when no thread of
  this process holds the lock, else "held by thread T (depth d)", which makes it a plain
  hold that T's next ``release()`` gives back through the host (a direct FIFO hand-off to
  the waiter). Local waiters then queue at the host too, so they cannot starve the remote
  one.
* A recall can overtake the reply that granted the lock: its token is remembered and the
  grant is surrendered as soon as it is installed.
* When the watch stream breaks, every cached grant is surrendered and no new one is asked
  for until a new stream is live (recalls may have been lost with the old one). When the
  session ends (a lapsed lease), the host has already released everything: the entries
  are simply cleared. Either way nothing is ever used locally that the host does not count
  as held by this session, so there are never two holders.
* Cached grants are used locally only while the session's lease is surely still running
  (a KeepAlive is sent first when the last one is older than half the lease).

The cache hangs on the :class:`~gilbridge._connection.Connection`, so a forked child
(which drops the parent's connection) and other processes start uncached.
"""

from __future__ import annotations

import os
import threading
import time
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any

from .._connection import Connection
from ._base import LOCK, RLOCK

if TYPE_CHECKING:  # pragma: no cover
    from .._proto.bridge.v1 import sessions_pb2

__all__ = ["LockCache", "lock_cache"]

# Local waits re-check in slices so Ctrl-C and a conversion are noticed.
_WAIT_SLICE = 0.25
# One SurrenderLock, bounded so the watch thread cannot hang on a stalled host.
_SURRENDER_TIMEOUT = 10.0
_WATCH_RETRY_MAX = 2.0
# How long an exiting process waits for the watch thread to leave its stream.
_EXIT_JOIN_TIMEOUT = 1.0


class _Entry:
    """This process's view of one lock. Guarded by ``cond``; ``holder``/``depth`` mean
    something only while ``token`` is set (a plain hold is tracked by the host)."""

    __slots__ = ("name", "kind", "mutex", "cond", "waiting", "token", "session", "holder",
                 "depth", "recalled", "recalled_upto", "recalling", "releasing")

    def __init__(self, name: str, kind: int) -> None:
        self.name = name
        self.kind = kind
        # ``with entry.mutex`` is ``with entry.cond`` without a Python-level call.
        self.mutex = threading.Lock()
        self.cond = threading.Condition(self.mutex)
        self.waiting = 0  # local threads in cond.wait: release notifies only then
        self.token = 0  # the cached grant's token; 0: not cached
        self.session = ""  # the session the grant belongs to
        self.holder: str | None = None  # owner() of the thread holding it locally
        self.depth = 0  # RLock recursion levels of holder
        self.recalled = False  # must be surrendered (an earlier attempt failed): no local use
        self.recalled_upto = 0  # highest token recalled before its grant was installed
        # Set (without cond) by the watch thread before it takes cond to surrender: a
        # thread re-acquiring in a tight loop would otherwise keep cond (which is not
        # fair) and the GIL from it for a long time, and the remote waiter with them.
        self.recalling = False
        # Plain Release calls in flight from this process: one may have ended a cached
        # grant whose reply is not installed yet, so such a grant is given back at once.
        self.releasing = 0


class LockCache:
    """The cached Lock/RLock grants of one connection, and the watch thread."""

    def __init__(self, conn: Connection) -> None:
        from .._proto.bridge.v1 import common_pb2, sessions_pb2, synchronization_pb2

        self._conn = conn
        self._pb = synchronization_pb2
        self._common = common_pb2
        self._sessions_pb = sessions_pb2
        self._lock = threading.Lock()  # guards the fields below
        self._entries: dict[str, _Entry] = {}
        self._epoch = 0  # bumped whenever recalls may have been lost
        self._broken = False  # the last watch stream failed; no new one is live yet
        self._disabled = False  # the host has no Watch: never cache
        self._stopping = False
        self._paused = False  # a fork is under way: no stream may be open
        self._wake = threading.Event()  # cuts a retry pause short
        self._thread: threading.Thread | None = None
        self._call: Any = None
        conn.register_flushable(self)
        conn.register_detach_hook(self._before_detach)
        conn.register_fork_hooks(self._before_fork, self._after_fork_in_parent)

    # ------------------------------------------------------------------ entries

    def entry(self, name: str, kind: int) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            with self._lock:
                entry = self._entries.setdefault(name, _Entry(name, kind))
        return entry

    def cacheable(self) -> tuple[bool, int]:
        """Whether to ask for a cached grant now, and the epoch to install it under."""
        with self._lock:
            return not (self._broken or self._disabled or self._stopping), self._epoch

    # ------------------------------------------------------------------ local operations

    def try_acquire_local(self, entry: _Entry, who: str, count: int) -> bool:
        """The uncontended case of :meth:`acquire_local`, without waiting: True when the
        cached grant gave the lock to ``who`` now; False: take the full path."""
        if _monotonic() > self._conn.cache_fresh_until:
            return False
        with entry.mutex:
            if (not entry.token or entry.recalling or entry.recalled
                    or entry.session != self._conn.session_id):
                return False
            # acquire_local's grant rule, written out here: a call more per acquire is
            # measurable on a shared counter's increment.
            if entry.holder is None:
                entry.holder, entry.depth = who, count
                return True
            if entry.kind == RLOCK and entry.holder == who:
                entry.depth += count
                return True
        return False

    def acquire_local(self, entry: _Entry, who: str, count: int, block: bool,
                      deadline: float | None) -> bool | None:
        """Acquire through the cached grant: True/False as ``acquire`` returns, or None
        when the lock is not cached here (ask the host, with whatever time is left)."""
        if not entry.token:
            return None
        conn = self._conn
        if not conn.renew_if_stale(conn.lease_seconds / 2.0):
            return None
        with entry.mutex:
            while True:
                if (not entry.token or entry.recalling or entry.session != conn.session_id
                        or _monotonic() > conn.cache_fresh_until):
                    return None
                if entry.recalled:
                    # A surrender failed earlier: retry it; the host decides from here on.
                    self._surrender_locked(entry)
                    return None
                if entry.holder is None:
                    entry.holder, entry.depth = who, count
                    return True
                if entry.kind == RLOCK and entry.holder == who:
                    entry.depth += count
                    return True
                if not block:
                    return False
                wait = _WAIT_SLICE
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        return False
                entry.waiting += 1
                try:
                    entry.cond.wait(wait)
                finally:
                    entry.waiting -= 1

    def try_release_local(self, entry: _Entry, who: str) -> bool:
        """:meth:`release_local` when the lock is cached here; False (and nothing done)
        when it is not: take the full path."""
        with entry.mutex:
            if not entry.token:
                return False
            if entry.depth == 1 and entry.holder == who and not (entry.recalled or entry.waiting):
                entry.holder, entry.depth = None, 0  # _release_cached's plain case
                return True
            return self._release_cached(entry, who)

    def release_local(self, entry: _Entry, who: str) -> bool:
        """Release through the cached grant; False when it is not cached here: then the
        caller releases at the host and calls :meth:`release_done` afterwards. Raises
        what the host would (ValueError, AssertionError)."""
        with entry.mutex:
            if not entry.token:
                entry.releasing += 1
                return False
            return self._release_cached(entry, who)

    def _release_cached(self, entry: _Entry, who: str) -> bool:
        """Release through the cached grant (caller holds ``entry.mutex``)."""
        if entry.kind == RLOCK and entry.holder != who:
            raise AssertionError("attempt to release recursive lock not owned by thread")
        if entry.holder is None:
            raise ValueError("semaphore or lock released too many times")
        entry.depth -= 1
        if entry.kind == RLOCK and entry.depth > 0:
            return True
        entry.holder, entry.depth = None, 0
        if entry.recalled:
            self._surrender_locked(entry)  # best effort; retried on the next recall
        if entry.waiting:
            entry.cond.notify()
        return True

    def release_done(self, entry: _Entry) -> None:
        with entry.mutex:
            entry.releasing -= 1

    def is_mine(self, entry: _Entry, who: str) -> bool | None:
        """Whether thread ``who`` holds the lock through the cache; None: ask the host."""
        with entry.mutex:
            if not entry.token or entry.recalled:
                return None
            return entry.holder == who

    def flush(self, entry: _Entry) -> None:
        """Give the cached grant back now (a holding thread keeps the lock as a plain
        hold), so the host knows the true state. Blocks for one RPC when cached."""
        if not entry.token:
            return
        with entry.mutex:
            if entry.token and not self._surrender_locked(entry):
                raise ConnectionError(
                    f"gilbridge: could not give the cached lock {entry.name!r} back to the host"
                )

    def install(self, entry: _Entry, token: int, session: str, who: str, count: int,
                epoch: int) -> None:
        """Record a cached grant the host just made to thread ``who``."""
        with entry.mutex:
            entry.token, entry.session = token, session
            entry.holder, entry.depth = who, count
            entry.recalled = False
            with self._lock:
                lost = epoch != self._epoch or self._stopping
            if (lost or entry.releasing or entry.recalled_upto >= token
                    or session != self._conn.session_id):
                self._surrender_locked(entry)
        self._ensure_watch()

    # ------------------------------------------------------------------ surrender

    def _surrender_locked(self, entry: _Entry) -> bool:
        """SurrenderLock for the entry's grant (caller holds ``entry.cond``); True when
        the grant is gone (surrendered, or the host had dropped it already)."""
        conn = self._conn
        grpc = conn._grpc
        request = self._pb.SurrenderLockRequest(
            target=self._common.ObjectRef(session_id=entry.session, name=entry.name),
            cache_token=entry.token,
            held=entry.holder is not None,
            owner=entry.holder or "",
            count=entry.depth,
        )
        try:
            conn.invoke(conn.sync.SurrenderLock, request, timeout=_SURRENDER_TIMEOUT)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:
                entry.recalled = True  # keep the token: the host may still count it
                return False
            # NOT_FOUND: the session ended or the lock was freed; the grant went with it.
        entry.token, entry.holder, entry.depth, entry.recalled = 0, None, 0, False
        entry.cond.notify_all()  # local waiters now queue at the host
        return True

    def _on_recall(self, name: str, token: int) -> None:
        entry = self._entries.get(name)
        if entry is None:
            return  # no proxy here: the grant was surrendered before the last one went
        entry.recalling = True
        try:
            with entry.mutex:
                if entry.token == token:
                    self._surrender_locked(entry)
                elif token > entry.token:
                    # The grant's reply has not been installed yet (or will never be).
                    entry.recalled_upto = max(entry.recalled_upto, token)
        finally:
            entry.recalling = False

    def _surrender_all(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            with entry.mutex:
                if entry.token:
                    self._surrender_locked(entry)

    def _before_detach(self, kind: int, name: str) -> None:
        """The process's last proxy of ``name`` is gone: give a cached grant back before
        the session detaches (a holding thread keeps a plain hold) and drop the entry."""
        if kind not in (LOCK, RLOCK):
            return
        entry = self._entries.get(name)
        if entry is None:
            return
        with entry.mutex:
            if entry.token and not self._surrender_locked(entry):
                return  # keep it: a recall retries
            with self._lock:
                self._entries.pop(name, None)

    # ------------------------------------------------------------------ connection events

    def _session_lost(self) -> None:
        """The session ended (lapsed lease): the host released its grants already."""
        with self._lock:
            self._epoch += 1
            # A running watch re-watches the new session; until it is live, no caching.
            self._broken = self._thread is not None
            entries = list(self._entries.values())
        for entry in entries:
            with entry.mutex:
                entry.token, entry.holder, entry.depth, entry.recalled = 0, None, 0, False
                entry.recalled_upto = 0
                entry.cond.notify_all()

    def _at_exit(self) -> None:
        """Before Goodbye (which releases every grant): stop the watch and wait for its
        thread to end (at most 1 s). A daemon thread still waking inside the cancelled
        stream when the interpreter finalizes exits holding the stream's lock, and
        collecting the stream's call object then hangs the exit (seen: ~1 exit in 300)."""
        with self._lock:
            self._stopping = True
            call = self._call
            thread = self._thread
        self._wake.set()
        if call is not None:
            try:
                call.cancel()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
            del call
        if thread is not None and thread is not threading.current_thread():
            thread.join(_EXIT_JOIN_TIMEOUT)

    def _before_fork(self) -> None:
        """No stream may be in flight across fork(): grpc's fork handlers hang the child
        now and then when one is (measured here). End the watch (the thread surrenders
        every cached grant on its way out) and wait for the thread (at most 3 s)."""
        with self._lock:
            thread = self._thread
            if thread is None or self._stopping:
                return
            self._paused = True
            call = self._call
        self._wake.set()
        if call is not None:
            try:
                call.cancel()
            except Exception:  # noqa: BLE001
                pass
        thread.join(3.0)

    def _after_fork_in_parent(self) -> None:
        with self._lock:
            if not self._paused:
                return
            self._paused = False
            self._thread = None
        self._ensure_watch()  # caching resumes once the new stream is live

    # ------------------------------------------------------------------ the watch thread

    def _ensure_watch(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopping or self._disabled:
                return
            self._thread = threading.Thread(target=self._watch, name="gilbridge-watch", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        conn = self._conn
        grpc = conn._grpc
        delay = 0.05
        while not conn.closed and os.getpid() == conn.pid:
            with self._lock:
                if self._stopping or self._paused:
                    return
                session = conn.session_id
            code = None
            try:
                self._follow(session)
            except grpc.RpcError as err:
                code = err.code()
            except Exception:  # noqa: BLE001 - never let the thread die silently
                code = None
            with self._lock:
                self._call = None
                if self._stopping or conn.closed:
                    return
                if not self._broken:
                    delay = 0.05  # that stream was live: retry soon
                self._broken = True
                self._epoch += 1
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    self._disabled = True  # an older host: it never caches anyway
            # Recalls may have been lost with the stream: give everything back.
            self._surrender_all()
            if code == grpc.StatusCode.UNIMPLEMENTED or self._paused:
                return
            if code == grpc.StatusCode.NOT_FOUND:
                # The session ended: the connection starts a new one (keep-alive thread).
                try:
                    conn.check_session()
                except Exception:  # noqa: BLE001 - retried below
                    pass
            self._wake.wait(delay)
            self._wake.clear()
            delay = min(delay * 2, _WATCH_RETRY_MAX)

    def _follow(self, session: str) -> None:
        """One Watch stream for ``session``, until it ends (raises grpc.RpcError)."""
        conn = self._conn
        guard = conn.guard
        guard.enter()
        try:
            call = conn.sessions.Watch(
                self._sessions_pb.WatchRequest(session_id=session), metadata=conn.metadata
            )
        finally:
            guard.exit()
        with self._lock:
            if self._stopping or self._paused:
                call.cancel()
            self._call = call
        event: sessions_pb2.SessionEvent
        for event in call:
            kind = event.WhichOneof("event")
            if kind == "started":
                with self._lock:
                    self._broken = False
            elif kind == "lock_recall":
                self._on_recall(event.lock_recall.name, event.lock_recall.cache_token)


def lock_cache(conn: Connection) -> LockCache:
    """The connection's lock cache (made on first use)."""
    return conn.attachment("gilbridge.lock_cache", LockCache)

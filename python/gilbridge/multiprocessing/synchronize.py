"""Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier, living in the
Bridge host, with the semantics (signatures, return values, exceptions) of
``multiprocessing.synchronize``.

Every method is one or a few RPCs (~50-100 us each), except that a Lock or RLock this
process holds *cached* (see ``_lockcache``: the host lets the last uncontended user keep
it until someone else wants it) is acquired and released locally, with no RPC. Methods
that wait (``acquire``, ``Event.wait``, ``Condition.wait``, ``Barrier.wait``) block for
at most ``timeout`` seconds, or until done when ``timeout`` is None; long waits stay
interruptible by Ctrl-C. Ownership (RLock, Condition) is per (process, thread).

Releasing a Lock from another process (allowed, as in the stdlib) while this process
caches it: the host first asks this process whether a thread holds it. If one does, the
release takes the lock from under it, exactly as the stdlib's would; that thread's own
``release()`` then raises ValueError (released too many times) unless the lock was taken
again meanwhile. If none does, the foreign release raises ValueError.
"""

from __future__ import annotations

import os
import threading
from threading import get_ident
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from .. import _connection as _connection_module
from .._connection import Connection, get_connection
from ._base import (
    BARRIER,
    BOUNDED_SEMAPHORE,
    CONDITION,
    EVENT,
    KIND_NAMES,
    LOCK,
    RLOCK,
    SEMAPHORE,
    OWNER_NAMES,
    BridgeObject,
    check_timeout,
    owner,
    wait_policy,
)
from . import _base
from ._lockcache import LockCache, _Entry, lock_cache

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Lock",
    "RLock",
    "Semaphore",
    "attach",
]

_T = TypeVar("_T")


def _pb() -> Any:
    from .._proto.bridge.v1 import synchronization_pb2

    return synchronization_pb2


# --------------------------------------------------------------------------- locks


class SemLock(BridgeObject):
    """Common base of Lock, RLock, Semaphore and BoundedSemaphore (the host's lock family)."""

    _KIND: ClassVar[int]

    def __init__(self, value: int = 1, *, name: str | None = None, create: bool = True) -> None:
        kind = self._KIND
        if kind in (SEMAPHORE, BOUNDED_SEMAPHORE):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"semaphore value must be an int, not {type(value).__name__}")
            if value < 0:
                raise ValueError("semaphore initial value must be >= 0")
        pb = _pb()

        def rpc(conn: Connection, obj_name: str, mode: int) -> Any:
            return conn.call(
                conn.sync.CreateLock,
                pb.CreateLockRequest(
                    session_id=conn.session_id, name=obj_name, mode=mode, kind=kind,
                    initial_value=value if kind in (SEMAPHORE, BOUNDED_SEMAPHORE) else 0,
                ),
            )

        conn, reply, obj_name = self._open(kind, name, create, rpc)
        try:
            if reply.kind != kind:
                raise TypeError(
                    f"object {obj_name!r} is a {KIND_NAMES.get(reply.kind, reply.kind)}, "
                    f"not a {KIND_NAMES[kind]}"
                )
        except BaseException:
            conn.drop_ref(kind, obj_name)
            raise
        self._init_local()
        self._bind(conn, kind, obj_name)

    @classmethod
    def _wrap(cls: type[_T], conn: Connection, name: str) -> _T:
        """A proxy for an object known to exist (no RPC); the session attaches on its
        first call."""
        self = cls.__new__(cls)
        assert isinstance(self, SemLock)
        conn.add_ref(self._KIND, name)
        self._init_local()
        self._bind(conn, self._KIND, name)
        return self

    def _init_local(self) -> None:
        pass

    def _cache_entry(self, conn: Connection) -> tuple[LockCache, _Entry]:
        """This lock's entry in the connection's cache, remembered per connection (a
        fork or a new host gives a new one)."""
        memo = self.__dict__.get("_cache_memo")
        if memo is not None and memo[0] is conn:
            return memo[1], memo[2]
        cache = lock_cache(conn)
        entry = cache.entry(self._name, self._kind)
        self._cache_memo = (conn, cache, entry)
        return cache, entry

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Acquire; returns True on success. ``block=False`` never waits; otherwise waits
        at most ``timeout`` seconds (forever when None) and returns False on timeout."""
        # The uncontended cached case, in as few calls as Python allows: a shared
        # counter's increment is mostly this.
        memo = self.__dict__.get("_cache_memo")
        if memo is not None and timeout is None and memo[0] is _connection_module._connection:
            entry = memo[2]
            if entry.token and memo[1].try_acquire_local(entry, str(get_ident()), 1):
                self._acquired(1)
                return True
        return self._acquire(block, timeout, 1)

    def _acquire(self, block: bool, timeout: object, count: int) -> bool:
        conn = get_connection()
        who = owner()
        cacheable, epoch = False, 0
        if self._kind in (LOCK, RLOCK):
            seconds = check_timeout(timeout) if block else None
            cache, entry = self._cache_entry(conn)
            if entry.token and cache.try_acquire_local(entry, who, count):
                self._acquired(count)
                return True
            deadline = None if seconds is None else time.monotonic() + seconds
            local = cache.acquire_local(entry, who, count, block, deadline)
            if local is not None:
                if local:
                    self._acquired(count)
                return local
            if deadline is not None:
                timeout = max(0.0, deadline - time.monotonic())  # time spent waiting here counts
            cacheable, epoch = cache.cacheable()
        policy, long_wait = wait_policy(block, timeout)
        pb = _pb()
        if long_wait:
            # Uncontended fast path: one plain call instead of a polled future.
            from .._proto.bridge.v1 import common_pb2

            fast = pb.AcquireRequest(
                target=self._ref(conn), owner=who, wait=common_pb2.WaitPolicy(block=False),
                count=count, cacheable=cacheable,
            )
            reply = conn.call(conn.sync.Acquire, fast)
            if reply.acquired:
                self._granted(conn, fast, reply, who, count, epoch)
                return True
        request = pb.AcquireRequest(
            target=self._ref(conn), owner=who, wait=policy, count=count, cacheable=cacheable
        )

        def undo(future: Any) -> None:
            if future.done() and not future.cancelled() and future.result().acquired:
                self.release()

        reply = conn.call(conn.sync.Acquire, request, long_wait=long_wait, on_interrupt=undo)
        if reply.acquired:
            self._granted(conn, request, reply, who, count, epoch)
        return bool(reply.acquired)

    def _granted(self, conn: Connection, request: Any, reply: Any, who: str, count: int,
                 epoch: int) -> None:
        if reply.cache_token:
            cache = lock_cache(conn)
            cache.install(
                cache.entry(self._name, self._kind), int(reply.cache_token),
                str(request.target.session_id), who, count, epoch,
            )
        self._acquired(count)

    def _acquired(self, count: int) -> None:
        pass

    def release(self) -> None:
        """Release (never blocks, except for one RPC when the lock is not cached here).
        ValueError when a Lock/BoundedSemaphore is released too many times;
        AssertionError when an RLock is released by a non-owner."""
        memo = self.__dict__.get("_cache_memo")
        if memo is not None and memo[0] is _connection_module._connection:
            entry = memo[2]
            if entry.token and memo[1].try_release_local(entry, str(get_ident())):
                self._released()
                return
        conn = get_connection()
        who = owner()
        if self._kind in (LOCK, RLOCK):
            cache, entry = self._cache_entry(conn)
            if cache.release_local(entry, who):
                self._released()
                return
            try:
                conn.call(conn.sync.Release, _pb().ReleaseRequest(target=self._ref(conn), owner=who))
            finally:
                cache.release_done(entry)
        else:
            conn.call(conn.sync.Release, _pb().ReleaseRequest(target=self._ref(conn), owner=who))
        self._released()

    def _released(self) -> None:
        pass

    def _flush_cache(self) -> None:
        """Hand a cached grant back to the host (a holding thread keeps the lock), so that
        host-side checks (Condition wait/notify, GetLockState) see the true state. One RPC
        when cached here, else none."""
        if self._kind in (LOCK, RLOCK):
            cache = lock_cache(get_connection())
            cache.flush(cache.entry(self._name, self._kind))

    def _state(self) -> Any:
        self._flush_cache()
        conn = get_connection()
        return conn.call(
            conn.sync.GetLockState, _pb().LockStateRequest(target=self._ref(conn), owner=owner())
        )

    def _is_mine(self) -> bool:
        if self._kind in (LOCK, RLOCK):
            cache = lock_cache(get_connection())
            mine = cache.is_mine(cache.entry(self._name, self._kind), owner())
            if mine is not None:
                return mine
        return bool(self._state().owned_by_caller)

    # ``with lock:`` is acquire() itself: one Python call less on the cached fast path.
    __enter__ = acquire

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Lock(SemLock):
    """A non-recursive lock (``multiprocessing.Lock``): any process/thread may release it."""

    _KIND = LOCK

    def __init__(self, *, name: str | None = None, create: bool = True) -> None:
        super().__init__(1, name=name, create=create)


class RLock(SemLock):
    """A recursive lock owned by one (process, thread); only the owner may release it."""

    _KIND = RLOCK

    def __init__(self, *, name: str | None = None, create: bool = True) -> None:
        super().__init__(1, name=name, create=create)

    # This process's knowledge of each thread's recursion depth, taken through this
    # proxy (by thread ident, as the host tells owners apart). Lets a synchronized Value
    # skip its implicit acquire when the thread already owns the lock. Falls back to a
    # real acquire whenever unsure. A dict, not a threading.local: the shared counter's
    # increment reads and writes it on every access.
    def _init_local(self) -> None:
        self._depths: dict[int, int] = {}
        self._depths_generation = _base.fork_generation

    def _thread_depths(self) -> dict[int, int]:
        if self._depths_generation != _base.fork_generation:
            # A forked child holds nothing its parent's threads held.
            self._depths = {}
            self._depths_generation = _base.fork_generation
        return self._depths

    def _depth_here(self) -> int:
        if self._depths_generation != _base.fork_generation:
            return 0
        return self._depths.get(get_ident(), 0)

    def _set_depth(self, depth: int) -> None:
        depths = self._thread_depths()
        if depth > 0:
            depths[get_ident()] = depth
        else:
            depths.pop(get_ident(), None)

    def _acquired(self, count: int) -> None:
        depths = self._depths if self._depths_generation == _base.fork_generation \
            else self._thread_depths()
        ident = get_ident()
        depths[ident] = depths.get(ident, 0) + count

    def _released(self) -> None:
        depths = self._depths if self._depths_generation == _base.fork_generation \
            else self._thread_depths()
        ident = get_ident()
        depth = depths.get(ident, 0)
        if depth > 1:
            depths[ident] = depth - 1
        elif depth:
            del depths[ident]

    # SemLock's cached fast paths with the depth bookkeeping inlined: a synchronized
    # Value's ``with v.get_lock(): v.value += 1`` is mostly these two.
    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Acquire; returns True on success. ``block=False`` never waits; otherwise waits
        at most ``timeout`` seconds (forever when None) and returns False on timeout.
        Re-entrant for the owning thread."""
        memo = self.__dict__.get("_cache_memo")
        if memo is not None and timeout is None and memo[0] is _connection_module._connection:
            entry = memo[2]
            ident = get_ident()
            if entry.token and memo[1].try_acquire_local(entry, OWNER_NAMES.get(ident) or owner(), 1):
                depths = self._depths if self._depths_generation == _base.fork_generation \
                    else self._thread_depths()
                depths[ident] = depths.get(ident, 0) + 1
                return True
        return self._acquire(block, timeout, 1)

    __enter__ = acquire

    def release(self) -> None:
        """Release one level (never blocks, except for one RPC when the lock is not
        cached here). AssertionError when this thread does not own it."""
        memo = self.__dict__.get("_cache_memo")
        if memo is not None and memo[0] is _connection_module._connection:
            entry = memo[2]
            ident = get_ident()
            if entry.token and memo[1].try_release_local(entry, OWNER_NAMES.get(ident) or owner()):
                depths = self._depths if self._depths_generation == _base.fork_generation \
                    else self._thread_depths()
                depth = depths.get(ident, 0)
                if depth > 1:
                    depths[ident] = depth - 1
                elif depth:
                    del depths[ident]
                return
        SemLock.release(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # release()'s cached fast path, written out again: leaving ``with`` through one
        # Python call instead of two is ~0.1 µs of a shared counter's ~1.3 µs increment.
        memo = self.__dict__.get("_cache_memo")
        if memo is not None and memo[0] is _connection_module._connection:
            entry = memo[2]
            ident = get_ident()
            if entry.token and memo[1].try_release_local(entry, OWNER_NAMES.get(ident) or owner()):
                depths = self._depths if self._depths_generation == _base.fork_generation \
                    else self._thread_depths()
                depth = depths.get(ident, 0)
                if depth > 1:
                    depths[ident] = depth - 1
                elif depth:
                    del depths[ident]
                return
        SemLock.release(self)


class Semaphore(SemLock):
    """A counting semaphore (``multiprocessing.Semaphore``)."""

    _KIND = SEMAPHORE

    def __init__(self, value: int = 1, *, name: str | None = None, create: bool = True) -> None:
        super().__init__(value, name=name, create=create)

    def get_value(self) -> int:
        """The current counter value (one RPC)."""
        return int(self._state().value)

    def __repr__(self) -> str:
        try:
            value: object = self.get_value()
        except Exception:  # noqa: BLE001
            value = "unknown"
        return f"<gilbridge.{KIND_NAMES[self._KIND]}(value={value}) name={self._name!r}>"


class BoundedSemaphore(Semaphore):
    """A semaphore whose value may not exceed its initial value (ValueError on release)."""

    _KIND = BOUNDED_SEMAPHORE


_LOCK_CLASSES: dict[int, type[SemLock]] = {
    LOCK: Lock, RLOCK: RLock, SEMAPHORE: Semaphore, BOUNDED_SEMAPHORE: BoundedSemaphore,
}


# --------------------------------------------------------------------------- event


class Event(BridgeObject):
    """An event flag (``multiprocessing.Event``)."""

    def __init__(self, *, name: str | None = None, create: bool = True) -> None:
        pb = _pb()

        def rpc(conn: Connection, obj_name: str, mode: int) -> Any:
            return conn.call(
                conn.sync.CreateEvent,
                pb.CreateEventRequest(session_id=conn.session_id, name=obj_name, mode=mode),
            )

        conn, _reply, obj_name = self._open(EVENT, name, create, rpc)
        self._bind(conn, EVENT, obj_name)

    def _simple(self, method: str) -> bool:
        conn = get_connection()
        reply = conn.call(getattr(conn.sync, method), _pb().EventRequest(target=self._ref(conn)))
        return bool(reply.is_set)

    def is_set(self) -> bool:
        return self._simple("IsEventSet")

    def set(self) -> None:
        """Set the flag, waking every waiter."""
        self._simple("SetEvent")

    def clear(self) -> None:
        self._simple("ClearEvent")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set, at most ``timeout`` seconds (forever when None).
        Returns the flag: False only on timeout."""
        policy, long_wait = wait_policy(True, timeout)
        conn = get_connection()
        reply = conn.call(
            conn.sync.WaitEvent,
            _pb().WaitEventRequest(target=self._ref(conn), wait=policy),
            long_wait=long_wait,
        )
        return bool(reply.is_set)

    def __repr__(self) -> str:
        try:
            state: object = "set" if self.is_set() else "unset"
        except Exception:  # noqa: BLE001
            state = "unknown"
        # The stdlib's form (its tests match "<Event at 0x... unset>"), with the host name.
        return f"<{type(self).__qualname__} at {id(self):#x} name={self._name!r} {state}>"


# --------------------------------------------------------------------------- condition


class LockDelegate:
    """``acquire``/``release`` and the context manager, forwarded to ``self._lock``
    (Condition and synchronized shared values guard themselves with a Bridge lock)."""

    _lock: Lock | RLock

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Acquire the underlying lock (see Lock.acquire: blocks at most ``timeout`` s)."""
        return self._lock.acquire(block, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.__exit__(exc_type, exc, tb)


class _UncountedSemaphore:
    """Stands in for the stdlib Condition's internal semaphores (``_sleeping_count``,
    ``_woken_count``, ``_wait_semaphore``): a Bridge Condition keeps its waiters in the
    host, so their counts are not read here. ``get_value()`` raises NotImplementedError,
    as the stdlib's does where the platform has no ``sem_getvalue`` (macOS)."""

    __slots__ = ()

    def get_value(self) -> int:
        raise NotImplementedError("a Bridge Condition keeps its waiters in the host")


class Condition(LockDelegate, BridgeObject):
    """A condition variable (``multiprocessing.Condition``) over a bridge Lock or RLock
    (a new RLock when ``lock`` is None)."""

    _sleeping_count = _woken_count = _wait_semaphore = _UncountedSemaphore()

    def __init__(
        self,
        lock: Lock | RLock | None = None,
        *,
        name: str | None = None,
        create: bool = True,
    ) -> None:
        if lock is not None and not isinstance(lock, (Lock, RLock)):
            raise TypeError(
                f"Condition lock must be a gilbridge Lock or RLock, not {type(lock).__name__}"
            )
        pb = _pb()

        def rpc(conn: Connection, obj_name: str, mode: int) -> Any:
            request = pb.CreateConditionRequest(session_id=conn.session_id, name=obj_name, mode=mode)
            if lock is not None:
                request.lock_name = lock.name
                request.lock_kind = lock._kind
            return conn.call(conn.sync.CreateCondition, request)

        conn, reply, obj_name = self._open(CONDITION, name, create, rpc)
        try:
            if lock is not None and reply.lock_name == lock.name:
                self._lock: Lock | RLock = lock
            else:
                lock_cls = RLock if reply.lock_kind == RLOCK else Lock
                self._lock = lock_cls._wrap(conn, reply.lock_name)
        except BaseException:
            conn.drop_ref(CONDITION, obj_name)
            raise
        self._bind(conn, CONDITION, obj_name)

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock (all recursion levels), block until notified or ``timeout``
        seconds pass (forever when None), then re-acquire the lock (waiting as long as it
        takes). Returns False on timeout. AssertionError if the caller does not own the lock."""
        policy, long_wait = wait_policy(True, timeout)
        pb = _pb()
        conn = get_connection()
        lock = self._lock
        outcome: list[int] = []

        def reacquire_after_interrupt(future: Any) -> None:
            if future.done() and not future.cancelled():
                outcome.append(max(int(future.result().saved_count), 1))
            elif not lock._is_mine():
                outcome.append(1)  # best effort: the recursion depth is unknown
            if outcome:
                lock._acquire(True, None, outcome[0])

        lock._flush_cache()  # the host checks ownership and releases the lock itself
        try:
            reply = conn.call(
                conn.sync.WaitCondition,
                pb.WaitConditionRequest(target=self._ref(conn), owner=owner(), wait=policy),
                long_wait=long_wait,
                on_interrupt=reacquire_after_interrupt,
                retry=False,  # the lock went with the old session: do not wait again
            )
        except ConnectionResetError:
            # This process's session ended during the wait (it was stalled past its
            # lease) and the host released the lock: take it again (best effort: one
            # level) so the caller's `with` block stays balanced, then report it.
            if isinstance(lock, RLock):
                lock._set_depth(0)
            lock._acquire(True, None, 1)
            raise
        saved = max(int(reply.saved_count), 1)
        if isinstance(lock, RLock):
            lock._set_depth(0)
        lock._acquire(True, None, saved)
        return bool(reply.notified)

    def wait_for(self, predicate: Callable[[], _T], timeout: float | None = None) -> _T:
        """Wait until ``predicate()`` is true (checked with the lock held), at most
        ``timeout`` seconds in total. Returns the last value of the predicate."""
        endtime: float | None = None
        waittime = check_timeout(timeout)
        result = predicate()
        while not result:
            if waittime is not None:
                if endtime is None:
                    endtime = time.monotonic() + waittime
                else:
                    waittime = endtime - time.monotonic()
                    if waittime <= 0:
                        break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiters (never blocks). AssertionError if the lock is not owned."""
        if n <= 0:
            if not self._lock._is_mine():
                raise AssertionError("lock is not owned")
            return
        self._notify(n)

    def notify_all(self) -> None:
        """Wake every waiter. AssertionError if the lock is not owned."""
        self._notify(0)

    def _notify(self, n: int) -> None:
        self._lock._flush_cache()  # the host checks that the caller owns the lock
        conn = get_connection()
        conn.call(conn.sync.Notify, _pb().NotifyRequest(target=self._ref(conn), owner=owner(), n=n))

    def _reduce_extra(self) -> dict[str, Any]:
        return {"lock_name": self._lock.name, "lock_kind": self._lock._kind}


# --------------------------------------------------------------------------- barrier


class Barrier(BridgeObject):
    """A barrier for ``parties`` parties (``multiprocessing.Barrier``). ``action`` runs in
    the last party to arrive, before the others are released; ``timeout`` is the default
    for ``wait``."""

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        name: str | None = None,
        create: bool = True,
    ) -> None:
        if not isinstance(parties, int) or isinstance(parties, bool):
            raise TypeError(f"parties must be an int, not {type(parties).__name__}")
        if action is not None and not callable(action):
            raise TypeError("action must be callable or None")
        self._timeout = check_timeout(timeout)
        self._action = action
        pb = _pb()

        def rpc(conn: Connection, obj_name: str, mode: int) -> Any:
            return conn.call(
                conn.sync.CreateBarrier,
                pb.CreateBarrierRequest(
                    session_id=conn.session_id, name=obj_name, mode=mode, parties=parties
                ),
            )

        conn, reply, obj_name = self._open(BARRIER, name, create, rpc)
        self._parties = int(reply.parties)
        self._bind(conn, BARRIER, obj_name)

    def wait(self, timeout: float | None = None) -> int:
        """Wait until all parties arrive, at most ``timeout`` seconds (the barrier's default
        when None; forever when both are None). Returns this party's arrival index
        (0 .. parties-1). Raises threading.BrokenBarrierError when the barrier is or
        becomes broken (abort, reset, a party's timeout, a failing action)."""
        if timeout is None:
            timeout = self._timeout
        policy, long_wait = wait_policy(True, timeout)
        pb = _pb()
        conn = get_connection()
        reply = conn.call(
            conn.sync.WaitBarrier,
            pb.WaitBarrierRequest(
                target=self._ref(conn), wait=policy, has_action=self._action is not None
            ),
            long_wait=long_wait,
        )
        if reply.run_action:
            assert self._action is not None
            try:
                self._action()
            except BaseException:
                self._complete(reply.generation, False)
                raise
            self._complete(reply.generation, True)
        return int(reply.index)

    def _complete(self, generation: int, succeeded: bool) -> None:
        conn = get_connection()
        conn.call(
            conn.sync.CompleteBarrierAction,
            _pb().CompleteBarrierActionRequest(
                target=self._ref(conn), generation=generation, succeeded=succeeded
            ),
        )

    def _state_call(self, method: str) -> Any:
        conn = get_connection()
        return conn.call(getattr(conn.sync, method), _pb().BarrierRequest(target=self._ref(conn)))

    def reset(self) -> None:
        """Return the barrier to its initial state; current waiters get BrokenBarrierError."""
        self._state_call("ResetBarrier")

    def abort(self) -> None:
        """Put the barrier into the broken state (current and future waits fail)."""
        self._state_call("AbortBarrier")

    @property
    def parties(self) -> int:
        return self._parties

    @property
    def n_waiting(self) -> int:
        """Parties currently waiting (one RPC)."""
        return int(self._state_call("GetBarrierState").n_waiting)

    @property
    def broken(self) -> bool:
        """Whether the barrier is broken (one RPC)."""
        return bool(self._state_call("GetBarrierState").broken)

    def _reduce_extra(self) -> dict[str, Any]:
        return {"action": self._action, "timeout": self._timeout}


# --------------------------------------------------------------------------- unpickling


def attach(kind: int, name: str, extra: dict[str, Any]) -> BridgeObject:
    """Rebuild a pickled proxy in this process (attach to the existing host object)."""
    if kind in _LOCK_CLASSES:
        cls = _LOCK_CLASSES[kind]
        if kind in (SEMAPHORE, BOUNDED_SEMAPHORE):
            return cls(0, name=name, create=False)
        return cls(name=name, create=False)  # type: ignore[call-arg]
    if kind == EVENT:
        return Event(name=name, create=False)
    if kind == CONDITION:
        return Condition(name=name, create=False)
    if kind == BARRIER:
        return Barrier(1, extra.get("action"), extra.get("timeout"), name=name, create=False)
    raise ValueError(f"unknown synchronization kind {kind}")

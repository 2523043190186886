"""What every bridge proxy shares: naming, reference counting, pickling, wait policies.

A proxy is a small local handle on an object that lives in the host. Pickling a proxy
(``__reduce__``) yields ``rebuild(kind, name, extra)``; unpickling it in any process
attaches that process's session to the same host object (OpenMode.ATTACH). Each process
counts its live proxies per (kind, name); when the last one is collected the connection
sends Detach.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
import types
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._connection import (
    LONG_WAIT_THRESHOLD,
    Connection,
    get_connection,
    release_ref_from_finalizer,
)

if TYPE_CHECKING:  # pragma: no cover
    from .._proto.bridge.v1 import common_pb2

__all__ = [
    "BridgeObject",
    "check_timeout",
    "owner",
    "rebuild",
    "stdlib_fallback",
    "wait_policy",
]

_Reply = TypeVar("_Reply")


def stdlib_fallback(module_name: str, stdlib_module: types.ModuleType) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that answers with the stdlib module's own names
    what the gilbridge module does not define: under ``python -m gilbridge`` the gilbridge
    module stands in ``sys.modules`` for the stdlib's, and code (pickle among it) looks
    the stdlib's names up there."""

    def __getattr__(name: str) -> Any:
        try:
            return getattr(stdlib_module, name)
        except AttributeError:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}") from None

    # How _pickling finds the stdlib module behind a stand-in.
    __getattr__.stdlib_module = stdlib_module  # type: ignore[attr-defined]
    return __getattr__

# ObjectKind values (protos/bridge/v1/common.proto), spelled out so that importing this
# module does not import protobuf.
LOCK, RLOCK, SEMAPHORE, BOUNDED_SEMAPHORE = 1, 2, 3, 4
EVENT, CONDITION, BARRIER = 5, 6, 7
QUEUE, JOINABLE_QUEUE, SIMPLE_QUEUE = 8, 9, 10
VALUE = 11
KIND_NAMES = {
    LOCK: "Lock", RLOCK: "RLock", SEMAPHORE: "Semaphore",
    BOUNDED_SEMAPHORE: "BoundedSemaphore", EVENT: "Event", CONDITION: "Condition",
    BARRIER: "Barrier", QUEUE: "Queue", JOINABLE_QUEUE: "JoinableQueue",
    SIMPLE_QUEUE: "SimpleQueue", VALUE: "Value",
}

# OpenMode values.
CREATE_OR_ATTACH, ATTACH, CREATE = 0, 1, 2


# How many forks this process's line has been through (incremented in each child):
# per-thread state recorded under another generation belongs to the parent. Cheaper than
# os.getpid(), a system call, on every lock operation.
fork_generation = 0


def _count_fork() -> None:
    global fork_generation
    fork_generation += 1


os.register_at_fork(after_in_child=_count_fork)


# Thread ident -> its owner string, so the cached lock paths skip str() per call.
OWNER_NAMES: dict[int, str] = {}


def owner() -> str:
    """The ``owner`` string the host uses to tell this process's threads apart."""
    ident = threading.get_ident()
    name = OWNER_NAMES.get(ident)
    if name is None:
        name = OWNER_NAMES.setdefault(ident, str(ident))
    return name


def check_timeout(timeout: object) -> float | None:
    """Validate a user timeout before any RPC.

    None (or +inf) means "no timeout". Negative or NaN raises
    ``ValueError("'timeout' must be a non-negative number")`` -- a deliberate deviation
    from the stdlib's multiprocessing, which silently treats a negative timeout as 0.
    Anything that is not a real number raises TypeError.
    """
    if timeout is None:
        return None
    if not isinstance(timeout, numbers.Real):
        raise TypeError(
            f"'timeout' must be a number or None, not {type(timeout).__name__}"
        )
    value = float(timeout)
    if math.isnan(value) or value < 0:
        raise ValueError("'timeout' must be a non-negative number")
    if math.isinf(value):
        return None
    return value


def wait_policy(block: bool, timeout: object) -> tuple[common_pb2.WaitPolicy, bool]:
    """The WaitPolicy for (block, timeout) and whether the call may wait long
    (block with no timeout or a timeout above 0.5 s), i.e. must be interruptible.
    The timeout is only checked when ``block`` is true, as the stdlib does."""
    from .._proto.bridge.v1 import common_pb2

    if not block:
        return common_pb2.WaitPolicy(block=False), False
    seconds = check_timeout(timeout)
    if seconds is None:
        return common_pb2.WaitPolicy(block=True), True
    return (
        common_pb2.WaitPolicy(block=True, timeout_seconds=seconds),
        seconds > LONG_WAIT_THRESHOLD,
    )


def check_name(name: object, create: bool) -> str | None:
    """Client-side checks of the ``name``/``create`` keywords (the host validates the
    characters: letters, digits and ``_ . - : /``, 1..200 long)."""
    if name is None:
        if not create:
            raise ValueError("create=False needs the name of an existing object")
        return None
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or None, not {type(name).__name__}")
    if not name:
        raise ValueError("object name must not be empty (use name=None for an anonymous object)")
    return name


class BridgeObject:
    """Base of every proxy: a (kind, name) in the host plus this process's reference."""

    _kind: int
    _name: str
    _finalizer: weakref.finalize

    @property
    def name(self) -> str:
        """The host-side name (generated by the host, starting with '~', for anonymous
        objects). Pass it as ``name=..., create=False`` to attach from another process."""
        return self._name

    @staticmethod
    def _open(
        kind: int,
        name: str | None,
        create: bool,
        rpc: Callable[[Connection, str, int], _Reply],
    ) -> tuple[Connection, _Reply, str]:
        """Run a Create* call for ``name`` (CREATE_OR_ATTACH, or ATTACH when not
        ``create``; anonymous when name is None) and count this process's reference.
        Returns (connection, reply, name)."""
        name = check_name(name, create)
        conn = get_connection()
        if name is None:
            reply = rpc(conn, "", CREATE_OR_ATTACH)
            name = str(reply.name)  # type: ignore[attr-defined]
            conn.add_ref(kind, name)
            return conn, reply, name
        # Count the reference before the call, so a concurrent Detach of an older proxy
        # of the same object cannot slip in between our attach and our count.
        conn.add_ref(kind, name)
        try:
            reply = rpc(conn, name, CREATE_OR_ATTACH if create else ATTACH)
        except BaseException:
            conn.drop_ref(kind, name)
            raise
        return conn, reply, name

    def _bind(self, conn: Connection, kind: int, name: str, *extra_args: Any,
              callback: Callable[..., None] = release_ref_from_finalizer) -> None:
        """Attach this proxy to (kind, name), whose reference is already counted. When
        the proxy is collected, ``callback(*extra_args, pid, kind, name)`` runs (by
        default: count the reference down, Detach when it was the last)."""
        self._kind = kind
        self._name = name
        fin = weakref.finalize(self, callback, *extra_args, conn.pid, kind, name)
        fin.atexit = False
        self._finalizer = fin

    def _ref(self, conn: Connection) -> Any:
        from .._proto.bridge.v1 import common_pb2

        return common_pb2.ObjectRef(session_id=conn.session_id, name=self._name)

    def _reduce_extra(self) -> dict[str, Any]:
        return {}

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[int, str, dict[str, Any]]]:
        return rebuild, (self._kind, self._name, self._reduce_extra())

    def __repr__(self) -> str:
        return f"<gilbridge.{KIND_NAMES.get(self._kind, type(self).__name__)} name={self._name!r}>"


def rebuild(kind: int, name: str, extra: dict[str, Any]) -> BridgeObject:
    """Unpickling: attach to the host object (kind, name) from this process."""
    if kind in (LOCK, RLOCK, SEMAPHORE, BOUNDED_SEMAPHORE, EVENT, CONDITION, BARRIER):
        from . import synchronize

        return synchronize.attach(kind, name, extra)
    if kind in (QUEUE, JOINABLE_QUEUE, SIMPLE_QUEUE):
        from . import queues

        return queues.attach(kind, name, extra)
    if kind == VALUE:
        from . import sharedctypes

        return sharedctypes.attach(name, extra)
    raise ValueError(f"unknown object kind {kind}")

"""``multiprocessing.managers`` for :mod:`gilbridge.multiprocessing`.

:class:`SyncManager` is the stdlib's, with two changes:

* its server process is a Bridge ``Process`` (it runs on a Bridge worker), so ``dict``,
  ``list``, ``Namespace``, ``Value``, ``Array``, ``Pool`` and the types a user registers
  with ``register()`` live in a worker that serves them, as the stdlib's live in a child;
* ``Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Condition``, ``Event``,
  ``Barrier``, ``Queue`` and ``JoinableQueue`` are Bridge objects in the host (no proxy,
  no round trip through the server): they pickle to any process and outlive the
  manager while referenced. ``Queue()`` is a Bridge ``JoinableQueue``, as the stdlib's
  manager queue (a ``queue.Queue``) has ``task_done``/``join`` too.

Every other name is the stdlib module's (``BaseManager``, ``BaseProxy``, ``Namespace``,
``Token``, ``RemoteError``...), so ``BaseManager`` subclasses keep working (their servers
start with the context they are given; the stdlib's default when none).
"""

from __future__ import annotations

import functools
import multiprocessing.managers as _stdlib
from multiprocessing.managers import *  # noqa: F403
from typing import Any

from ._base import stdlib_fallback

__all__ = list(_stdlib.__all__)


class SyncManager(_stdlib.SyncManager):
    """The stdlib's ``SyncManager`` whose server runs on a Bridge worker and whose
    synchronization objects and queues are Bridge host objects (see the module doc).
    ``start()`` blocks until the server answers (a Bridge ``Process`` start, ~0.1 s)."""

    def __init__(self, address: Any = None, authkey: bytes | None = None,
                 serializer: str = "pickle", ctx: Any = None, *,
                 shutdown_timeout: float = 1.0) -> None:
        if ctx is None:
            from ._context import default_context

            ctx = default_context
        super().__init__(address, authkey, serializer, ctx, shutdown_timeout=shutdown_timeout)

    def _started(self) -> Any:
        """The manager's context once it runs: as the stdlib's ``_create``, a manager not
        started (or shut down) creates nothing."""
        if self._state.value != _stdlib.State.STARTED:
            raise AssertionError("server not yet started")  # the stdlib's assert
        return self._ctx

    def Lock(self) -> Any:  # type: ignore[override]
        return self._started().Lock()

    def RLock(self) -> Any:  # type: ignore[override]
        return self._started().RLock()

    def Semaphore(self, value: int = 1) -> Any:  # type: ignore[override]
        return self._started().Semaphore(value)

    def BoundedSemaphore(self, value: int = 1) -> Any:  # type: ignore[override]
        return self._started().BoundedSemaphore(value)

    def Condition(self, lock: Any = None) -> Any:  # type: ignore[override]
        return self._started().Condition(lock)

    def Event(self) -> Any:  # type: ignore[override]
        """A Bridge ``Event`` whose repr is the stdlib manager's ``EventProxy`` form."""
        self._started()
        return _event_proxy_class()()

    def Barrier(self, parties: int, action: Any = None, timeout: float | None = None) -> Any:  # type: ignore[override]
        return self._started().Barrier(parties, action, timeout)

    def Queue(self, maxsize: int = 0) -> Any:  # type: ignore[override]
        return self._started().JoinableQueue(maxsize)

    def JoinableQueue(self, maxsize: int = 0) -> Any:  # type: ignore[override]
        return self._started().JoinableQueue(maxsize)


@functools.cache
def _event_proxy_class() -> type:
    """A manager's Event: a Bridge ``Event`` (no server round trip) that prints as the
    stdlib's proxy does (``<EventProxy object, typeid 'Event' at 0x...>``), since a
    manager's objects print without their state there. It pickles as a plain ``Event``."""
    from .synchronize import Event

    class ManagedEvent(Event):
        def __repr__(self) -> str:
            return f"<EventProxy object, typeid 'Event' at {id(self):#x}>"

    return ManagedEvent


__getattr__ = stdlib_fallback(__name__, _stdlib)

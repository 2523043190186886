"""The bridge context, modelled on CPython's ``multiprocessing.context``.

The public names of :mod:`gilbridge.multiprocessing` are bound from
:data:`default_context`; its factory methods import their implementation lazily, so
importing the package costs no grpc/protobuf import until the first object is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from .queues import JoinableQueue, Queue, SimpleQueue
    from .sharedctypes import RawArray, RawValue, Synchronized, SynchronizedArray
    from .synchronize import Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore

__all__ = ["BridgeContext", "default_context"]


class BridgeContext:
    """Factories for objects that live in the Bridge host.

    Every factory takes the stdlib's arguments plus keyword-only ``name`` (a named
    object any client can attach to; None: a new anonymous object) and ``create``
    (False: attach to an existing named object, FileNotFoundError if there is none).
    """

    def cpu_count(self) -> int:
        """Logical processors of the host machine (HostInfo.cpu_count)."""
        from .._connection import get_connection

        return int(get_connection().host_info.cpu_count)

    def Lock(self, *, name: str | None = None, create: bool = True) -> Lock:
        """A non-recursive lock."""
        from .synchronize import Lock

        return Lock(name=name, create=create)

    def RLock(self, *, name: str | None = None, create: bool = True) -> RLock:
        """A recursive lock."""
        from .synchronize import RLock

        return RLock(name=name, create=create)

    def Semaphore(self, value: int = 1, *, name: str | None = None, create: bool = True) -> Semaphore:
        """A counting semaphore."""
        from .synchronize import Semaphore

        return Semaphore(value, name=name, create=create)

    def BoundedSemaphore(
        self, value: int = 1, *, name: str | None = None, create: bool = True
    ) -> BoundedSemaphore:
        """A bounded semaphore."""
        from .synchronize import BoundedSemaphore

        return BoundedSemaphore(value, name=name, create=create)

    def Event(self, *, name: str | None = None, create: bool = True) -> Event:
        """An event."""
        from .synchronize import Event

        return Event(name=name, create=create)

    def Condition(
        self, lock: Lock | RLock | None = None, *, name: str | None = None, create: bool = True
    ) -> Condition:
        """A condition variable (over a new RLock when ``lock`` is None)."""
        from .synchronize import Condition

        return Condition(lock, name=name, create=create)

    def Barrier(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        name: str | None = None,
        create: bool = True,
    ) -> Barrier:
        """A barrier."""
        from .synchronize import Barrier

        return Barrier(parties, action, timeout, name=name, create=create)

    def Queue(self, maxsize: int = 0, *, name: str | None = None, create: bool = True) -> Queue:
        """A FIFO queue (unbounded when ``maxsize <= 0``)."""
        from .queues import Queue

        return Queue(maxsize, name=name, create=create)

    def JoinableQueue(
        self, maxsize: int = 0, *, name: str | None = None, create: bool = True
    ) -> JoinableQueue:
        """A queue with task_done() and join()."""
        from .queues import JoinableQueue

        return JoinableQueue(maxsize, name=name, create=create)

    def SimpleQueue(self, *, name: str | None = None, create: bool = True) -> SimpleQueue:
        """A simplified queue (get/put/empty/close)."""
        from .queues import SimpleQueue

        return SimpleQueue(name=name, create=create)

    def Value(
        self, typecode_or_type: Any, *args: Any, lock: Any = True,
        name: str | None = None, create: bool = True,
    ) -> Synchronized | RawValue:
        """A shared scalar (a synchronized wrapper unless ``lock=False``)."""
        from .sharedctypes import Value

        return Value(typecode_or_type, *args, lock=lock, name=name, create=create)

    def Array(
        self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True,
        name: str | None = None, create: bool = True,
    ) -> SynchronizedArray | RawArray:
        """A shared array (a synchronized wrapper unless ``lock=False``)."""
        from .sharedctypes import Array

        return Array(typecode_or_type, size_or_initializer, lock=lock, name=name, create=create)


default_context = BridgeContext()

"""The bridge context, modelled on CPython's ``multiprocessing.context``.

The public names of :mod:`gilbridge.multiprocessing` are bound from
:data:`default_context`; its factory methods import their implementation lazily, so
importing the package costs no grpc/protobuf import until the first object is created.

Start methods: ``get_context(method)``, ``set_start_method``, ``get_start_method`` and
``get_all_start_methods`` accept the stdlib's names (``fork``, ``spawn``,
``forkserver``) and record them, so scripts that choose one keep working; every
``Process`` and ``Pool`` runs on Bridge workers whatever the method (they behave like
``spawn`` with cloudpickle). The recorded method is the default context's only state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .process import Process as _BridgeProcess

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Iterable
    from multiprocessing.process import BaseProcess

    from .managers import SyncManager
    from .pool import Pool
    from .process import Process
    from .queues import JoinableQueue, Queue, SimpleQueue
    from .synchronize import Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore

__all__ = ["BridgeContext", "default_context"]

# The stdlib's names on Linux, its default first.
START_METHODS: Final = ("fork", "spawn", "forkserver")


class BridgeContext:
    """Factories for objects that live in the Bridge host, and for processes and pools
    that run on its workers.

    Every object factory takes the stdlib's arguments plus keyword-only ``name`` (a named
    object any client can attach to; None: a new anonymous object) and ``create``
    (False: attach to an existing named object, FileNotFoundError if there is none).
    """

    #: The Process class (subclass it and override ``run()`` as with the stdlib).
    Process = _BridgeProcess

    def __init__(self, method: str | None = None) -> None:
        self._name = method

    # ------------------------------------------------------------ processes

    def Pool(self, processes: int | None = None, initializer: Callable[..., object] | None = None,
             initargs: Iterable[Any] = (), maxtasksperchild: int | None = None) -> Pool:
        """A pool of Bridge worker processes (blocks until its workers are connected)."""
        from .pool import Pool

        return Pool(processes, initializer, initargs, maxtasksperchild, context=self)

    def Manager(self) -> SyncManager:
        """A started :class:`~gilbridge.multiprocessing.managers.SyncManager`: its server
        runs on a Bridge worker; its locks, events, barriers and queues are Bridge
        objects. Blocks until the server answers."""
        from .managers import SyncManager

        manager = SyncManager(ctx=self)
        manager.start()
        return manager

    def current_process(self) -> BaseProcess:
        """The Process object of this process."""
        from .process import current_process

        return current_process()

    def parent_process(self) -> BaseProcess | None:
        """The parent's Process object in a child, else None."""
        from .process import parent_process

        return parent_process()

    def active_children(self) -> list[Process]:
        """Started children still running (finished ones are forgotten)."""
        from .process import active_children

        return active_children()

    def get_context(self, method: str | None = None) -> BridgeContext:
        """The context for ``method`` (one of get_all_start_methods()); None: this one."""
        if method is None:
            return self
        return _concrete(method)

    def get_start_method(self, allow_none: bool = False) -> str | None:
        """The recorded start method name."""
        return self._name

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        """Only the default context's method can be set (ValueError here)."""
        raise ValueError("cannot set start method of concrete context")

    def get_all_start_methods(self) -> list[str]:
        """``['fork', 'spawn', 'forkserver']``: all accepted; all run on Bridge workers."""
        return list(START_METHODS)

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
    ) -> Any:
        """A shared scalar (a synchronized wrapper unless ``lock=False``)."""
        from .sharedctypes import Value

        return Value(typecode_or_type, *args, lock=lock, name=name, create=create)

    def Array(
        self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True,
        name: str | None = None, create: bool = True,
    ) -> Any:
        """A shared array (a synchronized wrapper unless ``lock=False``)."""
        from .sharedctypes import Array

        return Array(typecode_or_type, size_or_initializer, lock=lock, name=name, create=create)

    def RawValue(self, typecode_or_type: Any, *args: Any, name: str | None = None,
                 create: bool = True) -> Any:
        """A shared scalar without a lock: the ctypes object over host-named memory."""
        from .sharedctypes import RawValue

        return RawValue(typecode_or_type, *args, name=name, create=create)

    def RawArray(self, typecode_or_type: Any, size_or_initializer: Any, *,
                 name: str | None = None, create: bool = True) -> Any:
        """A shared array without a lock: the ctypes array over host-named memory."""
        from .sharedctypes import RawArray

        return RawArray(typecode_or_type, size_or_initializer, name=name, create=create)


class DefaultBridgeContext(BridgeContext):
    """The default context: its start method can be chosen once (or with ``force``)."""

    def __init__(self) -> None:
        super().__init__(None)
        self._actual: BridgeContext | None = None

    def get_context(self, method: str | None = None) -> BridgeContext:
        if method is None:
            if self._actual is None:
                self._actual = _concrete(START_METHODS[0])
            return self._actual
        return _concrete(method)

    def get_start_method(self, allow_none: bool = False) -> str | None:
        if self._actual is None:
            if allow_none:
                return None
            self._actual = _concrete(START_METHODS[0])
        return self._actual._name

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        """Record ``method`` (RuntimeError if already set and not ``force``;
        ValueError for an unknown name)."""
        if self._actual is not None and not force:
            raise RuntimeError("context has already been set")
        if method is None and force:
            self._actual = None
            return
        self._actual = _concrete(method)  # type: ignore[arg-type]


_concrete_contexts: dict[str, BridgeContext] = {m: BridgeContext(m) for m in START_METHODS}


def _concrete(method: str) -> BridgeContext:
    try:
        return _concrete_contexts[method]
    except (KeyError, TypeError):
        raise ValueError(f"cannot find context for {method!r}") from None


default_context = DefaultBridgeContext()

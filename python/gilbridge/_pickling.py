"""Pickling for workers: cloudpickle with the caller's ``__main__`` objects by reference
(when the workers re-run the script) and multiprocessing's own reducers, and the
MessagePack encoding of task items around it. A worker is not the caller's child: what
carries a file descriptor (a Pipe end, a socket, a RawArray's arena) hands it over a
Unix socket on this machine when the worker unpickles it."""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import types
from collections.abc import Callable
from typing import Any, Final

from . import _codec

__all__ = ["ItemEncoder", "dumps", "main_attribute"]


def main_attribute(qualname: str) -> Any:
    """Unpickling helper: ``qualname`` looked up in this process's ``__main__`` (in a
    worker: the parent's script, run as ``__mp_main__``)."""
    obj: Any = sys.modules["__main__"]
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def stdlib_global(module_name: str, qualname: str) -> Any:
    """Unpickling helper: the stdlib's own ``module_name.qualname``, also where a gilbridge
    module stands in for that stdlib module in ``sys.modules`` (``python -m gilbridge``;
    stand-ins answer the stdlib's other names through ``_base.stdlib_fallback``)."""
    module = importlib.import_module(module_name)
    obj: Any = getattr(module.__dict__.get("__getattr__"), "stdlib_module", module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _stood_in_reference(obj: Any) -> tuple[Any, tuple[str, str]] | None:
    """A reduction for a stdlib multiprocessing function or class whose module a gilbridge
    module stands in for, where that name is gilbridge's own (``synchronized``, ``Pool``
    ...): pickle would find gilbridge's object under the stdlib's name, see a different
    object and pickle the stdlib's by value. None for everything else."""
    module_name = getattr(obj, "__module__", None)
    if not isinstance(module_name, str) or module_name.split(".", 1)[0] != "multiprocessing":
        return None
    module = sys.modules.get(module_name)
    if module is None or module.__name__ == module_name:
        return None
    qualname = getattr(obj, "__qualname__", "")
    if "<" in qualname:
        return None
    try:
        if stdlib_global(module_name, qualname) is not obj:
            return None
    except AttributeError:
        return None
    return stdlib_global, (module_name, qualname)


def _lookup_main(qualname: str) -> Any:
    try:
        return main_attribute(qualname)
    except (KeyError, AttributeError):
        return None


def _main_reference(obj: Any, main_names: frozenset[str] | None) -> str | None:
    """The qualified name ``obj`` travels by, when it is a function or class defined at
    the top level of a main script the workers re-run (``main_names``); None otherwise."""
    if not main_names or getattr(obj, "__module__", None) != "__main__":
        return None
    qualname = getattr(obj, "__qualname__", "")
    if not isinstance(qualname, str) or "<" in qualname or qualname.split(".", 1)[0] not in main_names:
        return None
    return qualname if _lookup_main(qualname) is obj else None


def _bridge_reduction(obj: Any, main_names: frozenset[str] | None,
                      forking_reducers: dict[type, Callable[[Any], Any]]) -> Any:
    """What both of dumps' picklers reduce ``obj`` to before their own rules, or None:
    multiprocessing's own reducers (Connection, socket, a RawArray's arena: their
    descriptors travel as _SharedFd, see _SpawningWorker), a stdlib name gilbridge
    stands in for, and a function or class of a main script the workers re-run (by
    reference)."""
    reducer = forking_reducers.get(type(obj))
    if reducer is not None:
        return reducer(obj)
    if isinstance(obj, (type, types.FunctionType)):
        stood_in = _stood_in_reference(obj)
        if stood_in is not None:
            return stood_in
        qualname = _main_reference(obj, main_names)
        if qualname is not None:
            return main_attribute, (qualname,)
    return None


_Pickler: type | None = None


def _pickler_class() -> type:
    global _Pickler
    if _Pickler is None:
        import cloudpickle
        from multiprocessing import connection  # noqa: F401 - registers its reducers
        from multiprocessing.reduction import ForkingPickler

        # Read at each use: sharedctypes registers each new ctypes type when it is made.
        forking_reducers: dict[type, Callable[[Any], Any]] = ForkingPickler._extra_reducers  # type: ignore[attr-defined]

        class BridgePickler(cloudpickle.CloudPickler):  # type: ignore[misc, name-defined]
            """cloudpickle, except that functions and classes defined at the top level
            of a main script the workers re-run travel by reference."""

            def __init__(self, file: Any, main_names: frozenset[str] | None) -> None:
                super().__init__(file, protocol=5)
                self._main_names = main_names

            def reducer_override(self, obj: Any) -> Any:
                reduction = _bridge_reduction(obj, self._main_names, forking_reducers)
                return reduction if reduction is not None else super().reducer_override(obj)

        _Pickler = BridgePickler
    return _Pickler


class _SharedFd:
    """A file descriptor that a Bridge worker on this machine takes from this process:
    registered with this process's descriptor sharer (:mod:`gilbridge._fdshare`: a
    thread here, on a private Unix socket, authenticated with this process's authkey,
    which the pickle carries: a worker has another) and received over that socket
    (SCM_RIGHTS) when the worker unpickles it. A spawned child gets its descriptors the
    same way where it cannot inherit them; each can be taken once."""

    def __init__(self, fd: int) -> None:
        from multiprocessing import process

        from . import _fdshare

        self._address, self._key = _fdshare.share(fd)
        self._authkey = bytes(process.current_process().authkey)

    def detach(self) -> int:
        """Receives the descriptor (blocks until this process's sharer sends it)."""
        from . import _fdshare

        return _fdshare.take(self._address, self._key, self._authkey)


class _SpawningWorker:
    """Stands for the stdlib's "spawning Popen" while objects are pickled for a worker,
    as the stdlib's spawn sets one while pickling a child: stdlib manager proxies then
    carry their authkey (a worker has another one) and AuthenticationStrings pickle.
    File descriptors (Pipe connections, sockets, the shared heap's arenas behind
    RawArray) travel as :class:`_SharedFd`: a worker is not a child of this process, so
    it receives them over a Unix socket instead of inheriting them."""

    def duplicate_for_child(self, fd: int) -> int:
        return fd

    @staticmethod
    def DupFd(fd: int) -> Any:
        return _SharedFd(fd)


_SPAWNING: Final = _SpawningWorker()


class _SpawningWorkerNoFds(_SpawningWorker):
    """:class:`_SpawningWorker` for the plain pickler: an object carrying a file
    descriptor goes to cloudpickle's pass instead, before its descriptor is shared (a
    share the first pass made and then dropped would keep the descriptor open)."""

    @staticmethod
    def DupFd(fd: int) -> Any:
        raise _NeedsCloudpickle


_SPAWNING_NO_FDS: Final = _SpawningWorkerNoFds()


def pickled_by_reference(obj: Any, main_names: frozenset[str] | None = None) -> bool:
    """Whether :func:`dumps` names the function ``obj`` (module and qualified name)
    instead of copying it: its pickle then stays the same while ``obj`` lives, and may be
    reused. False for anything it copies (lambdas, closures, ``__main__`` functions the
    workers do not re-run, modules registered with cloudpickle to go by value)."""
    if type(obj) is not types.FunctionType and type(obj) is not types.BuiltinFunctionType:
        return False
    qualname = getattr(obj, "__qualname__", "")
    if not isinstance(qualname, str) or "<" in qualname:
        return False
    if getattr(obj, "__module__", None) == "__main__":
        return _main_reference(obj, main_names) is not None
    if type(obj) is types.BuiltinFunctionType:
        # pickle names these itself (cloudpickle's check refuses them): module and name.
        module = sys.modules.get(getattr(obj, "__module__", None) or "")
        return module is not None and getattr(module, qualname, None) is obj
    from cloudpickle import cloudpickle as _cloudpickle

    try:
        return bool(_cloudpickle._should_pickle_by_reference(obj))
    except Exception:  # noqa: BLE001 - an object cloudpickle cannot place is copied
        return False


class _NeedsCloudpickle(Exception):
    """The plain pickler met something only cloudpickle sends right: a ``__main__``
    function or class the workers do not re-run, which must travel by value."""


_PlainPickler: type | None = None


def _plain_pickler_class() -> type:
    """The stdlib's C pickler with the reductions :class:`BridgePickler` adds (forking
    reducers, stood-in stdlib names, the main script's objects by reference), for
    objects that need nothing of cloudpickle's: importing cloudpickle and
    ``multiprocessing.connection`` took ~12 ms of a script's first ``Process.start()``.
    Whatever it cannot pickle (lambdas, closures, dynamic classes, by-value ``__main__``
    objects) goes to cloudpickle instead."""
    global _PlainPickler
    if _PlainPickler is None:
        from multiprocessing.reduction import ForkingPickler

        forking_reducers: dict[type, Callable[[Any], Any]] = ForkingPickler._extra_reducers  # type: ignore[attr-defined]

        class PlainPickler(pickle.Pickler):
            def __init__(self, file: Any, main_names: frozenset[str] | None) -> None:
                super().__init__(file, protocol=5)
                self._main_names = main_names

            def reducer_override(self, obj: Any) -> Any:
                reduction = _bridge_reduction(obj, self._main_names, forking_reducers)
                if reduction is not None:
                    return reduction
                if isinstance(obj, (type, types.FunctionType)) and getattr(obj, "__module__", None) == "__main__":
                    raise _NeedsCloudpickle
                return NotImplemented

        _PlainPickler = PlainPickler
    return _PlainPickler


def _by_value_modules_registered() -> bool:
    """Whether modules were registered with cloudpickle to travel by value (only
    cloudpickle honours that)."""
    cloudpickle = sys.modules.get("cloudpickle.cloudpickle")
    return bool(getattr(cloudpickle, "_PICKLE_BY_VALUE_MODULES", None))


def dumps(obj: Any, main_names: frozenset[str] | None = None) -> bytes:
    """Pickle ``obj`` (protocol 5) for a worker: with the stdlib's pickler when that
    sends it as cloudpickle would (everything it names by reference imports in the
    worker), else with cloudpickle; ``main_names``: see
    :func:`gilbridge._environment.main_info`."""
    from multiprocessing import context

    outer = context.get_spawning_popen()
    try:
        if not _by_value_modules_registered():
            context.set_spawning_popen(_SPAWNING_NO_FDS)
            buf = io.BytesIO()
            try:
                _plain_pickler_class()(buf, main_names).dump(obj)
                return buf.getvalue()
            except (_NeedsCloudpickle, pickle.PicklingError, TypeError, AttributeError):
                pass  # cloudpickle sends it, or raises the error it deserves
        context.set_spawning_popen(_SPAWNING)
        buf = io.BytesIO()
        _pickler_class()(buf, main_names).dump(obj)
    finally:
        context.set_spawning_popen(outer)
    return buf.getvalue()


class ItemEncoder:
    """:func:`gilbridge._codec.encode` for task items, with cloudpickle as the ext-1
    pickler so lambdas, closures and ``__main__`` classes inside arguments travel too.
    Not thread-safe (one per thread)."""

    def __init__(self, main_names: frozenset[str] | None, limit: int) -> None:
        import msgpack

        self._msgpack = msgpack
        self._main_names = main_names
        self._limit = limit
        self._packer = msgpack.Packer(use_bin_type=True, strict_types=True, default=self._default)

    def _default(self, obj: Any) -> Any:
        msgpack = self._msgpack
        if type(obj) is _codec._AsPickle:
            obj = obj.obj
        elif type(obj) is tuple:
            return msgpack.ExtType(_codec.EXT_TUPLE, msgpack.packb(
                list(obj), use_bin_type=True, strict_types=True, default=self._default))
        try:
            return msgpack.ExtType(_codec.EXT_PICKLE, dumps(obj, self._main_names))
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise _codec.CannotPickle(f"cannot send {type(obj).__qualname__} object: {exc}") from exc

    def encode(self, obj: Any) -> bytes:
        """One MessagePack payload; ValueError (PayloadTooLarge) over the host's limit."""
        if type(obj) not in _codec._SCALARS and _codec._has_buffer(obj):
            obj = _codec._mark_buffers(obj)
        data: bytes = self._packer.pack(obj)
        if self._limit > 0 and len(data) > self._limit:
            raise _codec.PayloadTooLarge(
                f"task payload of {len(data)} bytes exceeds the host's limit of "
                f"{self._limit} bytes (max_payload_bytes)")
        return data

    def pickled(self, obj: Any) -> bytes:
        """An ext-1 payload holding ``obj`` pickled (a RUN_PROCESS item)."""
        msgpack = self._msgpack
        return msgpack.packb(msgpack.ExtType(_codec.EXT_PICKLE, dumps(obj, self._main_names)))

"""Value and Array whose memory the Bridge host owns (``multiprocessing.sharedctypes``).

The host keeps ``length`` elements of one C type as little-endian bytes in a shared
segment, a file in ``/dev/shm`` that it names. A process on the same machine (the
caller, its Processes, pool workers) maps the segment and accesses the elements
directly through ctypes, at the stdlib's speed and with its exact behaviour (integers
wrap, 'c' is a one-byte ``bytes``, 'u' a one-character ``str``, floats round to C
float). A process that cannot map it (another machine) reads and writes through the
host, one RPC per access.

``lock=True`` (the default) wraps every access in the object's RLock, a Bridge lock, as
the stdlib's ``Synchronized`` wrappers do. A lock this process holds cached costs no RPC
(see :mod:`._lockcache`), so ``with v.get_lock(): v.value += 1`` runs in memory while
no other process wants the lock. ``lock=False``, ``RawValue``, ``RawArray`` and
``get_obj()`` give the raw object: as in the stdlib, the ctypes object itself (over the
mapped segment; it pickles as the host object, never by value), or a raw proxy where
the segment cannot be mapped.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
# Bound at import: under ``python -m gilbridge`` this module stands in for the stdlib's
# in sys.modules, where an import would find this module itself.
import multiprocessing.sharedctypes as _stdlib
import os
from collections.abc import Iterable, Iterator
from threading import get_ident
from typing import Any, Final

from .._connection import Connection, get_connection
from . import _base
from ._base import LOCK, RLOCK, VALUE, BridgeObject, stdlib_fallback
from .synchronize import Lock, LockDelegate, RLock

__all__ = [
    "Array",
    "copy",
    "synchronized",
    "RawArray",
    "RawArrayProxy",
    "RawValue",
    "RawValueProxy",
    "SynchronizedArray",
    "SynchronizedBase",
    "SynchronizedString",
    "Synchronized",
    "Value",
    "attach",
    "typecode_to_type",
]

typecode_to_type: Final[dict[str, type[Any]]] = {
    "c": ctypes.c_char, "u": ctypes.c_wchar,
    "b": ctypes.c_byte, "B": ctypes.c_ubyte,
    "h": ctypes.c_short, "H": ctypes.c_ushort,
    "i": ctypes.c_int, "I": ctypes.c_uint,
    "l": ctypes.c_long, "L": ctypes.c_ulong,
    "q": ctypes.c_longlong, "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float, "d": ctypes.c_double,
    "?": ctypes.c_bool,
}
# ctypes types -> typecode (first spelling wins for aliases such as c_long/c_longlong).
_type_to_typecode: Final[dict[type[Any], str]] = {}
for _code, _ctype in typecode_to_type.items():
    _type_to_typecode.setdefault(_ctype, _code)


def _resolve(typecode_or_type: object) -> tuple[str, type[Any]]:
    """(typecode, ctypes type); TypeError for anything else, like the stdlib."""
    if isinstance(typecode_or_type, str) and typecode_or_type in typecode_to_type:
        return typecode_or_type, typecode_to_type[typecode_or_type]
    if isinstance(typecode_or_type, type) and typecode_or_type in _type_to_typecode:
        return _type_to_typecode[typecode_or_type], typecode_or_type
    if isinstance(typecode_or_type, type) and issubclass(typecode_or_type, ctypes._SimpleCData):
        raise TypeError(f"unsupported ctypes type {typecode_or_type.__name__} for a bridge Value")
    raise TypeError("this type has no size")


def _le(ctype: type[Any]) -> type[Any]:
    """The little-endian variant of a ctypes type (the native one on x86/ARM)."""
    return getattr(ctype, "__ctype_le__", ctype)


def _pb() -> Any:
    from .._proto.bridge.v1 import values_pb2

    return values_pb2


# (element type, length; -1 for a scalar) -> the ctypes class of mapped raw objects.
_mapped_types: dict[tuple[type[Any], int], type[Any]] = {}


def _reduce_mapped(obj: Any) -> Any:
    # Pickles as its host object (attached, and mapped when it can be, where unpickled),
    # never by value as a plain ctypes object would.
    return obj._bridge.__reduce__()


def _mapped_type(ctype: type[Any], length: int, is_array: bool) -> type[Any]:
    """A subclass of the stdlib's ctypes type (``c_long``, ``c_long_Array_10`` ...) whose
    instances pickle as the Bridge value they map."""
    key = (ctype, length if is_array else -1)
    cls = _mapped_types.get(key)
    if cls is None:
        base = ctype * length if is_array else ctype
        cls = type(base.__name__, (base,), {"__reduce__": _reduce_mapped, "__module__": __name__})
        _mapped_types[key] = cls
    return cls


def _map_segment(path: str, size: int) -> mmap.mmap | None:
    """The host's segment mapped read-write, or None when this process cannot map it
    (no segment, another machine, or a file that is not the value's)."""
    if not path:
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size < size:
            return None
        return mmap.mmap(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


class _RawShared(BridgeObject):
    """Common base: (typecode, length) of a host value, its mapped view, and the
    Read/Write helpers used when there is no view."""

    _typecode: str
    _type: type[Any]
    _length: int
    _is_array: bool
    # The elements as a ctypes object over the mapped segment; None: through the host.
    _view: Any

    def _setup(self, conn: Connection, info: Any, name: str) -> None:
        self._typecode = str(info.typecode)
        self._type = typecode_to_type[self._typecode]
        self._length = int(info.length)
        self._is_array = bool(info.is_array)
        self._lock_name = str(info.lock_name)
        self._lock_kind = int(info.lock_kind)
        self._view = None
        self._segment = str(info.segment)
        ctype = _le(self._type)
        segment = _map_segment(self._segment, ctypes.sizeof(ctype) * self._length)
        if segment is not None:
            self._view = _mapped_type(ctype, self._length, self._is_array).from_buffer(segment)
        self._bind(conn, VALUE, name)

    def _raw_twin(self) -> RawValueProxy | RawArrayProxy:
        """A raw proxy of the same host object, with its own reference and no view (no
        RPC)."""
        cls: type[Any] = RawArrayProxy if self._is_array else RawValueProxy
        raw = cls.__new__(cls)
        conn = get_connection()
        conn.add_ref(VALUE, self._name)
        raw._typecode, raw._type, raw._length = self._typecode, self._type, self._length
        raw._is_array, raw._lock_name, raw._lock_kind = self._is_array, "", 0
        raw._view, raw._segment = None, self._segment
        raw._bind(conn, VALUE, self._name)
        return raw  # type: ignore[no-any-return]

    @property
    def is_mapped(self) -> bool:
        """True when this process accesses the memory directly (no RPC per access)."""
        return self._view is not None

    @classmethod
    def _create(
        cls,
        typecode_or_type: object,
        length: int,
        is_array: bool,
        initial: bytes,
        lock: object,
        name: str | None,
        create: bool,
    ) -> tuple[Connection, Any, str, Lock | RLock | None]:
        """CreateValue (with the lock as requested); returns (conn, info, name, lock)."""
        typecode, _ = _resolve(typecode_or_type)
        pb = _pb()
        lock_proxy: Lock | RLock | None = None
        if lock is True or lock is None:  # None: a new RLock too, as the stdlib's
            if name is not None and create:
                lock_proxy = RLock(name=f"{name}.lock")
            elif name is None:
                lock_proxy = RLock()
        elif isinstance(lock, (Lock, RLock)):
            lock_proxy = lock
        elif lock is not False:
            raise AttributeError(f"{type(lock).__name__!r} object has no attribute 'acquire'"
                                 " (lock must be True, False or a gilbridge Lock/RLock)")

        def rpc(conn: Connection, obj_name: str, mode: int) -> Any:
            request = pb.CreateValueRequest(
                session_id=conn.session_id, name=obj_name, mode=mode, typecode=typecode,
                length=length, is_array=is_array, initial=initial,
            )
            if lock_proxy is not None:
                request.lock_name = lock_proxy.name
                request.lock_kind = lock_proxy._kind
            return conn.call(conn.values.CreateValue, request)

        conn, info, obj_name = cls._open(VALUE, name, create, rpc)
        return conn, info, obj_name, lock_proxy

    # ------------------------------------------------------------ raw access

    def _read(self, index: int = 0, count: int = 0) -> bytes:
        conn = get_connection()
        reply = conn.call(
            conn.values.Read,
            _pb().ReadRequest(target=self._ref(conn), index=index, count=count),
        )
        return bytes(reply.data)

    def _write(self, index: int, data: bytes) -> None:
        conn = get_connection()
        conn.call(conn.values.Write, _pb().WriteRequest(target=self._ref(conn), index=index, data=data))

    def _guard_lock(self) -> Lock | RLock | None:
        """The lock an access must take, or None (raw, or this thread holds it)."""
        return None

    def _guard(self) -> contextlib.AbstractContextManager[Any]:
        return self._guard_lock() or contextlib.nullcontext()

    def _reduce_extra(self) -> dict[str, Any]:
        return {"raw": isinstance(self, (RawValueProxy, RawArrayProxy))}


# ------------------------------------------------------------------------ scalars


class _ValueMixin(_RawShared):
    def _get_value(self) -> Any:
        view = self._view
        if view is not None:
            lock = self._guard_lock()
            if lock is None:
                return view.value
            with lock:
                return view.value
        with self._guard():
            data = self._read(0, 1)
        return _le(self._type).from_buffer_copy(data).value

    def _set_value(self, value: Any) -> None:
        view = self._view
        if view is not None:
            lock = self._guard_lock()
            if lock is None:
                view.value = value
                return
            with lock:
                view.value = value
            return
        data = bytes(_le(self._type)(value))
        with self._guard():
            self._write(0, data)

    value = property(_get_value, _set_value,
                     doc="The value (in memory when mapped, else one RPC; plus the lock's).")

    def _ctype_repr(self) -> str:
        try:
            return f"{self._type.__name__}({self._get_value()!r})"
        except Exception:  # noqa: BLE001
            return f"{self._type.__name__}(?)"


class RawValueProxy(_ValueMixin):
    """A shared scalar without a lock (``Value(..., lock=False)``)."""

    def __repr__(self) -> str:
        return f"<gilbridge {self._ctype_repr()} name={self._name!r}>"


# ------------------------------------------------------------------------ arrays


class _ArrayMixin(_RawShared):
    def __len__(self) -> int:
        return self._length

    def _norm_index(self, i: int) -> int:
        n = self._length
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("invalid index")
        return i

    def _local_array(self, data: bytes) -> Any:
        n = len(data) // ctypes.sizeof(self._type)
        return (_le(self._type) * n).from_buffer_copy(data)

    def __getitem__(self, i: int | slice) -> Any:
        """Element(s), like a ctypes array: a slice of a 'c' array is bytes, of a 'u'
        array str, else a list. In memory when mapped, else one Read RPC (plus the
        lock's)."""
        view = self._view
        if view is not None:
            lock = self._guard_lock()
            if lock is None:
                return view[i]
            with lock:
                return view[i]
        if isinstance(i, slice):
            indices = range(*i.indices(self._length))
            if not indices:
                values: list[Any] = []
            else:
                lo, hi = min(indices), max(indices)
                with self._guard():
                    local = self._local_array(self._read(lo, hi - lo + 1))
                values = [local[k - lo] for k in indices]
            if self._typecode == "c":
                return b"".join(values)
            if self._typecode == "u":
                return "".join(values)
            return values
        index = self._norm_index(i.__index__())
        with self._guard():
            data = self._read(index, 1)
        return self._local_array(data)[0]

    def __setitem__(self, i: int | slice, value: Any) -> None:
        view = self._view
        if view is not None:
            lock = self._guard_lock()
            if lock is None:
                view[i] = value
                return
            with lock:
                view[i] = value
            return
        le = _le(self._type)
        if isinstance(i, slice):
            start, stop, step = i.indices(self._length)
            indices = range(start, stop, step)
            values = list(value) if not isinstance(value, (bytes, str)) else value
            if len(values) != len(indices):
                raise ValueError("Can only assign sequence of same size")
            if not indices:
                return
            if step == 1:
                local = (le * len(indices))()
                local[:] = values
                with self._guard():
                    self._write(start, bytes(local))
                return
            lo, hi = min(indices), max(indices)
            with self._guard():
                local = self._local_array(self._read(lo, hi - lo + 1))
                for k, v in zip(indices, values):
                    local[k - lo] = v
                self._write(lo, bytes(local))
            return
        index = self._norm_index(i.__index__())
        local = (le * 1)()
        local[0] = value
        with self._guard():
            self._write(index, bytes(local))

    def __iter__(self) -> Iterator[Any]:
        return iter(self[:])

    # char arrays ('c') only, like ctypes' c_char arrays
    def _check_char(self) -> None:
        if self._typecode != "c":
            raise AttributeError(f"{type(self).__name__!r} of typecode {self._typecode!r} "
                                 "has no attribute 'value'/'raw' (char arrays only)")

    def _get_raw(self) -> bytes:
        self._check_char()
        with self._guard():
            if self._view is not None:
                return bytes(self._view.raw)
            return self._read(0, 0)

    def _set_raw(self, value: bytes) -> None:
        self._check_char()
        if self._view is not None:
            with self._guard():
                self._view.raw = value
            return
        data = bytes(memoryview(value))
        if len(data) > self._length:
            raise ValueError("byte string too long")
        if data:
            with self._guard():
                self._write(0, data)

    def _get_str_value(self) -> bytes:
        self._check_char()
        with self._guard():
            if self._view is not None:
                return bytes(self._view.value)
            data = self._read(0, 0)
        return (ctypes.c_char * self._length).from_buffer_copy(data).value

    def _set_str_value(self, value: bytes) -> None:
        self._check_char()
        with self._guard():
            if self._view is not None:
                self._view.value = value
                return
            local = (ctypes.c_char * self._length).from_buffer_copy(self._read(0, 0))
            local.value = value
            self._write(0, bytes(local))

    raw = property(_get_raw, _set_raw, doc="All bytes of a char array ('c').")


class RawArrayProxy(_ArrayMixin):
    """A shared array without a lock (``Array(..., lock=False)``)."""

    # A raw char array has .value like ctypes' c_char arrays.
    value = property(_ArrayMixin._get_str_value, _ArrayMixin._set_str_value)

    def __repr__(self) -> str:
        return f"<gilbridge {self._type.__name__}_Array_{self._length} name={self._name!r}>"


# ------------------------------------------------------------------------ synchronized


class SynchronizedBase(LockDelegate, _RawShared):
    """Adds the lock to a shared value: ``get_lock``, ``get_obj``, ``acquire``,
    ``release`` and the context manager, as in ``multiprocessing.sharedctypes``."""

    _lock: Lock | RLock

    _reentrant: bool

    def _attach_lock(self, conn: Connection, lock: Lock | RLock | None) -> None:
        if lock is not None:
            self._lock = lock
        else:
            cls = RLock if self._lock_kind == RLOCK else Lock
            self._lock = cls._wrap(conn, self._lock_name)
        self._reentrant = isinstance(self._lock, RLock)

    def _guard_lock(self) -> Lock | RLock | None:
        lock = self._lock
        if self._reentrant and lock._depth_here() > 0:  # type: ignore[union-attr]
            return None  # this thread holds it already
        return lock

    def get_lock(self) -> Lock | RLock:
        return self._lock

    def get_obj(self) -> Any:
        """The same host object without the lock (no RPC): the ctypes object over the
        mapped memory, as the stdlib's (``numpy.frombuffer`` works on an array's), else
        a raw proxy."""
        view = self._view
        if view is None:
            return self._raw_twin()
        if "_bridge" not in view.__dict__:
            view._bridge = self._raw_twin()
        return view

    def _reduce_extra(self) -> dict[str, Any]:
        return {"raw": False, "lock": self._lock}


class Synchronized(SynchronizedBase, _ValueMixin):
    """A shared scalar guarded by a lock (``multiprocessing.Value``)."""

    # The shared counter's path (``with v.get_lock(): v.value += 1``), in as few calls
    # as Python allows; the general case is _ValueMixin's.
    def _get_value(self) -> Any:
        view = self._view
        if view is None:
            return _ValueMixin._get_value(self)
        lock: Any = self._lock
        if self._reentrant and lock._depths_generation == _base.fork_generation \
                and get_ident() in lock._depths:  # _held_here, inlined: the hot path
            return view.value
        with lock:
            return view.value

    def _set_value(self, value: Any) -> None:
        view = self._view
        if view is None:
            _ValueMixin._set_value(self, value)
        else:
            lock: Any = self._lock
            if self._reentrant and lock._depths_generation == _base.fork_generation \
                    and get_ident() in lock._depths:  # _held_here, inlined
                view.value = value
            else:
                with lock:
                    view.value = value

    value = property(_get_value, _set_value,
                     doc="The value (in memory when mapped, else one RPC; plus the lock's).")

    def __repr__(self) -> str:
        return f"<Synchronized wrapper for {self._ctype_repr()}>"


class SynchronizedArray(SynchronizedBase, _ArrayMixin):
    """A shared array guarded by a lock (``multiprocessing.Array``)."""

    def __repr__(self) -> str:
        return f"<SynchronizedArray wrapper for {self._type.__name__}_Array_{self._length} name={self._name!r}>"


class SynchronizedString(SynchronizedArray):
    """A char array ('c') guarded by a lock, with ``value`` and ``raw``."""

    value = property(_ArrayMixin._get_str_value, _ArrayMixin._set_str_value)


# ------------------------------------------------------------------------ construction


def _proxy(conn: Connection, info: Any, name: str, lock_proxy: Lock | RLock | None,
           raw: bool) -> _RawShared:
    """The proxy class for what the host answered: raw when asked (``lock=False``) or
    when the host object has no lock; synchronized (String for 'c' arrays) otherwise."""
    synchronized = not raw and (bool(info.lock_name) or lock_proxy is not None)
    cls: type[_RawShared]
    if info.is_array:
        if synchronized:
            cls = SynchronizedString if info.typecode == "c" else SynchronizedArray
        else:
            cls = RawArrayProxy
    else:
        cls = Synchronized if synchronized else RawValueProxy
    obj = cls.__new__(cls)
    obj._setup(conn, info, name)
    if synchronized:
        assert isinstance(obj, SynchronizedBase)
        obj._attach_lock(conn, lock_proxy)
        return obj
    view = obj._view
    if view is None:
        return obj
    # Raw and mapped: the ctypes object itself, as the stdlib's; the proxy (which no
    # longer holds the view) keeps the host object referenced and pickles it.
    obj._view = None
    view._bridge = obj
    return view  # type: ignore[no-any-return]


def Value(typecode_or_type: object, *args: Any, lock: object = True,
          name: str | None = None, create: bool = True) -> Any:
    """A shared scalar (``multiprocessing.Value``): synchronized unless ``lock=False``
    (or attached to a host object created without a lock). Attaching to a named value
    (``create=False``, or one that exists with a typecode of the same kind and size, as
    'q' for an 'l' value) keeps the host's typecode and ignores ``args``. Other ctypes
    types (structures) are the stdlib's objects, guarded by a Bridge RLock."""
    if name is None and not _is_bridged(typecode_or_type) and _is_ctype(typecode_or_type):
        return _stdlib_object(_stdlib.RawValue(typecode_or_type, *args), lock)
    typecode, ctype = _resolve(typecode_or_type)
    initial = bytes(_le(ctype)(*args))  # the stdlib's conversion and errors
    if initial == bytes(len(initial)):
        initial = b""
    conn, info, obj_name, lock_proxy = _RawShared._create(
        typecode, 1, False, initial, lock, name, create
    )
    return _proxy(conn, info, obj_name, lock_proxy, lock is False)  # type: ignore[return-value]


def Array(typecode_or_type: object, size_or_initializer: Any, *, lock: object = True,
          name: str | None = None, create: bool = True) -> Any:
    """A shared array (``multiprocessing.Array``): synchronized unless ``lock=False``.
    ``size_or_initializer``: a length (zero-filled) or a sequence of initial values. With
    ``create=False`` the host's typecode and length win; attaching by name otherwise
    needs the same length and a typecode of the same kind and size (the host's is kept).
    Other ctypes types (structures) are the stdlib's objects, guarded by a Bridge RLock."""
    if name is None and not _is_bridged(typecode_or_type) and _is_ctype(typecode_or_type):
        return _stdlib_object(
            _stdlib.RawArray(typecode_or_type, size_or_initializer), lock)
    typecode, ctype = _resolve(typecode_or_type)
    if isinstance(size_or_initializer, int):
        if size_or_initializer < 0:
            raise ValueError("Array length must be >= 0")
        length = size_or_initializer
        initial = b""
    else:
        values: Iterable[Any] = size_or_initializer
        seq = list(values) if not isinstance(values, (bytes, str)) else values
        length = len(seq)
        initial = bytes((_le(ctype) * length)(*seq))  # the stdlib's conversion and errors
    conn, info, obj_name, lock_proxy = _RawShared._create(
        typecode, length, True, initial, lock, name, create
    )
    return _proxy(conn, info, obj_name, lock_proxy, lock is False)  # type: ignore[return-value]


def attach(name: str, extra: dict[str, Any]) -> Any:
    """Rebuild a pickled Value/Array (or raw object) in this process (the host supplies
    the typecode and length; the pickle, the lock)."""
    conn, info, obj_name, _ = _RawShared._create("i", 1, False, b"", False, name, False)
    return _proxy(conn, info, obj_name, extra.get("lock"), bool(extra.get("raw")))


def _is_bridged(typecode_or_type: object) -> bool:
    """Whether Bridge keeps values of this type (the simple C types); others (structures,
    pointers) are the stdlib's."""
    try:
        return typecode_or_type in typecode_to_type or typecode_or_type in _type_to_typecode
    except TypeError:  # unhashable
        return False


_CTYPES_BASES: Final = (ctypes._SimpleCData, ctypes.Structure, ctypes.Union, ctypes.Array)


def _is_ctype(typecode_or_type: object) -> bool:
    return isinstance(typecode_or_type, type) and issubclass(typecode_or_type, _CTYPES_BASES)


def _stdlib_object(raw: Any, lock: object) -> Any:
    """The stdlib's raw object, or its synchronized wrapper with a Bridge lock (a new
    RLock for True/None): it reaches Process and pool workers as the stdlib's does."""
    if lock is False:
        return raw
    if lock is True or lock is None:
        lock = RLock()
    elif not hasattr(lock, "acquire"):
        raise AttributeError(f"{type(lock).__name__!r} object has no attribute 'acquire'")
    return _stdlib.synchronized(raw, lock)


def RawValue(typecode_or_type: object, *args: Any, name: str | None = None,
             create: bool = True) -> Any:
    """A shared scalar without a lock (``multiprocessing.RawValue``): the ctypes object
    over memory the host names (a raw proxy where it cannot be mapped). Other ctypes
    types (structures) get the stdlib's RawValue."""
    if not _is_bridged(typecode_or_type) and name is None:
        return _stdlib.RawValue(typecode_or_type, *args)
    return Value(typecode_or_type, *args, lock=False, name=name, create=create)


def RawArray(typecode_or_type: object, size_or_initializer: Any, *, name: str | None = None,
             create: bool = True) -> Any:
    """A shared array without a lock (``multiprocessing.RawArray``): the ctypes array
    over memory the host names (``numpy.frombuffer`` works). Other ctypes types get the
    stdlib's RawArray."""
    if not _is_bridged(typecode_or_type) and name is None:
        return _stdlib.RawArray(typecode_or_type, size_or_initializer)
    return Array(typecode_or_type, size_or_initializer, lock=False, name=name, create=create)


def _bridge_of(obj: object) -> _RawShared | None:
    """The raw proxy behind a Bridge raw object (a mapped ctypes object or a proxy)."""
    if isinstance(obj, _RawShared):
        return obj
    bridge = getattr(obj, "__dict__", {}).get("_bridge")
    return bridge if isinstance(bridge, _RawShared) else None


def synchronized(obj: Any, lock: Lock | RLock | None = None, ctx: Any = None) -> Any:
    """A synchronized wrapper of a raw object (``sharedctypes.synchronized``), guarded by
    ``lock`` (a new RLock when None). Objects that are not Bridge's go to the stdlib."""
    bridge = _bridge_of(obj)
    if bridge is None or isinstance(bridge, SynchronizedBase):
        return _stdlib.synchronized(obj, lock, ctx)
    conn, info, obj_name, _ = _RawShared._create("i", 1, False, b"", False, bridge._name, False)
    return _proxy(conn, info, obj_name, lock if lock is not None else RLock(), raw=False)


def copy(obj: Any) -> Any:
    """A new raw object with the same type and contents (``sharedctypes.copy``)."""
    bridge = _bridge_of(obj)
    if bridge is None:
        return _stdlib.copy(obj)
    view = obj if bridge is not obj else None
    data = bytes(view) if view is not None else bridge._read(0, 0)
    if bridge._is_array:
        local = bridge._local_array(data)
        return RawArray(bridge._typecode, local[:] if bridge._typecode not in "cu" else list(local))
    return RawValue(bridge._typecode, _le(bridge._type).from_buffer_copy(data).value)




# The stdlib module's other names (``rebuild_ctype``, ``Synchronized*``...): pickles of
# the stdlib's own ctypes objects name them under ``multiprocessing.sharedctypes``.
__getattr__ = stdlib_fallback(__name__, _stdlib)

"""Value and Array living in the Bridge host (``multiprocessing.sharedctypes``).

The host stores ``length`` elements of one C type as little-endian bytes. This module
converts locally with ctypes, so values behave exactly as the stdlib's (integers wrap,
'c' is a one-byte ``bytes``, 'u' a one-character ``str``, floats round to C float).

``lock=True`` (the default) wraps every access in the object's RLock, as the stdlib's
``Synchronized`` wrappers do: an access is then acquire + Read/Write + release (3 RPCs),
or one RPC while the thread already holds the lock (``with v.get_lock(): v.value += 1``
costs acquire + read + write + release). ``lock=False`` gives the raw object: one RPC per
access and no ``get_lock``.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterable, Iterator
from typing import Any, Final

from .._connection import Connection, get_connection
from ._base import LOCK, RLOCK, VALUE, BridgeObject
from .synchronize import Lock, LockDelegate, RLock

__all__ = [
    "Array",
    "RawArray",
    "RawValue",
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


class _RawShared(BridgeObject):
    """Common base: (typecode, length) of a host value and Read/Write helpers."""

    _typecode: str
    _type: type[Any]
    _length: int
    _is_array: bool

    def _setup(self, conn: Connection, info: Any, name: str) -> None:
        self._typecode = str(info.typecode)
        self._type = typecode_to_type[self._typecode]
        self._length = int(info.length)
        self._is_array = bool(info.is_array)
        self._lock_name = str(info.lock_name)
        self._lock_kind = int(info.lock_kind)
        self._bind(conn, VALUE, name)

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

    def _guard(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def _reduce_extra(self) -> dict[str, Any]:
        return {"raw": isinstance(self, (RawValue, RawArray))}


# ------------------------------------------------------------------------ scalars


class _ValueMixin(_RawShared):
    def _get_value(self) -> Any:
        with self._guard():
            data = self._read(0, 1)
        return _le(self._type).from_buffer_copy(data).value

    def _set_value(self, value: Any) -> None:
        data = bytes(_le(self._type)(value))
        with self._guard():
            self._write(0, data)

    value = property(_get_value, _set_value, doc="The value (one RPC, plus the lock's).")

    def _ctype_repr(self) -> str:
        try:
            return f"{self._type.__name__}({self._get_value()!r})"
        except Exception:  # noqa: BLE001
            return f"{self._type.__name__}(?)"


class RawValue(_ValueMixin):
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
        array str, else a list. One Read RPC (plus the lock's)."""
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
            return self._read(0, 0)

    def _set_raw(self, value: bytes) -> None:
        self._check_char()
        data = bytes(memoryview(value))
        if len(data) > self._length:
            raise ValueError("byte string too long")
        if data:
            with self._guard():
                self._write(0, data)

    def _get_str_value(self) -> bytes:
        self._check_char()
        with self._guard():
            data = self._read(0, 0)
        return (ctypes.c_char * self._length).from_buffer_copy(data).value

    def _set_str_value(self, value: bytes) -> None:
        self._check_char()
        with self._guard():
            local = (ctypes.c_char * self._length).from_buffer_copy(self._read(0, 0))
            local.value = value
            self._write(0, bytes(local))

    raw = property(_get_raw, _set_raw, doc="All bytes of a char array ('c').")


class RawArray(_ArrayMixin):
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

    def _attach_lock(self, conn: Connection, lock: Lock | RLock | None) -> None:
        if lock is not None and lock.name == self._lock_name:
            self._lock = lock
        else:
            cls = RLock if self._lock_kind == RLOCK else Lock
            self._lock = cls._wrap(conn, self._lock_name)

    def _guard(self) -> contextlib.AbstractContextManager[Any]:
        lock = self._lock
        if isinstance(lock, RLock) and lock._depth_here() > 0:
            return contextlib.nullcontext()  # this thread holds it already
        return lock  # type: ignore[return-value]

    def get_lock(self) -> Lock | RLock:
        return self._lock

    def get_obj(self) -> RawValue | RawArray:
        """The same host object without the lock (no RPC)."""
        cls: type[Any] = RawArray if self._is_array else RawValue
        raw = cls.__new__(cls)
        conn = get_connection()
        conn.add_ref(VALUE, self._name)
        raw._typecode, raw._type, raw._length = self._typecode, self._type, self._length
        raw._is_array, raw._lock_name, raw._lock_kind = self._is_array, "", 0
        raw._bind(conn, VALUE, self._name)
        return raw  # type: ignore[no-any-return]


class Synchronized(SynchronizedBase, _ValueMixin):
    """A shared scalar guarded by a lock (``multiprocessing.Value``)."""

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
    synchronized = not raw and bool(info.lock_name)
    cls: type[_RawShared]
    if info.is_array:
        if synchronized:
            cls = SynchronizedString if info.typecode == "c" else SynchronizedArray
        else:
            cls = RawArray
    else:
        cls = Synchronized if synchronized else RawValue
    obj = cls.__new__(cls)
    obj._setup(conn, info, name)
    if synchronized:
        assert isinstance(obj, SynchronizedBase)
        obj._attach_lock(conn, lock_proxy)
    return obj


def Value(typecode_or_type: object, *args: Any, lock: object = True,
          name: str | None = None, create: bool = True) -> Synchronized | RawValue:
    """A shared scalar (``multiprocessing.Value``): synchronized unless ``lock=False``
    (or attached to a host object created without a lock). With ``create=False`` the
    host's typecode wins; ``args`` are ignored."""
    typecode, ctype = _resolve(typecode_or_type)
    initial = bytes(_le(ctype)(*args))  # the stdlib's conversion and errors
    if initial == bytes(len(initial)):
        initial = b""
    conn, info, obj_name, lock_proxy = _RawShared._create(
        typecode, 1, False, initial, lock, name, create
    )
    return _proxy(conn, info, obj_name, lock_proxy, lock is False)  # type: ignore[return-value]


def Array(typecode_or_type: object, size_or_initializer: Any, *, lock: object = True,
          name: str | None = None, create: bool = True) -> SynchronizedArray | RawArray:
    """A shared array (``multiprocessing.Array``): synchronized unless ``lock=False``.
    ``size_or_initializer``: a length (zero-filled) or a sequence of initial values. With
    ``create=False`` the host's typecode and length win."""
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


def attach(name: str, extra: dict[str, Any]) -> BridgeObject:
    """Rebuild a pickled Value/Array proxy in this process (the host supplies the
    typecode, length and lock)."""
    conn, info, obj_name, _ = _RawShared._create("i", 1, False, b"", False, name, False)
    return _proxy(conn, info, obj_name, None, bool(extra.get("raw")))

"""MessagePack payload codec: how Python objects travel as queue items.

Rules (shared with every other client language, see design.md "Serialization"):

* Plain data is native MessagePack, readable by any language: ``None``, ``bool``,
  ``int`` within the int64/uint64 range, ``float``, ``str``, ``bytes``, ``list`` and
  ``dict`` of exactly those types (subclasses do not count as plain data).
* A ``tuple`` (exactly ``tuple``) is ``ExtType(2, packb(list(elements)))``, packed
  recursively with these same rules, so tuples come back as tuples in Python while other
  languages can read the payload as an array.
* Any other object -- including subclasses of the plain types (``namedtuple``,
  ``IntEnum``, ``OrderedDict``, ``bool`` subclasses ...), integers outside 64 bits,
  ``bytearray``, ``set`` -- is ``ExtType(1, pickle.dumps(obj, protocol=5))``: a Python-only
  item that other languages can recognise as such.

Decoding maps ExtType 1 and 2 back; any other extension is returned as a
``msgpack.ExtType`` untouched. Decoding is bounded as for untrusted data: no declared
length beyond the document's own size, no nesting deeper than msgpack's 1024 levels or
:data:`MAX_TUPLE_DEPTH` tuples; a document past these bounds raises ``ValueError`` (and
no document overflows the decoding thread's stack).
(A pickle, ext 1, runs code by design: the host accepts payloads only from
authenticated sessions, see README "Trust model".)
"""

from __future__ import annotations

import functools
import pickle
from typing import Any, Final

import msgpack

__all__ = ["EXT_PICKLE", "EXT_TUPLE", "CannotPickle", "PayloadTooLarge", "decode", "encode", "pickling_error"]

EXT_PICKLE: Final = 1
EXT_TUPLE: Final = 2

# Tuples (ext 2) nest by recursion through the ext hook. ``unpackb`` keeps its parser
# stack on the C stack (~32 KiB a call), so nested tuples decoded with it alone would
# overflow the thread's stack -- a crash, not an error -- at ~250 levels (~30 on a 1 MiB
# thread). Past _SHALLOW_TUPLES levels a heap-allocated ``Unpacker`` decodes instead; past
# MAX_TUPLE_DEPTH (more than encode itself manages) decoding raises ValueError.
MAX_TUPLE_DEPTH: Final = 100
_SHALLOW_TUPLES: Final = 4


class PayloadTooLarge(ValueError):
    """An encoded payload is larger than the host accepts (``max_payload_bytes``)."""


class CannotPickle(TypeError):
    """An object in a payload could not be pickled; ``__cause__`` is pickle's own error."""


def pickling_error(exc: Exception) -> Exception:
    """What pickling itself raised: the error a :class:`CannotPickle` wraps, else ``exc``
    (the stdlib's hooks, ``MaybeEncodingError`` among them, report that one)."""
    cause = exc.__cause__ if isinstance(exc, CannotPickle) else None
    return cause if isinstance(cause, Exception) else exc


class _AsPickle:
    """Marks an object msgpack would pack natively even with ``strict_types``
    (``bytearray``, ``memoryview``) so that it travels pickled like any non-plain type."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj


_SCALARS: Final = frozenset({type(None), bool, int, float, str, bytes})
_BUFFERS: Final = (bytearray, memoryview)


_BUFFER_TYPES: Final = frozenset(_BUFFERS)
_CONTAINERS: Final = frozenset({list, tuple, dict})


def _has_buffer(obj: Any) -> bool:
    """Whether a plain container holds a ``bytearray``/``memoryview`` anywhere."""
    t = type(obj)
    if t is list or t is tuple:
        # The element types in one C-level pass: a map chunk of 12,500 ints is checked
        # in ~0.15 ms instead of ~0.35 ms for a Python loop.
        types = set(map(type, obj))
        if not types.isdisjoint(_BUFFER_TYPES):
            return True
        if types.isdisjoint(_CONTAINERS):
            return False
        return any(_has_buffer(x) for x in obj if type(x) in _CONTAINERS)
    if t is dict:
        return any(_has_buffer(k) or _has_buffer(v) for k, v in obj.items())
    return t in _BUFFERS


def _mark_buffers(obj: Any) -> Any:
    """A copy of a plain structure with every buffer wrapped in :class:`_AsPickle`."""
    t = type(obj)
    if t is list:
        return [_mark_buffers(x) for x in obj]
    if t is tuple:
        return tuple(_mark_buffers(x) for x in obj)
    if t is dict:
        return {_mark_buffers(k): _mark_buffers(v) for k, v in obj.items()}
    if t in _BUFFERS:
        return _AsPickle(obj)
    return obj


def _default(obj: Any) -> msgpack.ExtType:
    if type(obj) is _AsPickle:
        obj = obj.obj
    elif type(obj) is tuple:
        return msgpack.ExtType(EXT_TUPLE, _pack(list(obj)))
    try:
        return msgpack.ExtType(EXT_PICKLE, pickle.dumps(obj, protocol=5))
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise CannotPickle(f"cannot send {type(obj).__qualname__} object: {exc}") from exc


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, strict_types=True, default=_default)


def _ext_hook(code: int, data: bytes, depth: int = 0) -> Any:
    if code == EXT_TUPLE:
        if depth >= MAX_TUPLE_DEPTH:
            raise ValueError(f"MessagePack payload nests tuples deeper than {MAX_TUPLE_DEPTH} levels")
        return tuple(_unpack(data, depth + 1))
    if code == EXT_PICKLE:
        return pickle.loads(data)
    return msgpack.ExtType(code, data)


def _unpack(data: bytes, depth: int = 0) -> Any:
    # Untrusted-data bounds: every declared str/bin/array/map/ext length is bounded by
    # len(data) (a short document cannot make it allocate more), nesting by msgpack's
    # fixed parser stack (msgpack.StackError, a ValueError), tuples by _ext_hook.
    hook = _HOOKS[depth]
    if depth <= _SHALLOW_TUPLES:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=hook)
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, ext_hook=hook, max_buffer_size=max(len(data), 1))
    unpacker.feed(data)
    try:
        value = unpacker.unpack()
    except msgpack.OutOfData:
        raise ValueError("Unpack failed: incomplete input") from None
    if unpacker.tell() != len(data):
        raise msgpack.ExtraData(value, data[unpacker.tell():])
    return value


# The ext hook for each tuple depth, made once (a starmap item is a tuple: no allocation per item).
_HOOKS: Final = (_ext_hook, *(functools.partial(_ext_hook, depth=d) for d in range(1, MAX_TUPLE_DEPTH + 1)))


def encode(obj: Any, limit: int | None = None) -> bytes:
    """Encode ``obj`` as one MessagePack document.

    ``limit`` is the host's ``max_payload_bytes``: a larger payload raises
    :class:`PayloadTooLarge` (a ``ValueError``) naming its size and the limit, before
    anything is sent. Objects that cannot be pickled raise ``TypeError``.
    """
    if type(obj) not in _SCALARS and _has_buffer(obj):
        obj = _mark_buffers(obj)
    data = _pack(obj)
    if limit is not None and limit > 0 and len(data) > limit:
        raise PayloadTooLarge(
            f"payload of {len(data)} bytes exceeds the host's limit of {limit} bytes "
            f"(max_payload_bytes)"
        )
    return data


def decode(data: bytes) -> Any:
    """Decode one MessagePack document produced by :func:`encode` (or any client)."""
    return _unpack(data)

"""The MessagePack payload rules (no host needed)."""

from __future__ import annotations

import collections
import enum
import pickle
from collections.abc import Callable
from fractions import Fraction

import msgpack
import pytest

from gilbridge._codec import EXT_PICKLE, EXT_TUPLE, PayloadTooLarge, decode, encode

Point = collections.namedtuple("Point", "x y")


class Color(enum.IntEnum):
    RED = 1


class MyInt(int):
    pass


def roundtrip(obj: object) -> object:
    return decode(encode(obj))


@pytest.mark.parametrize(
    "obj",
    [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, float("inf"), "",
     "héllo", b"", b"\x00\xff", [], {}, [1, "a", None], {"a": 1, "b": [1.5]}],
)
def test_plain_data_is_native_messagepack(obj: object) -> None:
    data = encode(obj)
    # Any MessagePack reader sees the same value: no extension types involved.
    assert msgpack.unpackb(data, raw=False, strict_map_key=False) == obj
    back = roundtrip(obj)
    assert back == obj and type(back) is type(obj)


def test_bool_stays_bool_and_none_stays_none() -> None:
    assert roundtrip([True, False, None, 1, 0]) == [True, False, None, 1, 0]
    assert [type(x) for x in roundtrip([True, 1])] == [bool, int]


def test_tuple_vs_list() -> None:
    assert roundtrip((1, 2)) == (1, 2) and type(roundtrip((1, 2))) is tuple
    assert type(roundtrip([1, 2])) is list
    assert roundtrip(()) == ()
    data = encode((1, "a"))
    ext = msgpack.unpackb(data)
    assert isinstance(ext, msgpack.ExtType) and ext.code == EXT_TUPLE
    # Other languages read the tuple's payload as a plain array.
    assert msgpack.unpackb(ext.data, raw=False) == [1, "a"]


def test_nested_structures() -> None:
    obj = {"k": [(1, [2, (3, b"x")]), {"inner": (None, True)}], 5: ((),)}
    back = roundtrip(obj)
    assert back == obj
    assert type(back["k"][0]) is tuple and type(back["k"][0][1]) is list
    assert type(back["k"][0][1][1]) is tuple and type(back[5][0]) is tuple


def test_dict_with_int_and_tuple_keys() -> None:
    obj = {1: "one", -2: "minus two", (1, 2): "pair", "s": 0}
    back = roundtrip(obj)
    assert back == obj
    assert set(map(type, back)) == {int, tuple, str}


@pytest.mark.parametrize(
    "obj",
    [Point(1, 2), Color.RED, MyInt(3), collections.OrderedDict(a=1, b=2), 2**64,
     -(2**63) - 1, 10**40, bytearray(b"ab"), {1, 2}, frozenset({3}), Fraction(1, 3), 1 + 2j],
)
def test_other_objects_travel_pickled(obj: object) -> None:
    data = encode(obj)
    ext = msgpack.unpackb(data)
    assert isinstance(ext, msgpack.ExtType) and ext.code == EXT_PICKLE
    assert pickle.loads(ext.data) == obj
    back = roundtrip(obj)
    assert back == obj and type(back) is type(obj)


def test_buffers_nested_in_plain_containers_keep_their_type() -> None:
    obj = [bytearray(b"a"), {"k": (bytearray(b"z"), b"b")}]
    back = roundtrip(obj)
    assert back == obj
    assert type(back[0]) is bytearray and type(back[1]["k"][0]) is bytearray
    assert type(back[1]["k"][1]) is bytes


def test_namedtuple_inside_list() -> None:
    back = roundtrip([Point(1, 2), (3, 4)])
    assert type(back[0]) is Point and type(back[1]) is tuple


def test_unknown_extension_types_pass_through() -> None:
    data = msgpack.packb(msgpack.ExtType(42, b"raw"))
    assert decode(data) == msgpack.ExtType(42, b"raw")


def test_unpicklable_object_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode(lambda: 1)


def test_limit_enforced_with_size_and_limit_in_message() -> None:
    payload = b"x" * 1000
    assert decode(encode(payload, limit=1003)) == payload
    with pytest.raises(ValueError, match=r"1003 bytes.*limit of 1000 bytes") as info:
        encode(payload, limit=1000)
    assert isinstance(info.value, PayloadTooLarge)


# ------------------------------------------------------------------ untrusted documents


def _nested_tuples(levels: int) -> bytes:
    """``levels`` tuples (ext 2) around 1, built byte by byte (encode recurses in Python)."""
    data = msgpack.packb(1)
    for _ in range(levels):
        data = msgpack.packb(msgpack.ExtType(EXT_TUPLE, b"\x91" + data))
    return data


def _on_a_small_stack(call: Callable[[], object]) -> object:
    """Runs ``call`` on a thread with a 1 MiB stack; what it returned or raised. A C-stack
    overflow would kill this test process instead (which is what these tests rule out)."""
    import threading

    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome.append(exc)

    previous = threading.stack_size(1 << 20)
    try:
        thread = threading.Thread(target=run)
        thread.start()
    finally:
        threading.stack_size(previous)
    thread.join(30)
    assert outcome, "the decoding thread did not finish"
    return outcome[0]


@pytest.mark.parametrize("document", [
    pytest.param(b"\x91" * 10_000 + b"\x01", id="arrays-10000-deep"),
    pytest.param(b"\x81\x01" * 10_000 + b"\x01", id="maps-10000-deep"),
])
def test_deep_nesting_is_a_value_error(document: bytes) -> None:
    outcome = _on_a_small_stack(lambda: decode(document))
    assert isinstance(outcome, ValueError), outcome


def test_deeply_nested_tuples_are_a_value_error_not_a_crash() -> None:
    # Before the bound each level took ~32 KiB of C stack: ~30 levels overflowed a 1 MiB
    # thread (a segfault), and a RecursionError came later still.
    assert _on_a_small_stack(lambda: decode(_nested_tuples(100))) == _nested_value(100)
    for levels in (101, 10_000):
        outcome = _on_a_small_stack(lambda: decode(_nested_tuples(levels)))
        assert isinstance(outcome, ValueError) and "deeper than 100 levels" in str(outcome), outcome


def _nested_value(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = (value,)
    return value


@pytest.mark.parametrize("document", [
    pytest.param(b"\xdd\xff\xff\xff\xff", id="array-of-4G-elements"),
    pytest.param(b"\xdf\xff\xff\xff\xff", id="map-of-4G-pairs"),
    pytest.param(b"\xdb\x7f\xff\xff\xff", id="str-of-2GiB"),
    pytest.param(b"\xc6\x7f\xff\xff\xff", id="bin-of-2GiB"),
    pytest.param(msgpack.packb(msgpack.ExtType(EXT_TUPLE, b"\xdd\xff\xff\xff\xff")), id="tuple-of-4G-elements"),
])
def test_declared_lengths_beyond_the_document_are_a_value_error_at_once(document: bytes) -> None:
    import time

    started = time.perf_counter()
    with pytest.raises(ValueError):
        decode(document)
    assert time.perf_counter() - started < 0.5  # refused before allocating anything

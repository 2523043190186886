"""Value and Array: stdlib conversions, slicing, locks, sharing across processes.

The semantics tests run twice: with the host's segment mapped into this process (how
every process on the host's machine accesses it) and through the host's Read/Write (how
a process elsewhere does).
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing as stdlib_mp
import os
import pickle
import time
from collections.abc import Iterator

import pytest

import gilbridge.multiprocessing as mp
from gilbridge.multiprocessing import sharedctypes

pytestmark = pytest.mark.usefixtures("host")


@pytest.fixture(autouse=True, params=["mapped", "through-host"])
def access(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """How this process reaches the values the test makes."""
    if request.param == "through-host":
        monkeypatch.setattr(sharedctypes, "_map_segment", lambda path, size: None)
    yield request.param


@pytest.mark.parametrize(
    ("typecode", "args"),
    [
        ("i", (2**32 + 5,)),  # wraps like ctypes
        ("b", (-129,)),
        ("B", (300,)),
        ("h", (-5,)),
        ("H", (70000,)),
        ("I", (-1,)),
        ("l", (-(2**40),)),
        ("L", (2**64 - 1,)),
        ("q", (2**63 - 1,)),
        ("Q", (2**64 + 3,)),
        ("f", (0.1,)),  # rounds to C float
        ("d", (0.1,)),
        ("c", (b"z",)),
        ("u", ("é",)),
        ("i", ()),
        ("c", ()),
        ("u", ()),
        ("d", ()),
    ],
)
def test_value_matches_stdlib(typecode: str, args: tuple[object, ...]) -> None:
    expected = stdlib_mp.Value(typecode, *args).value
    v = mp.Value(typecode, *args)
    assert v.value == expected
    assert type(v.value) is type(expected)
    raw = mp.Value(typecode, *args, lock=False)
    assert raw.value == expected


def test_bool_typecode() -> None:
    v = mp.Value("?", True)
    assert v.value is True
    v.value = 0
    assert v.value is False


def test_value_assignment_converts_like_ctypes() -> None:
    v = mp.Value("i", 0)
    v.value = 2**31
    assert v.value == -(2**31)
    with pytest.raises(TypeError):
        v.value = "x"
    c = mp.Value("c")
    c.value = b"q"
    assert c.value == b"q"
    with pytest.raises(TypeError):
        c.value = b"too long"


def test_ctypes_types_accepted() -> None:
    v = mp.Value(ctypes.c_double, 1.5)
    assert v.value == 1.5
    a = mp.Array(ctypes.c_int, [1, 2])
    assert a[:] == [1, 2]


@pytest.mark.parametrize("bad", ["x", "ii", 5, None, object])
def test_wrong_typecodes_are_type_errors(bad: object) -> None:
    with pytest.raises(TypeError):
        mp.Value(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mp.Array(bad, 3)  # type: ignore[arg-type]


def test_wrong_initial_value_is_type_error() -> None:
    with pytest.raises(TypeError):
        mp.Value("i", "x")
    with pytest.raises(TypeError):
        mp.Value("c", b"ab")


def test_array_semantics_match_stdlib() -> None:
    init = [1, 2, 3, 4, 5]
    a = mp.Array("i", init)
    ref = stdlib_mp.Array("i", init)
    assert len(a) == 5
    assert a[:] == ref[:] == init
    assert a[0] == 1 and a[-1] == 5
    assert a[1:3] == [2, 3] and a[::2] == [1, 3, 5] and a[::-1] == [5, 4, 3, 2, 1]
    assert a[3:1] == []
    assert list(a) == init
    a[0] = 10
    a[-1] = 50
    a[1:3] = [20, 30]
    a[::2] = [7, 8, 9]
    ref[0] = 10
    ref[-1] = 50
    ref[1:3] = [20, 30]
    ref[::2] = [7, 8, 9]
    assert a[:] == ref[:]
    with pytest.raises(IndexError):
        a[5]
    with pytest.raises(IndexError):
        a[-6] = 1
    with pytest.raises(ValueError, match="same size"):
        a[0:2] = [1]
    with pytest.raises(TypeError):
        a[0] = "x"


def test_array_of_size_and_doubles() -> None:
    a = mp.Array("d", 3)
    assert a[:] == [0.0, 0.0, 0.0]
    a[1] = 2.5
    assert a[:] == [0.0, 2.5, 0.0]


def test_char_array_value_and_raw() -> None:
    a = mp.Array("c", b"hello")
    assert a.value == b"hello" and a.raw == b"hello"
    assert a[:] == b"hello" and a[0] == b"h" and a[1:3] == b"el"
    a.value = b"hi"
    assert a.value == b"hi"
    assert a.raw == b"hi\x00lo"
    a.raw = b"HEL"
    ref = stdlib_mp.Array("c", b"hello")
    ref.value = b"hi"
    ref.raw = b"HEL"
    assert a.raw == ref.raw == b"HELlo"
    with pytest.raises(ValueError):
        a.value = b"much too long"
    a[0:2] = b"ab"
    assert a[:2] == b"ab"
    raw = mp.Array("c", 3, lock=False)
    raw.value = b"ok"
    assert raw.value == b"ok"


def test_wchar_array() -> None:
    a = mp.Array("u", "héllo")
    assert a[:] == "héllo" and a[1] == "é"


def test_get_lock_get_obj_and_raw_objects() -> None:
    v = mp.Value("i", 3)
    lock = v.get_lock()
    assert isinstance(lock, type(mp.RLock()))
    with v:
        assert lock.acquire(False) is True  # an RLock: the same thread re-enters
        lock.release()
    assert v.acquire() is True
    v.release()
    obj = v.get_obj()
    assert obj.value == 3
    obj.value = 4
    assert v.value == 4
    raw = mp.Value("i", 1, lock=False)
    with pytest.raises(AttributeError):
        raw.get_lock()
    raw_array = mp.Array("i", 2, lock=False)
    with pytest.raises(AttributeError):
        raw_array.get_lock()


def test_explicit_lock_is_used() -> None:
    lock = mp.Lock()
    v = mp.Value("i", 0, lock=lock)
    assert v.get_lock() is lock
    with lock:
        # a plain Lock is not re-entrant, exactly as in the stdlib: the access would
        # wait for the lock, so probe it from here instead.
        assert v.get_obj().value == 0
    v.value = 5
    assert v.value == 5


def test_value_pickles_to_the_same_object() -> None:
    v = mp.Value("d", 1.25)
    a = mp.Array("i", [1, 2, 3])
    v2, a2 = pickle.loads(pickle.dumps((v, a)))
    assert v2.value == 1.25 and a2[:] == [1, 2, 3]
    v2.value = 2.5
    a2[0] = 9
    assert v.value == 2.5 and a[0] == 9
    raw = pickle.loads(pickle.dumps(v.get_obj()))
    with pytest.raises(AttributeError):
        raw.get_lock()


def test_counter_two_processes_under_lock(children) -> None:
    counter = mp.Value("i", 0, name="tests.values.counter")
    code = """
        import gilbridge.multiprocessing as mp
        c = mp.Value("i", name="tests.values.counter", create=False)
        for _ in range(1000):
            with c.get_lock():
                c.value += 1
        """
    procs = [children.start(code) for _ in range(2)]
    for p in procs:
        p.wait_ok(timeout=120)
    assert counter.value == 2000


def test_named_value_shares_its_lock(children) -> None:
    v = mp.Value("q", 7, name="tests.values.shared")
    assert v.get_lock().name == "tests.values.shared.lock"
    with v.get_lock():
        out = children.run(
            """
            import gilbridge.multiprocessing as mp
            v = mp.Value("q", name="tests.values.shared", create=False)
            print(v.get_lock().name, v.get_lock().acquire(False), v.get_obj().value)
            """
        )
    assert out.split() == ["tests.values.shared.lock", "False", "7"]


def test_named_array_attach_gets_host_parameters(children) -> None:
    a = mp.Array("h", [1, -2, 3], name="tests.values.arr")
    out = children.run(
        """
        import gilbridge.multiprocessing as mp
        a = mp.Array("i", 0, name="tests.values.arr", create=False)  # host's typecode wins
        print(a[:], len(a))
        a[1] = 40
        """
    )
    assert out.strip() == "[1, -2, 3] 3"
    assert a[:] == [1, 40, 3]


def test_named_value_attaches_as_a_same_size_typecode_and_keeps_its_own(children) -> None:
    # 'l' and 'q' are both 8-byte signed integers here ('L'/'Q' unsigned): a C# long (q)
    # or another script's 'q' shares a value made as 'l', which stays an 'l' for everyone.
    v = mp.Value("l", -5, name="tests.values.clong")
    a = mp.Array("Q", [1, 2], name="tests.values.culong")
    out = children.run(
        """
        import gilbridge.multiprocessing as mp
        v = mp.Value("q", name="tests.values.clong")
        a = mp.Array("L", 2, name="tests.values.culong")
        print(v._typecode, v.value, a._typecode, a[:])
        v.value = 7
        for code in ("i", "Q", "d"):
            try:
                mp.Value(code, name="tests.values.clong")
            except FileExistsError as error:
                print(code, "refused:", error)
        """
    )
    lines = out.splitlines()
    assert lines[0] == "l -5 Q [1, 2]"
    for line, code in zip(lines[1:], ("i", "Q", "d"), strict=True):
        assert line.startswith(f"{code} refused:") and f"a Value of type 'l', not a Value of type '{code}'" in line
    assert (v.value, v._typecode, a._typecode) == (7, "l", "Q")


def test_lock_none_means_a_new_rlock_as_in_the_stdlib() -> None:
    # multiprocessing.Value(..., lock=None) is synchronized with a fresh RLock, not raw.
    for make in (lambda: mp.Value("i", 5, lock=None), lambda: mp.Array("i", 3, lock=None)):
        shared = make()
        lock = shared.get_lock()
        assert lock.acquire(timeout=5)
        assert lock.acquire(timeout=5)  # an RLock: the owner re-enters
        lock.release()
        lock.release()
        assert shared.get_obj() is not None
    assert not hasattr(mp.Value("i", 5, lock=False), "get_lock")


def test_values_are_mapped_from_the_hosts_segment(access: str) -> None:
    v = mp.Value("i", 3)
    assert v.is_mapped is (access == "mapped")
    raw = v.get_obj()
    if access == "mapped":
        # The stdlib's raw object: the ctypes object itself, over the host's memory.
        assert isinstance(raw, ctypes.c_int) and raw.value == 3
        assert v.get_obj() is raw
    else:
        assert isinstance(raw, sharedctypes.RawValueProxy) and raw.value == 3
    path = v._segment
    assert os.path.basename(path).startswith("gilbridge-")
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_a_write_through_the_host_is_seen_in_the_mapping_and_back(monkeypatch: pytest.MonkeyPatch,
                                                                    access: str) -> None:
    if access != "mapped":
        pytest.skip("mixes both paths itself")
    mapped = mp.Array("d", [0.5, 1.5, 2.5], name="tests.values.paths")
    monkeypatch.setattr(sharedctypes, "_map_segment", lambda path, size: None)
    remote = mp.Array("d", 0, name="tests.values.paths", create=False)
    assert mapped.is_mapped and not remote.is_mapped
    remote[1] = -7.0
    assert mapped[:] == [0.5, -7.0, 2.5]
    mapped[2] = 99.25
    assert remote[2] == 99.25


def test_the_segment_file_goes_when_the_last_proxy_does(access: str) -> None:
    v = mp.Array("q", 1000, lock=False)
    path = sharedctypes._bridge_of(v)._segment
    assert os.path.exists(path)
    del v
    gc.collect()
    deadline = time.monotonic() + 10
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(path), "the host should delete a freed value's segment"


def _fill_half(args: tuple[object, int, int]) -> int:
    array, start, stop = args
    for i in range(start, stop):
        array[i] = i * i
    return os.getpid()


def test_an_array_written_by_two_pool_workers_is_read_by_the_caller(access: str) -> None:
    if access != "mapped":
        pytest.skip("workers always map the segment; this process's path is not involved")
    for make in (lambda: mp.Array("q", 2000), lambda: mp.Array("q", 2000, lock=False)):
        array = make()
        with mp.Pool(2) as pool:
            pids = pool.map(_fill_half, [(array, 0, 1000), (array, 1000, 2000)], chunksize=1)
        assert os.getpid() not in pids
        assert array[:] == [i * i for i in range(2000)]


def test_raw_objects_are_ctypes_objects_over_shared_memory(access: str) -> None:
    values = mp.RawArray("d", [0.5, 1.5, 2.5])
    scalar = mp.RawValue("i", 7)
    if access == "mapped":
        assert isinstance(values, ctypes.Array) and len(values) == 3
        assert type(values).__name__ == "c_double_Array_3"
        view = memoryview(values).cast("B").cast("d")  # the buffer protocol, as numpy uses it
        view[1] = -2.0
        assert values[:] == [0.5, -2.0, 2.5]
        assert isinstance(scalar, ctypes.c_int)
    else:
        assert isinstance(values, sharedctypes.RawArrayProxy)
    # Pickled, a raw object is the same host object, not a copy.
    again = pickle.loads(pickle.dumps(values))
    again[2] = 9.0
    assert values[2] == 9.0
    scalar2 = pickle.loads(pickle.dumps(scalar))
    scalar2.value = 8
    assert scalar.value == 8
    # Structures are the stdlib's (Bridge keeps the simple C types).
    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]
    point = mp.RawValue(Point, 1, 2.0)
    assert (point.x, point.y) == (1, 2.0)


def test_synchronized_and_copy(access: str) -> None:
    raw = mp.RawArray("i", [1, 2, 3])
    wrapped = sharedctypes.synchronized(raw)
    assert isinstance(wrapped, sharedctypes.SynchronizedArray)
    with wrapped.get_lock():
        wrapped[0] = 10
    assert raw[0] == 10
    again = pickle.loads(pickle.dumps(wrapped))
    assert again.get_lock().name == wrapped.get_lock().name
    assert again[:] == [10, 2, 3]
    lock = mp.Lock()
    assert sharedctypes.synchronized(mp.RawValue("d", 1.0), lock).get_lock() is lock

    duplicate = sharedctypes.copy(raw)
    assert duplicate[:] == [10, 2, 3]
    duplicate[1] = 20
    assert raw[1] == 2
    scalar = sharedctypes.copy(mp.RawValue("q", -5))
    assert scalar.value == -5
    stdlib_raw = stdlib_mp.RawArray("i", [4, 5])  # the stdlib's objects go to the stdlib
    assert sharedctypes.copy(stdlib_raw)[:] == [4, 5]


class _Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]


def _double_point(point: object) -> None:
    with point.get_lock():  # type: ignore[attr-defined]
        point.x *= 2  # type: ignore[attr-defined]
        point.y *= 2  # type: ignore[attr-defined]


def test_a_structure_value_is_the_stdlibs_guarded_by_a_bridge_lock(access: str) -> None:
    if access != "mapped":
        pytest.skip("no host segment involved")
    point = mp.Value(_Point, 3, 2.5)
    assert isinstance(point.get_lock(), type(mp.RLock()))
    p = mp.Process(target=_double_point, args=(point,))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert (point.x, point.y) == (6, 5.0)

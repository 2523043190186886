"""Named objects (create / attach), bad input, and the host's own payload checks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import gilbridge.multiprocessing as mp
from gilbridge import HostUnavailableError
from gilbridge._connection import get_connection
from gilbridge._proto.bridge.v1 import common_pb2, queues_pb2, values_pb2

from conftest import HostProcess, start_host, stop_host

pytestmark = pytest.mark.usefixtures("host")

FACTORIES: dict[str, Callable[..., Any]] = {
    "Lock": lambda **kw: mp.Lock(**kw),
    "RLock": lambda **kw: mp.RLock(**kw),
    "Semaphore": lambda **kw: mp.Semaphore(1, **kw),
    "BoundedSemaphore": lambda **kw: mp.BoundedSemaphore(1, **kw),
    "Event": lambda **kw: mp.Event(**kw),
    "Condition": lambda **kw: mp.Condition(**kw),
    "Barrier": lambda **kw: mp.Barrier(2, **kw),
    "Queue": lambda **kw: mp.Queue(**kw),
    "JoinableQueue": lambda **kw: mp.JoinableQueue(**kw),
    "SimpleQueue": lambda **kw: mp.SimpleQueue(**kw),
    "Value": lambda **kw: mp.Value("i", **kw),
    "Array": lambda **kw: mp.Array("i", 2, **kw),
}


@pytest.mark.parametrize("kind", sorted(FACTORIES))
@pytest.mark.parametrize(
    "bad_name", ["has space", "x" * 201, "~reserved", "semi;colon", "é", "new\nline"]
)
def test_invalid_names_are_value_errors(kind: str, bad_name: str) -> None:
    with pytest.raises(ValueError):
        FACTORIES[kind](name=bad_name)


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_unknown_name_with_create_false_is_file_not_found(kind: str) -> None:
    with pytest.raises(FileNotFoundError):
        FACTORIES[kind](name=f"tests.errors.missing.{kind}", create=False)


def test_name_argument_checks() -> None:
    with pytest.raises(ValueError):
        mp.Lock(name="")
    with pytest.raises(TypeError):
        mp.Lock(name=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="create=False"):
        mp.Lock(create=False)


def test_valid_name_characters() -> None:
    lock = mp.Lock(name="A-z_0.9:/x")
    assert lock.name == "A-z_0.9:/x"
    assert mp.Lock(name="x" * 200).name == "x" * 200


def test_create_or_attach_shares_and_checks_kind_and_parameters() -> None:
    a = mp.Lock(name="tests.errors.shared")
    b = mp.Lock(name="tests.errors.shared")  # attaches
    assert a.acquire()
    assert b.acquire(False) is False
    a.release()
    with pytest.raises(FileExistsError):
        mp.RLock(name="tests.errors.shared")  # same family, other kind
    ev = mp.Event(name="tests.errors.shared")  # another family: its own namespace
    q3 = mp.Queue(3, name="tests.errors.q3")
    with pytest.raises(FileExistsError):
        mp.Queue(4, name="tests.errors.q3")
    v = mp.Value("i", name="tests.errors.v")
    with pytest.raises(FileExistsError):
        mp.Value("d", name="tests.errors.v")
    with pytest.raises(FileExistsError):
        mp.Array("i", 3, name="tests.errors.v")
    assert (ev.name, q3.name, v.name) == ("tests.errors.shared", "tests.errors.q3", "tests.errors.v")


def test_attach_by_host_name_of_anonymous_object() -> None:
    q = mp.Queue()
    assert q.name.startswith("~")
    other = mp.Queue(name=q.name, create=False)
    q.put("x")
    assert other.get(timeout=5) == "x"


def test_named_objects_shared_by_two_independent_scripts(children) -> None:
    producer = children.start(
        """
        import gilbridge.multiprocessing as mp
        q = mp.Queue(name="tests.errors.pipeline")
        done = mp.Event(name="tests.errors.pipeline.done")
        total = mp.Value("q", 0, name="tests.errors.pipeline.total")
        for i in range(100):
            q.put({"i": i, "sq": (i, i * i)})
        q.put(None)
        print("produced", flush=True)
        assert done.wait(60)
        print("total", total.value, flush=True)
        """
    )
    producer.wait_line("produced")
    consumer = children.start(
        """
        import gilbridge.multiprocessing as mp
        q = mp.Queue(name="tests.errors.pipeline", create=False)
        total = mp.Value("q", name="tests.errors.pipeline.total", create=False)
        s = 0
        while (item := q.get(timeout=30)) is not None:
            assert item["sq"] == (item["i"], item["i"] ** 2)
            s += item["sq"][1]
        with total.get_lock():
            total.value = s
        mp.Event(name="tests.errors.pipeline.done", create=False).set()
        """
    )
    consumer.wait_ok()
    assert producer.wait_line("total") == f"total {sum(i * i for i in range(100))}"
    producer.wait_ok()


def test_payload_just_under_the_limit_is_accepted() -> None:
    """Everything up to HostInfo.max_payload_bytes must go through (queue item and
    shared-value write)."""
    conn = get_connection()
    limit = conn.max_payload
    q = mp.Queue()
    item = b"z" * (limit - 16)  # bin32 header: 5 bytes
    q.put(item)
    assert q.get(timeout=60) == item
    del item


def test_host_rejects_an_oversized_item_sent_directly() -> None:
    """Bypass the client-side check: the host must refuse with ValueError on its own."""
    conn = get_connection()
    limit = conn.max_payload
    q = mp.Queue()
    ref = common_pb2.ObjectRef(session_id=conn.session_id, name=q.name)
    too_big = b"\xc6" + (limit + 1).to_bytes(4, "big") + b"x" * (limit + 1)  # bin32
    with pytest.raises(ValueError):
        conn.call(conn.queues.Put, queues_pb2.PutRequest(target=ref, items=[too_big]))
    assert q.empty()


@pytest.mark.parametrize(
    "item",
    [b"\xc1", b"\x92\x01", b"\x01\x02", b""],
    ids=["never-used-byte", "truncated-array", "two-values", "empty"],
)
def test_host_rejects_malformed_items_sent_directly(item: bytes) -> None:
    conn = get_connection()
    q = mp.Queue()
    ref = common_pb2.ObjectRef(session_id=conn.session_id, name=q.name)
    with pytest.raises(ValueError):
        conn.call(conn.queues.Put, queues_pb2.PutRequest(target=ref, items=[b"\x01", item]))
    assert q.empty()  # the whole batch was refused


def test_value_write_errors_from_host() -> None:
    conn = get_connection()
    a = mp.Array("i", 2)
    ref = common_pb2.ObjectRef(session_id=conn.session_id, name=a.name)
    with pytest.raises((ValueError, IndexError)):
        conn.call(conn.values.Write, values_pb2.WriteRequest(target=ref, index=1, data=b"\0" * 8))
    with pytest.raises(ValueError):
        conn.call(conn.values.Write, values_pb2.WriteRequest(target=ref, index=0, data=b"\0" * 3))
    assert a[:] == [0, 0]


def test_errors_from_many_threads_do_not_break_the_connection() -> None:
    errors: list[BaseException] = []

    def bad() -> None:
        try:
            mp.Lock().release()
        except ValueError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=bad) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 8
    assert mp.Lock().acquire(False)


# --------------------------------------------------------------------------- small host


@pytest.fixture(scope="module")
def small_host(tmp_path_factory: pytest.TempPathFactory):
    host = start_host(Path(tmp_path_factory.mktemp("small")), "--Bridge:MaxPayloadBytes=65536")
    try:
        yield host
    finally:
        alive = host.proc.poll() is None
        stop_host(host)
        assert alive, f"the small host died:\n{host.log_tail()}"


def test_payload_limit_of_a_small_host(small_host: HostProcess, children) -> None:
    out = children.run(
        """
        import gilbridge.multiprocessing as mp
        from gilbridge._connection import get_connection
        print("limit", get_connection().max_payload)
        q = mp.Queue()
        try:
            q.put(b"x" * 70000)
        except ValueError as exc:
            print("put", isinstance(exc, ValueError), str(exc))
        q.put(b"x" * 60000)
        print("got", len(q.get(timeout=10)))
        try:
            mp.Array("c", 70000)  # could never be read or written whole
        except ValueError as exc:
            print("array", type(exc).__name__)
        a = mp.Array("c", 65536)
        a[0:60000] = b"y" * 60000
        print("raw", a.raw.count(b"y"))
        """,
        env={"GILBRIDGE_ADDRESS": small_host.address},
    )
    lines = out.splitlines()
    assert lines[0] == "limit 65536"
    assert lines[1].startswith("put True") and "65536" in lines[1] and "70005" in lines[1]
    assert lines[2:] == ["got 60000", "array ValueError", "raw 60000"]
    small_host.assert_alive()


def test_unreachable_configured_address_is_connection_error(children, tmp_path: Path) -> None:
    out = children.run(
        """
        import gilbridge.multiprocessing as mp
        from gilbridge import HostUnavailableError
        try:
            mp.Lock()
        except ConnectionError as exc:
            print(type(exc).__name__, isinstance(exc, HostUnavailableError), str(exc))
        """,
        env={"GILBRIDGE_ADDRESS": f"unix:{tmp_path}/nothing.sock"},
    )
    assert out.startswith("HostUnavailableError True")
    assert f"{tmp_path}/nothing.sock" in out
    assert issubclass(HostUnavailableError, ConnectionError)

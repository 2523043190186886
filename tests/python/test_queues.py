"""Queue, JoinableQueue, SimpleQueue: stdlib semantics, batching, prefetch, leases."""

from __future__ import annotations

import collections
import json
import os
import pickle
import queue
import signal
import threading
import time
from typing import Any

import pytest

import gilbridge.multiprocessing as mp
from gilbridge._connection import get_connection
from gilbridge._proto.bridge.v1 import queues_pb2

from conftest import wait_for

pytestmark = pytest.mark.usefixtures("host")

Point = collections.namedtuple("Point", "x y")


def server_state(q: object) -> queues_pb2.QueueState:
    conn = get_connection()
    return conn.queues.GetQueueState(
        queues_pb2.QueueStateRequest(target={"session_id": conn.session_id, "name": q.name})  # type: ignore[attr-defined]
    )


def test_fifo_and_item_types() -> None:
    q = mp.Queue()
    items = [1, "two", (3, [4]), [5, (6,)], {"k": (1, 2)}, None, b"bytes", Point(1, 2), 2**70]
    for item in items:
        q.put(item)
    got = [q.get(timeout=5) for _ in items]
    assert got == items
    assert [type(x) for x in got] == [type(x) for x in items]


def test_empty_and_qsize_right_after_put() -> None:
    q = mp.Queue()
    assert q.empty() is True and q.qsize() == 0
    q.put(1)
    assert q.empty() is False  # the buffered put is flushed first
    q.put(2)
    assert q.qsize() == 2
    assert q.full() is False
    assert q.get() == 1 and q.get() == 2
    assert q.empty()


def test_get_timeout_and_nowait_raise_empty() -> None:
    q = mp.Queue()
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(False)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.3)
    assert time.monotonic() - t0 >= 0.25
    with pytest.raises(queue.Empty):
        q.get(True, 0)


def test_timeouts_validated() -> None:
    q = mp.Queue()
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match="non-negative"):
        q.put(1, timeout=-0.5)
    with pytest.raises(TypeError):
        q.get(timeout="1")  # type: ignore[arg-type]
    q.put(1)
    assert q.get(False, -1) == 1  # ignored when not blocking, like the stdlib


def test_bounded_queue_full() -> None:
    q = mp.Queue(maxsize=2)
    q.put(1)
    q.put(2)
    assert q.full() is True and q.qsize() == 2
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.3)
    assert time.monotonic() - t0 >= 0.25
    assert q.get() == 1
    q.put_nowait(3)  # get freed the space at once
    assert [q.get(), q.get()] == [2, 3]
    # the last item is acknowledged with the next call (here qsize's)
    assert server_state(q).leased == q._st.unacked == 1
    assert q.qsize() == 0 and server_state(q).leased == 0


def test_bounded_put_blocks_until_space(children) -> None:
    q = mp.Queue(maxsize=1)
    q.put("a")
    child = children.start(
        """
        import pickle, sys, time
        q = pickle.loads(bytes.fromhex(sys.argv[1]))
        time.sleep(0.5)
        print("got", q.get(timeout=20), flush=True)
        """,
        pickle.dumps(q).hex(),
    )
    t0 = time.monotonic()
    q.put("b", timeout=20)
    assert time.monotonic() - t0 >= 0.3
    assert child.wait_line("got") == "got a"
    child.wait_ok()
    assert q.get(timeout=5) == "b"


def test_close_join_thread_cancel() -> None:
    q = mp.Queue()
    with pytest.raises(AssertionError):
        q.join_thread()
    for i in range(100):
        q.put(i)
    q.close()
    with pytest.raises(ValueError, match="is closed"):
        q.put(1)
    with pytest.raises(ValueError, match="is closed"):
        q.get()
    q.join_thread()  # the feeder sent everything
    other = pickle.loads(pickle.dumps(q))
    assert other.qsize() == 100
    assert [other.get() for _ in range(100)] == list(range(100))
    q.cancel_join_thread()


def test_payload_over_the_limit_is_value_error() -> None:
    limit = get_connection().max_payload
    assert limit > 0
    q = mp.Queue()
    with pytest.raises(ValueError, match=f"limit of {limit} bytes"):
        q.put(b"x" * (limit + 1))
    q.put(b"ok")
    assert q.get(timeout=5) == b"ok"


def test_producer_in_another_process_order_kept(children) -> None:
    q = mp.Queue()
    child = children.start(
        """
        import pickle, sys
        q = pickle.loads(bytes.fromhex(sys.argv[1]))
        for i in range(5000):
            q.put(i)
        # no explicit flush: exiting must send everything buffered
        """,
        pickle.dumps(q).hex(),
    )
    got = [q.get(timeout=30) for _ in range(5000)]
    child.wait_ok()
    assert got == list(range(5000))
    assert q.empty()


def test_consumer_in_another_process(children) -> None:
    q = mp.Queue()
    results = mp.Queue()
    for i in range(200):
        q.put((i, str(i)))
    q.put(None)
    child = children.start(
        """
        import pickle, sys
        q, results = pickle.loads(bytes.fromhex(sys.argv[1]))
        total = 0
        while (item := q.get(timeout=30)) is not None:
            assert item == (item[0], str(item[0])), item
            total += item[0]
        results.put(total)
        """,
        pickle.dumps((q, results)).hex(),
    )
    assert results.get(timeout=30) == sum(range(200))
    child.wait_ok()


def test_adaptive_prefetch_grows_for_a_fast_consumer_only() -> None:
    q = mp.Queue()
    for i in range(3000):
        q.put(i)
    assert [q.get(timeout=5) for _ in range(1000)] == list(range(1000))
    # a tight loop gets batches: items wait in the local prefetch buffer
    assert q._st.batch > 1 and len(q._st.prefetch) > 0
    assert server_state(q).leased == len(q._st.prefetch) + q._st.unacked
    assert [q.get(timeout=5) for _ in range(2000)] == list(range(1000, 3000))
    for i in range(4):
        q.put(i)
    for i in range(4):
        time.sleep(0.01)  # a slow consumer: one item per Get
        assert q.get(timeout=5) == i
    assert q._st.batch == 1
    assert len(q._st.prefetch) == 0


def test_slow_consumer_does_not_hoard(children) -> None:
    q = mp.Queue()
    for i in range(40):
        q.put(i)
    child = children.start(
        """
        import pickle, sys, time
        q = pickle.loads(bytes.fromhex(sys.argv[1]))
        got = []
        for _ in range(3):
            got.append(q.get(timeout=20))
            time.sleep(0.1)
        print("slow", len(got), flush=True)
        time.sleep(30)
        """,
        pickle.dumps(q).hex(),
    )
    child.wait_line("slow")
    # the slow consumer holds at most its current item: everything else is available
    st = server_state(q)
    assert st.leased <= 1, st
    got = []
    while True:
        try:
            got.append(q.get(timeout=0.5))
        except queue.Empty:
            break
    assert len(got) >= 36
    child.kill()


def test_killed_consumer_does_not_lose_prefetched_items(children) -> None:
    n = 3000
    q = mp.Queue()
    for i in range(n):
        q.put(i)
    assert q.qsize() == n
    child = children.start(
        """
        import pickle, sys, time
        q = pickle.loads(bytes.fromhex(sys.argv[1]))
        for _ in range(600):
            q.get(timeout=20)
        print("holding", len(q._st.prefetch), q._st.unacked, flush=True)
        time.sleep(60)
        """,
        pickle.dumps(q).hex(),
    )
    _, prefetched, unacked = child.wait_line("holding").split()
    assert int(prefetched) > 0, "the fast consumer should have prefetched items"
    leased = server_state(q).leased
    assert leased == int(prefetched) + int(unacked)
    os.kill(child.proc.pid, signal.SIGKILL)
    child.proc.wait(10)
    # The lease (2 s) lapses; the host returns the leased items to the head, in order.
    assert wait_for(lambda: server_state(q).leased == 0, timeout=15)
    got = []
    while True:
        try:
            got.append(q.get(timeout=0.5))
        except queue.Empty:
            break
    assert got == sorted(got)
    assert set(got) | set(range(600)) == set(range(n))
    assert set(range(600, n)) <= set(got)


def test_joinable_queue(children) -> None:
    q = mp.JoinableQueue()
    with pytest.raises(ValueError):
        q.task_done()
    for i in range(20):
        q.put(i)
    child = children.start(
        """
        import pickle, sys, time
        q = pickle.loads(bytes.fromhex(sys.argv[1]))
        for _ in range(20):
            q.get(timeout=20)
            time.sleep(0.01)
            q.task_done()
        """,
        pickle.dumps(q).hex(),
    )
    t0 = time.monotonic()
    q.join()
    assert time.monotonic() - t0 >= 0.1
    child.wait_ok()
    with pytest.raises(ValueError):
        q.task_done()
    q.join()  # nothing unfinished: returns at once


def test_joinable_join_waits_for_all_task_done() -> None:
    q = mp.JoinableQueue()
    q.put(1)
    q.put(2)
    joined = threading.Event()
    t = threading.Thread(target=lambda: (q.join(), joined.set()))
    t.start()
    q.get()
    q.task_done()
    time.sleep(0.3)
    assert not joined.is_set()
    q.get()
    q.task_done()
    t.join(10)
    assert joined.is_set()


def test_simple_queue(children) -> None:
    q = mp.SimpleQueue()
    assert q.empty()
    q.put((1, 2))
    assert not q.empty()
    assert q.get() == (1, 2)
    child = children.start(
        """
        import pickle, sys
        q = pickle.loads(bytes.fromhex(sys.argv[1]))
        q.put("from child")
        """,
        pickle.dumps(q).hex(),
    )
    child.wait_ok()
    assert q.get() == "from child"
    q.close()
    with pytest.raises(ValueError):
        q.get()


def test_threads_share_a_queue() -> None:
    q = mp.Queue()
    out: list[int] = []
    lock = threading.Lock()

    def consume() -> None:
        while True:
            item = q.get(timeout=20)
            if item is None:
                return
            with lock:
                out.append(item)

    threads = [threading.Thread(target=consume) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(1000):
        q.put(i)
    for _ in threads:
        q.put(None)
    for t in threads:
        t.join(30)
    assert sorted(out) == list(range(1000))


class _NotSerializable:
    def __reduce__(self) -> Any:
        raise AttributeError("no pickling for you")


@pytest.mark.parametrize("maxsize", [0, 1])
def test_an_unpicklable_put_is_reported_and_the_queue_goes_on(maxsize: int,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    # As the stdlib's feeder thread (bpo-30414, bpo-33078): the traceback goes to stderr,
    # nothing is put, no space is taken, and the next put works.
    q = mp.Queue(maxsize=maxsize)
    q.put(_NotSerializable())
    q.put(True)
    assert q.qsize() == 1
    assert q.get(timeout=10) is True
    assert q.empty()
    assert "no pickling for you" in capfd.readouterr().err
    with pytest.raises(ValueError):  # a payload over the host's limit still raises
        q.put(b"x" * (get_connection().max_payload + 1))


def test_on_queue_feeder_error_is_the_hook_a_subclass_overrides() -> None:
    seen: list[tuple[str, object]] = []

    from gilbridge.multiprocessing.queues import Queue

    class Reporting(Queue):
        @staticmethod
        def _on_queue_feeder_error(e: BaseException, obj: object) -> None:
            seen.append((type(e).__name__, type(obj).__name__))

    q = Reporting()
    q.put(_NotSerializable())
    assert seen == [("AttributeError", "_NotSerializable")]


def test_the_queue_classes_take_the_stdlibs_ctx_keyword() -> None:
    # multiprocessing.queues.Queue(maxsize, *, ctx): subclasses written for the stdlib
    # pass ctx=multiprocessing.get_context().
    from gilbridge.multiprocessing import queues

    for cls in (queues.Queue, queues.JoinableQueue):
        q = cls(3, ctx=mp.get_context())
        q.put(1)
        assert q.get(timeout=10) == 1
    simple = queues.SimpleQueue(ctx=mp.get_context())
    simple.put(2)
    assert simple.get() == 2


# --------------------------------------------------------------------------- bounded batching

BOUNDED_PRODUCER = """
import pickle, sys
q = pickle.loads(bytes.fromhex(sys.argv[1]))
k, n = int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    q.put((k, i))
q.close()
q.join_thread()
print("sent", flush=True)
"""

BOUNDED_CONSUMER = """
import json, pickle, sys
q = pickle.loads(bytes.fromhex(sys.argv[1]))
n = int(sys.argv[2])
got = [q.get(timeout=60) for _ in range(n)]
print("got", json.dumps(got), flush=True)
"""


def test_a_bounded_queue_under_4_by_4_load_delivers_every_item_exactly_once(children) -> None:
    q = mp.Queue(maxsize=100)
    blob = pickle.dumps(q).hex()
    per_producer = 3000
    producers = [children.start(BOUNDED_PRODUCER, blob, str(k), str(per_producer)) for k in range(4)]
    consumers = [children.start(BOUNDED_CONSUMER, blob, str(per_producer)) for _ in range(4)]
    got: list[tuple[int, int]] = []
    for consumer in consumers:
        # (a consumer that exits returns the items it prefetched and never handed out;
        # the others get them, so the order across consumers is not checked)
        got += [tuple(item) for item in json.loads(consumer.wait_line("got", timeout=120)[4:])]
    for child in producers + consumers:
        child.wait_ok()
    assert sorted(got) == [(k, i) for k in range(4) for i in range(per_producer)]
    st = server_state(q)
    assert (st.size, st.reserved) == (0, 0), st


def test_a_fast_producer_reserves_slots_and_hands_back_the_unused_ones(children) -> None:
    q = mp.Queue(maxsize=100)
    for i in range(30):
        q.put(i)  # back to back: later puts use slots reserved by earlier ones
    # unused slots go back once this producer is idle: another fills the queue to maxsize
    assert wait_for(lambda: server_state(q).reserved == 0, timeout=10), server_state(q)
    assert q._st.credits == 0
    out = children.run(
        """
        import pickle, queue, sys
        q = pickle.loads(bytes.fromhex(sys.argv[1]))
        n = 0
        while True:
            try:
                q.put_nowait(n)
            except queue.Full:
                break
            n += 1
        q.close(); q.join_thread()
        print("put", n, q.full())
        """,
        pickle.dumps(q).hex(),
    )
    assert out.split() == ["put", "70", "True"]
    assert q.qsize() == 100 and q.full()
    assert [q.get(timeout=5) for _ in range(30)] == list(range(30))
    assert not q.full()

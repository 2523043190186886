"""Queue, JoinableQueue and SimpleQueue living in the Bridge host, with the semantics of
``multiprocessing.queues``.

Data flow in one process::

    put() --encode--> local buffer --feeder thread: Put(batch)--> host queue
    get() <--decode-- prefetch buffer <--Get(max_items=n, ack=k)-- host queue

* ``put`` on an unbounded Queue never blocks: the item is encoded (and checked against
  the host's payload limit, ValueError) in the caller's thread and appended to a local
  buffer; a daemon feeder thread sends everything buffered in one Put per round (up to
  1000 items / 1 MiB), so bursts batch naturally. SimpleQueue puts synchronously.
* A bounded queue (``maxsize > 0``) batches the same way once this process holds
  reserved slots, as the stdlib's put acquires a semaphore slot and leaves the sending
  to its feeder: a put with a slot in hand buffers the item without a round trip. A put
  without one first waits for the feeder's batch in flight (its reply tops the slots
  up), then is a synchronous Put (waiting for space, ``queue.Full``) that also asks for
  more slots: none for an occasional producer, doubling up to ``maxsize // 2`` (at most
  1024) while puts come back to back. Reserved slots count against maxsize for everyone;
  the host grants only free ones, never ahead of blocked puts; the feeder hands unused
  ones back after CREDIT_IDLE seconds without a put, and the host frees them when the
  session ends.
* An object that cannot be pickled is reported as the stdlib's feeder thread does (a
  traceback on stderr, ``_on_queue_feeder_error``) and not put; the queue goes on.
* ``get`` serves a local prefetch buffer first; when it is empty it calls Get with
  ``ack`` = items handed out since the last ack and ``max_items`` = an adaptive prefetch
  (1, doubling up to 256 while the consumer drains full batches back to back, less than
  2 ms apart, kept while batches come back partial as fast; back to 1 otherwise), so a
  slow consumer never hoards items. Items are
  leased: if this process dies before acknowledging them, the host puts them back at
  the head of the queue. Delivery is at-least-once: an item handed to a consumer that
  dies before its next get/ack may be delivered again. A handed-out item's space in a
  bounded queue frees at once (leases do not count against maxsize), so bounded queues
  prefetch too; items returned by a dead consumer may exceed maxsize for a while.
* This process's buffered puts are flushed before get/qsize/empty/full/join/pickling,
  and at exit (unless ``cancel_join_thread()``), followed by pending acks and Goodbye.
"""

from __future__ import annotations

import os
import queue as _queue
import time
from typing import Any

from .._codec import PayloadTooLarge, decode, encode, pickling_error
from .._connection import Connection, get_connection
from ._base import (
    JOINABLE_QUEUE,
    KIND_NAMES,
    QUEUE,
    SIMPLE_QUEUE,
    BridgeObject,
    check_timeout,
    wait_policy,
)
from ._queuelocal import FAST_CONSUMER_GAP, MAX_PREFETCH, QueueLocal, pb, queue_collected, wait_block

__all__ = ["JoinableQueue", "Queue", "SimpleQueue", "attach"]


class _BaseQueue(BridgeObject):
    _KIND = QUEUE
    _buffered_put = True

    def __init__(self, maxsize: int = 0, *, name: str | None = None, create: bool = True) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        kind = self._KIND
        messages = pb()

        def rpc(conn: Connection, obj_name: str, mode: int) -> Any:
            return conn.call(
                conn.queues.CreateQueue,
                messages.CreateQueueRequest(
                    session_id=conn.session_id, name=obj_name, mode=mode, kind=kind,
                    maxsize=max(maxsize, 0),
                ),
            )

        conn, reply, obj_name = self._open(kind, name, create, rpc)
        if reply.kind != kind:
            conn.drop_ref(kind, obj_name)
            raise TypeError(
                f"object {obj_name!r} is a {KIND_NAMES.get(reply.kind, reply.kind)}, "
                f"not a {KIND_NAMES[kind]}"
            )
        self._maxsize = max(int(reply.maxsize), 0)
        self._st = QueueLocal(obj_name, self._maxsize)
        conn.register_flushable(self._st)
        self._st.registered = True
        self._bind(conn, kind, obj_name, self._st, callback=queue_collected)

    def _local(self) -> QueueLocal:
        """This process's state (fresh after a fork: the parent's buffered and prefetched
        items stay the parent's)."""
        st = self._st
        conn = get_connection()
        if st.conn is not conn:
            if st.pid != os.getpid():
                st = QueueLocal(self._name, self._maxsize)
                self._st = st
            st.conn = conn
            st.registered = False
        if not st.registered:
            conn.register_flushable(st)
            st.registered = True
        return st

    def _check_closed(self, st: QueueLocal) -> None:
        if st.closed:
            raise ValueError(f"Queue {self!r} is closed")

    # ------------------------------------------------------------ put side

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj`` into the queue.

        Unbounded queue: never blocks (the item is buffered and sent by the feeder
        thread). Bounded queue: with a slot reserved by this process, buffered likewise;
        otherwise waits for space at most ``timeout`` seconds (forever when None; not at
        all when ``block`` is false) and raises ``queue.Full``.
        ValueError if the queue is closed or the encoded item exceeds the host's limit.
        """
        st = self._local()
        self._check_closed(st)
        if self._maxsize <= 0 and self._buffered_put:
            # The hot path: no wait policy to build (an unbounded put never waits), but
            # the stdlib's argument checks still apply.
            if block:
                check_timeout(timeout)
            data = self._encode_or_report(obj, get_connection().max_payload)
            if data is None:
                return
            st.raise_error()
            st.enqueue(data)
            return
        if block:
            check_timeout(timeout)
        conn = get_connection()
        data = self._encode_or_report(obj, conn.max_payload)
        if data is None:
            return
        if self._maxsize <= 0:  # SimpleQueue
            policy, long_wait = wait_block(True), False
            reserve = 0
        else:
            st.raise_error()
            # With a reserved slot the item is buffered: no wait, so no wait policy to build.
            if st.enqueue_credited(data):
                return
            # Items put earlier go first; the feeder's reply may bring slots.
            st.flush(conn)
            if st.enqueue_credited(data):
                return
            reserve = st.next_reserve(time.monotonic())
            policy, long_wait = wait_policy(block, timeout)
        reply = conn.call(
            conn.queues.Put,
            pb().PutRequest(target=st.ref(conn), items=[data], wait=policy, reserve=reserve),
            long_wait=long_wait,
        )
        # (A SimpleQueue asks for no slots: nothing here changes for it.)
        st.last_claim = time.monotonic()
        if reply.accepted < 1:
            st.reserve = 0
            raise _queue.Full
        st.add_credits(int(reply.reserved), conn.session_id)

    def put_nowait(self, obj: Any) -> None:
        self.put(obj, False)

    def _encode_or_report(self, obj: Any, limit: int) -> bytes | None:
        """``obj`` encoded; None when it cannot be pickled: as the stdlib's feeder thread
        does, the error goes to :meth:`_on_queue_feeder_error` (a traceback on stderr),
        the object is not put and the queue goes on. Too large a payload still raises
        ValueError."""
        try:
            return encode(obj, limit)
        except PayloadTooLarge:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever pickling raised, as the stdlib's feeder
            self._on_queue_feeder_error(pickling_error(exc), obj)
            return None

    @staticmethod
    def _on_queue_feeder_error(e: BaseException, obj: Any) -> None:
        """Called when ``obj`` cannot be pickled for ``put``; a subclass may override it
        (the stdlib's hook). Prints the traceback to stderr."""
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__)

    # ------------------------------------------------------------ get side

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item.

        Waits at most ``timeout`` seconds (forever when None; not at all when ``block``
        is false) for one and raises ``queue.Empty``. ValueError if the queue is closed.
        """
        st = self._local()
        self._check_closed(st)
        if block:
            check_timeout(timeout)
        with st.get_lock:
            if st.prefetch:
                get_connection().check_session()  # stale after a lapsed lease?
            if st.prefetch:
                data = st.prefetch.popleft()
                with st.ack_lock:
                    st.unacked += 1
            else:
                policy, long_wait = wait_policy(block, timeout)
                conn = get_connection()
                st.flush(conn)
                data = self._fetch(st, conn, policy, long_wait)
                with st.ack_lock:
                    st.unacked += 1
        return decode(data)

    def _fetch(self, st: QueueLocal, conn: Connection, policy: Any, long_wait: bool) -> bytes:
        """One server Get (get lock held): returns the first item and keeps the rest in
        the prefetch buffer; adapts the prefetch size."""
        start = time.monotonic()
        quick = start - st.last_get_end < FAST_CONSUMER_GAP
        want = st.batch
        items: list[bytes] = []
        if long_wait:
            # Usually an item is there already: try once without the polled future.
            items = self._get_call(st, conn, want, wait_block(False), False)
        if not items:
            items = self._get_call(st, conn, want, policy, long_wait)
        st.last_get_end = time.monotonic()
        if not items:
            st.batch = 1
            raise _queue.Empty
        # A full batch doubles the next; a partial one means the queue ran dry, not that
        # this consumer hoards, so it keeps the size while gets come back to back.
        if not quick:
            st.batch = 1
        elif len(items) >= want:
            st.batch = min(want * 2, MAX_PREFETCH)
        st.prefetch.extend(items[1:])
        return items[0]

    def _get_call(self, st: QueueLocal, conn: Connection, want: int, policy: Any,
                  long_wait: bool) -> list[bytes]:
        request = pb().GetRequest(
            target=st.ref(conn), max_items=want, wait=policy, ack=st.take_acks()
        )

        def keep_items(future: Any) -> None:
            # Interrupted after the host answered: keep the items for the next get.
            if future.done() and not future.cancelled():
                st.prefetch.extend(future.result().items)

        reply = conn.call(conn.queues.Get, request, long_wait=long_wait, on_interrupt=keep_items)
        return list(reply.items)

    def get_nowait(self) -> Any:
        return self.get(False)

    # ------------------------------------------------------------ state

    def _server_state(self, st: QueueLocal) -> Any:
        conn = get_connection()
        st.flush(conn)
        st.send_acks(conn)
        return conn.call(conn.queues.GetQueueState, pb().QueueStateRequest(target=st.ref(conn)))

    def qsize(self) -> int:
        """Items in the queue: the host's count plus the items this process has
        prefetched and not handed out yet. Flushes buffered puts and pending acks first
        (a few RPCs, never waits for items)."""
        st = self._local()
        return int(self._server_state(st).size) + len(st.prefetch)

    def empty(self) -> bool:
        """Whether qsize() == 0 (same cost as qsize)."""
        return self.qsize() == 0

    def full(self) -> bool:
        """Whether a bounded queue is at maxsize: its items and the slots other producers
        reserved fill it, and this process holds no reserved slot (a put_nowait would
        raise ``queue.Full``). An unbounded queue never is. Flushes first (a few RPCs)."""
        st = self._local()
        if self._maxsize <= 0:
            st.flush(get_connection())
            return False
        state = self._server_state(st)
        if st.credits > 0:
            return False
        return int(state.size) + int(state.reserved) >= self._maxsize

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """No more puts or gets through this proxy in this process. Buffered items are
        still sent by the feeder thread (see join_thread); handed-out items are
        acknowledged."""
        st = self._local()
        st.close()
        try:
            st.send_acks(get_connection())
        except Exception:  # noqa: BLE001 - retried at exit
            pass

    def join_thread(self) -> None:
        """Wait until the feeder thread has sent everything buffered. Only after close()
        (AssertionError otherwise). Blocks as long as the sends take."""
        st = self._local()
        assert st.closed, f"Queue {self!r} not closed"
        feeder = st.feeder
        if feeder is not None:
            while feeder.is_alive():
                feeder.join(0.25)
        st.raise_error()

    def cancel_join_thread(self) -> None:
        """Do not wait for (or send) buffered items at exit: they may be lost."""
        self._local().joincancelled = True

    def _reduce_extra(self) -> dict[str, Any]:
        st = self._st
        if st.pid == os.getpid():
            st.flush(get_connection())
        return {}

    def __repr__(self) -> str:
        return f"<gilbridge.{KIND_NAMES[self._KIND]} name={self._name!r} maxsize={self._maxsize}>"


class Queue(_BaseQueue):
    """A FIFO queue (``multiprocessing.Queue(maxsize=0)``; ``maxsize <= 0``: unbounded)."""

    _KIND = QUEUE

    def __init__(self, maxsize: int = 0, *, name: str | None = None, create: bool = True,
                 ctx: Any = None) -> None:
        # ctx: what the stdlib's multiprocessing.queues classes take (its locks come from
        # it); a Bridge queue needs none, so code that subclasses them works unchanged.
        super().__init__(maxsize, name=name, create=create)


class JoinableQueue(_BaseQueue):
    """A Queue with ``task_done()`` and ``join()``."""

    _KIND = JOINABLE_QUEUE

    def __init__(self, maxsize: int = 0, *, name: str | None = None, create: bool = True,
                 ctx: Any = None) -> None:
        super().__init__(maxsize, name=name, create=create)

    def task_done(self) -> None:
        """Mark one item as processed (never blocks). ValueError if called more times
        than items were put."""
        st = self._local()
        conn = get_connection()
        st.flush(conn)
        conn.call(conn.queues.TaskDone, pb().TaskDoneRequest(target=st.ref(conn), count=1))

    def join(self) -> None:
        """Block until every item ever put has been marked done (no timeout; Ctrl-C
        interrupts)."""
        st = self._local()
        conn = get_connection()
        st.flush(conn)
        messages = pb()
        while True:
            reply = conn.call(
                conn.queues.JoinQueue,
                messages.JoinQueueRequest(target=st.ref(conn), wait=wait_block(True)),
                long_wait=True,
            )
            if reply.done:
                return


class SimpleQueue(_BaseQueue):
    """``multiprocessing.SimpleQueue``: unbounded; ``put`` sends synchronously."""

    _KIND = SIMPLE_QUEUE
    _buffered_put = False

    def __init__(self, *, name: str | None = None, create: bool = True, ctx: Any = None) -> None:
        super().__init__(0, name=name, create=create)

    def put(self, obj: Any) -> None:  # type: ignore[override]
        """Put ``obj`` (one RPC; never waits for space)."""
        super().put(obj)

    def get(self) -> Any:  # type: ignore[override]
        """Remove and return an item, blocking until one is available."""
        return super().get()


def attach(kind: int, name: str, extra: dict[str, Any]) -> BridgeObject:
    """Rebuild a pickled queue proxy in this process."""
    if kind == QUEUE:
        return Queue(name=name, create=False)
    if kind == JOINABLE_QUEUE:
        return JoinableQueue(name=name, create=False)
    if kind == SIMPLE_QUEUE:
        return SimpleQueue(name=name, create=False)
    raise ValueError(f"unknown queue kind {kind}")

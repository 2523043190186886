"""Queue, JoinableQueue and SimpleQueue living in the Bridge host, with the semantics of
``multiprocessing.queues``.

Data flow in one process::

    put() --encode--> local buffer --feeder thread: Put(batch)--> host queue
    get() <--decode-- prefetch buffer <--Get(max_items=n, ack=k)-- host queue

* ``put`` on an unbounded Queue never blocks: the item is encoded (and checked against
  the host's payload limit, ValueError) in the caller's thread and appended to a local
  buffer; a daemon feeder thread sends everything buffered in one Put per round (up to
  1000 items / 1 MiB), so bursts batch naturally. Bounded queues (``maxsize > 0``) and
  SimpleQueue put synchronously; a bounded queue raises ``queue.Full``. An object that
  cannot be pickled is reported as the stdlib's feeder thread does (a traceback on
  stderr, ``_on_queue_feeder_error``) and not put; the queue goes on.
* ``get`` serves a local prefetch buffer first; when it is empty it calls Get with
  ``ack`` = items handed out since the last ack and ``max_items`` = an adaptive prefetch
  (1, doubling up to 256 while the consumer drains full batches back to back, less than
  2 ms apart; back to 1 otherwise), so a slow consumer never hoards items. Items are
  leased: if this process dies before acknowledging them, the host puts them back at
  the head of the queue. Delivery is at-least-once: an item handed to a consumer that
  dies before its next get/ack may be delivered again. A bounded queue counts leased
  items against its maxsize, so there ``get`` takes one item at a time and acknowledges
  it at once (two RPCs): the space frees as soon as ``get`` returns.
* This process's buffered puts are flushed before get/qsize/empty/full/join/pickling,
  and at exit (unless ``cancel_join_thread()``), followed by pending acks and Goodbye.
"""

from __future__ import annotations

import collections
import os
import queue as _queue
import sys
import threading
import time
from typing import Any, Final

from .._codec import PayloadTooLarge, decode, encode, pickling_error
from .._connection import Connection, current_connection, get_connection
from ._base import (
    JOINABLE_QUEUE,
    KIND_NAMES,
    QUEUE,
    SIMPLE_QUEUE,
    BridgeObject,
    check_timeout,
    wait_policy,
)

__all__ = ["JoinableQueue", "Queue", "SimpleQueue", "attach"]

MAX_BATCH_ITEMS: Final = 1000
MAX_BATCH_BYTES: Final = 1 << 20
MAX_PREFETCH: Final = 256
FAST_CONSUMER_GAP: Final = 0.002


def _pb() -> Any:
    from .._proto.bridge.v1 import queues_pb2

    return queues_pb2


def _wait(block: bool) -> Any:
    from .._proto.bridge.v1 import common_pb2

    return common_pb2.WaitPolicy(block=block)


class _Local:
    """The process-local state of one queue proxy: the put buffer and its feeder thread,
    the prefetch buffer and the count of items to acknowledge. Shared by the proxy and
    its feeder thread, which never references the proxy itself (so an unused queue is
    collected, flushed, acknowledged and detached)."""

    def __init__(self, name: str) -> None:
        self.pid = os.getpid()
        # The connection this state was last used with: a new one means this process
        # forked (or reconnected), checked without a getpid() system call per put/get.
        self.conn: Connection | None = None
        self.name = name
        self.closed = False
        self.joincancelled = False
        # put side
        self.cond = threading.Condition(threading.Lock())
        self.buffer: collections.deque[bytes] = collections.deque()
        self.sending = False
        self.feeder: threading.Thread | None = None
        self.error: BaseException | None = None
        # get side
        self.get_lock = threading.Lock()
        self.ack_lock = threading.Lock()
        self.prefetch: collections.deque[bytes] = collections.deque()
        self.unacked = 0
        self.batch = 1
        self.last_get_end = 0.0
        self.registered = False

    def ref(self, conn: Connection) -> Any:
        from .._proto.bridge.v1 import common_pb2

        return common_pb2.ObjectRef(session_id=conn.session_id, name=self.name)

    # ------------------------------------------------------------ put side

    def enqueue(self, data: bytes) -> None:
        with self.cond:
            self.buffer.append(data)
            if self.feeder is None:
                thread = threading.Thread(
                    target=self.feed, name=f"gilbridge-feeder-{self.name}", daemon=True
                )
                self.feeder = thread
                thread.start()
            self.cond.notify_all()

    def take_batch(self) -> list[bytes]:
        """Pop up to MAX_BATCH_ITEMS / MAX_BATCH_BYTES buffered items (cond held)."""
        batch: list[bytes] = []
        size = 0
        buf = self.buffer
        while buf and len(batch) < MAX_BATCH_ITEMS:
            item = buf[0]
            if batch and size + len(item) > MAX_BATCH_BYTES:
                break
            batch.append(buf.popleft())
            size += len(item)
        return batch

    def send(self, conn: Connection, batch: list[bytes]) -> None:
        # Unbounded: the host accepts everything at once, no wait involved.
        conn.call(conn.queues.Put, _pb().PutRequest(target=self.ref(conn), items=batch, wait=_wait(True)))

    def feed(self) -> None:
        """Feeder thread: send buffered items in batches; exits once closed and drained."""
        cond = self.cond
        while True:
            with cond:
                while self.sending or (not self.buffer and not self.closed):
                    cond.wait()
                if not self.buffer:
                    self.feeder = None
                    return
                batch = self.take_batch()
                self.sending = True
            try:
                if os.getpid() != self.pid:
                    return
                self.send(get_connection(), batch)
            except Exception as exc:  # noqa: BLE001 - reported by the next put/flush
                self.error = exc
            finally:
                with cond:
                    self.sending = False
                    cond.notify_all()

    def raise_error(self) -> None:
        exc = self.error
        if exc is not None:
            self.error = None
            raise RuntimeError(f"sending buffered items of queue {self.name!r} failed: {exc}") from exc

    def flush(self, conn: Connection) -> None:
        """Send the buffered puts now, in the calling thread, after any batch already in
        flight (so order is kept). Blocks for the Put RPCs."""
        if self.buffer or self.sending:
            cond = self.cond
            while True:
                with cond:
                    while self.sending:
                        cond.wait()
                    if not self.buffer:
                        break
                    batch = self.take_batch()
                    self.sending = True
                try:
                    self.send(conn, batch)
                finally:
                    with cond:
                        self.sending = False
                        cond.notify_all()
        self.raise_error()

    # ------------------------------------------------------------ get side

    def take_acks(self) -> int:
        with self.ack_lock:
            ack, self.unacked = self.unacked, 0
        return ack

    def send_acks(self, conn: Connection) -> None:
        ack = self.take_acks()
        if ack:
            try:
                conn.call(conn.queues.Ack, _pb().AckRequest(target=self.ref(conn), count=ack),
                          retry=False)
            except ConnectionResetError:
                pass  # the session ended: its leases went back to the queue anyway
            except BaseException:
                with self.ack_lock:
                    self.unacked += ack
                raise

    def _session_lost(self) -> None:
        """The session was replaced: the host returned this session's leased items to the
        queue, so the prefetched ones must not be handed out (others will get them) and
        there is nothing left to acknowledge."""
        self.prefetch.clear()
        with self.ack_lock:
            self.unacked = 0
        self.batch = 1

    # ------------------------------------------------------------ end of life

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _at_exit(self) -> None:
        """Called by the connection before Goodbye: flush (unless cancelled), ack."""
        if self.pid != os.getpid():
            return
        conn = current_connection()
        if conn is None:
            return
        if not self.joincancelled:
            try:
                self.flush(conn)
            except Exception as exc:  # noqa: BLE001
                print(f"gilbridge: queue {self.name!r}: buffered items lost at exit: {exc}",
                      file=sys.stderr)
        self.send_acks(conn)

    def finish(self, conn: Connection, kind: int) -> None:
        """The proxy was collected (runs on the connection's background thread): stop the
        feeder after sending what is buffered, acknowledge, then drop the reference."""
        self.close()
        try:
            self._at_exit()
        finally:
            conn._release_ref((kind, self.name))


def _queue_collected(local: _Local, pid: int, kind: int, name: str) -> None:
    """``weakref.finalize`` callback of a queue proxy (may run inside garbage collection:
    only hands the work to the background thread)."""
    if sys.is_finalizing() or os.getpid() != pid or local.pid != pid:
        return
    conn = current_connection()
    if conn is not None and conn.pid == pid:
        conn.run_in_background(lambda: local.finish(conn, kind))


class _BaseQueue(BridgeObject):
    _KIND = QUEUE
    _buffered_put = True

    def __init__(self, maxsize: int = 0, *, name: str | None = None, create: bool = True) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        kind = self._KIND
        pb = _pb()

        def rpc(conn: Connection, obj_name: str, mode: int) -> Any:
            return conn.call(
                conn.queues.CreateQueue,
                pb.CreateQueueRequest(
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
        self._st = _Local(obj_name)
        conn.register_flushable(self._st)
        self._st.registered = True
        self._bind(conn, kind, obj_name, self._st, callback=_queue_collected)

    def _local(self) -> _Local:
        """This process's state (fresh after a fork: the parent's buffered and prefetched
        items stay the parent's)."""
        st = self._st
        conn = get_connection()
        if st.conn is not conn:
            if st.pid != os.getpid():
                st = _Local(self._name)
                self._st = st
            st.conn = conn
            st.registered = False
        if not st.registered:
            conn.register_flushable(st)
            st.registered = True
        return st

    def _check_closed(self, st: _Local) -> None:
        if st.closed:
            raise ValueError(f"Queue {self!r} is closed")

    # ------------------------------------------------------------ put side

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj`` into the queue.

        Unbounded queue: never blocks (the item is buffered and sent by the feeder
        thread). Bounded queue: waits for space at most ``timeout`` seconds (forever when
        None; not at all when ``block`` is false) and raises ``queue.Full``.
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
        policy, long_wait = wait_policy(block, timeout)
        conn = get_connection()
        data = self._encode_or_report(obj, conn.max_payload)
        if data is None:
            return
        if self._maxsize <= 0:
            policy, long_wait = _wait(True), False
        st.flush(conn)
        reply = conn.call(
            conn.queues.Put,
            _pb().PutRequest(target=st.ref(conn), items=[data], wait=policy),
            long_wait=long_wait,
        )
        if reply.accepted < 1:
            raise _queue.Full

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
                if self._maxsize > 0:
                    # A bounded queue counts leased items against maxsize: acknowledge at
                    # once so the space frees now, as the stdlib's get does.
                    st.send_acks(conn)
        return decode(data)

    def _fetch(self, st: _Local, conn: Connection, policy: Any, long_wait: bool) -> bytes:
        """One server Get (get lock held): returns the first item and keeps the rest in
        the prefetch buffer; adapts the prefetch size."""
        start = time.monotonic()
        quick = start - st.last_get_end < FAST_CONSUMER_GAP
        want = st.batch if self._maxsize <= 0 else 1  # bounded: no prefetch (see get)
        items: list[bytes] = []
        if long_wait:
            # Usually an item is there already: try once without the polled future.
            items = self._get_call(st, conn, want, _wait(False), False)
        if not items:
            items = self._get_call(st, conn, want, policy, long_wait)
        st.last_get_end = time.monotonic()
        if not items:
            st.batch = 1
            raise _queue.Empty
        st.batch = min(want * 2, MAX_PREFETCH) if (len(items) >= want and quick) else 1
        st.prefetch.extend(items[1:])
        return items[0]

    def _get_call(self, st: _Local, conn: Connection, want: int, policy: Any,
                  long_wait: bool) -> list[bytes]:
        request = _pb().GetRequest(
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

    def _server_state(self, st: _Local) -> Any:
        conn = get_connection()
        st.flush(conn)
        st.send_acks(conn)
        return conn.call(conn.queues.GetQueueState, _pb().QueueStateRequest(target=st.ref(conn)))

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
        """Whether a bounded queue is at maxsize (an unbounded queue never is)."""
        if self._maxsize <= 0:
            self._local().flush(get_connection())
            return False
        return self.qsize() >= self._maxsize

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
        conn.call(conn.queues.TaskDone, _pb().TaskDoneRequest(target=st.ref(conn), count=1))

    def join(self) -> None:
        """Block until every item ever put has been marked done (no timeout; Ctrl-C
        interrupts)."""
        st = self._local()
        conn = get_connection()
        st.flush(conn)
        pb = _pb()
        while True:
            reply = conn.call(
                conn.queues.JoinQueue,
                pb.JoinQueueRequest(target=st.ref(conn), wait=_wait(True)),
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

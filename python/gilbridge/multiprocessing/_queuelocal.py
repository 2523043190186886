"""The process-local half of a Bridge queue (see ``queues``): the put buffer and its
feeder thread, the slots reserved for a bounded queue's puts, the prefetch buffer and
the count of items to acknowledge."""

from __future__ import annotations

import collections
import os
import sys
import threading
from typing import Any, Final

from .._connection import Connection, current_connection, get_connection
from .._errors import HostUnavailableError, ObjectLostError

MAX_BATCH_ITEMS: Final = 1000
MAX_BATCH_BYTES: Final = 1 << 20
MAX_PREFETCH: Final = 512
FAST_CONSUMER_GAP: Final = 0.002
MAX_CREDITS: Final = 1024
# A producer whose synchronous puts come less than this apart asks for more slots.
FAST_PRODUCER_GAP: Final = 0.01
# Reserved slots unused this long go back to the queue.
CREDIT_IDLE: Final = 0.005


def pb() -> Any:
    from .._proto.bridge.v1 import queues_pb2

    return queues_pb2


def wait_block(block: bool) -> Any:
    from .._proto.bridge.v1 import common_pb2

    return common_pb2.WaitPolicy(block=block)


class QueueLocal:
    """The process-local state of one queue proxy: the put buffer and its feeder thread,
    the prefetch buffer and the count of items to acknowledge. Shared by the proxy and
    its feeder thread, which never references the proxy itself (so an unused queue is
    collected, flushed, acknowledged and detached)."""

    def __init__(self, name: str, maxsize: int = 0) -> None:
        self.pid = os.getpid()
        self.maxsize = maxsize
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
        # bounded queues: slots reserved for this proxy's puts (cond held), the session
        # that holds them, how many to ask for next, when the last synchronous put ended,
        # and how many leading buffered items lost their slots with an ended session.
        self.credits = 0
        self.credit_session = ""
        self.reserve = 0
        self.last_claim = 0.0
        self.uncredited = 0
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
            self._append(data)

    def enqueue_credited(self, data: bytes) -> bool:
        """Bounded queue: buffer the item if this proxy holds a reserved slot (no round
        trip); False when it holds none."""
        with self.cond:
            if self.credits <= 0:
                return False
            self.credits -= 1
            self._append(data)
            return True

    def _append(self, data: bytes) -> None:
        # cond held
        self.buffer.append(data)
        if self.feeder is None:
            thread = threading.Thread(
                target=self.feed, name=f"gilbridge-feeder-{self.name}", daemon=True
            )
            self.feeder = thread
            thread.start()
        self.cond.notify_all()

    def next_reserve(self, now: float) -> int:
        """How many slots a synchronous bounded put asks for: 0 for an occasional
        producer, doubling while puts come back to back."""
        if now - self.last_claim < FAST_PRODUCER_GAP:
            self.reserve = min(max(1, 2 * self.reserve), self._credit_cap())
        else:
            self.reserve = 0
        return self.reserve

    def top_up(self) -> int:
        """How many slots the feeder asks for with a batch: enough to hold the current
        reserve again, which doubles while the producer uses up every slot it has."""
        if self.reserve and self.credits == 0:
            self.reserve = min(2 * self.reserve, self._credit_cap())
        return max(0, self.reserve - self.credits)

    def _credit_cap(self) -> int:
        return min(MAX_CREDITS, self.maxsize // 2)

    def add_credits(self, granted: int, session_id: str) -> None:
        if granted > 0:
            with self.cond:
                if self.credit_session != session_id:
                    self.credits = 0
                    self.credit_session = session_id
                self.credits += granted

    def take_batch(self) -> list[bytes]:
        """Pop up to MAX_BATCH_ITEMS / MAX_BATCH_BYTES buffered items (cond held); items
        whose slots went with an ended session go alone."""
        limit = MAX_BATCH_ITEMS if self.uncredited == 0 else min(self.uncredited, MAX_BATCH_ITEMS)
        batch: list[bytes] = []
        size = 0
        buf = self.buffer
        while buf and len(batch) < limit:
            item = buf[0]
            if batch and size + len(item) > MAX_BATCH_BYTES:
                break
            batch.append(buf.popleft())
            size += len(item)
        return batch

    def send(self, conn: Connection, batch: list[bytes]) -> None:
        """One Put of buffered items. Unbounded: the host accepts everything at once.
        Bounded: the items fill slots reserved earlier, and the same call tops this
        proxy's slots up to its current reserve (free ones only, no wait), so a steady
        producer never waits for a round trip; items whose slots were lost with an ended
        session wait for space as a plain put (as long as it takes)."""
        request = pb().PutRequest(target=self.ref(conn), items=batch, wait=wait_block(True))
        if self.maxsize > 0:
            if self.uncredited:
                self.uncredited -= len(batch)
            else:
                request.reserved = len(batch)
                request.reserve = self.top_up()
        reply = conn.call(conn.queues.Put, request,
                          long_wait=self.maxsize > 0 and not request.reserved)
        if request.reserve:
            self.add_credits(int(reply.reserved), conn.session_id)

    def release_credits(self, conn: Connection, count: int) -> None:
        """Hand unused reserved slots back to the queue (one Put without items)."""
        if conn.session_id != self.credit_session:
            return  # they ended with their session
        try:
            conn.call(conn.queues.Put, pb().PutRequest(target=self.ref(conn), release=count),
                      retry=False)
        except ConnectionResetError:
            pass  # the session ended: the host freed them

    def _next_work(self) -> tuple[list[bytes], int] | None:
        """What the feeder does next (cond held): (batch, 0) to send, ([], n) to release
        n idle slots, None to exit. Waits for puts meanwhile."""
        cond = self.cond
        while True:
            if self.sending:
                cond.wait()
            elif self.buffer:
                return self.take_batch(), 0
            elif self.credits:
                timed_out = self.closed or not cond.wait(CREDIT_IDLE)
                if timed_out and not (self.buffer or self.sending) and self.credits:
                    count, self.credits = self.credits, 0
                    self.reserve = 0
                    return [], count
            elif self.closed:
                return None
            else:
                cond.wait()

    def feed(self) -> None:
        """Feeder thread: send buffered items in batches and hand back idle reserved
        slots; exits once closed and drained."""
        cond = self.cond
        while True:
            with cond:
                work = self._next_work()
                if work is None:
                    self.feeder = None
                    return
                batch, release = work
                self.sending = True
            try:
                if os.getpid() != self.pid:
                    return
                conn = get_connection()
                if batch:
                    self.send(conn, batch)
                else:
                    self.release_credits(conn, release)
            except Exception as exc:  # noqa: BLE001 - reported by the next put/flush
                self.error = exc
            finally:
                with cond:
                    self.sending = False
                    cond.notify_all()

    def raise_error(self) -> None:
        """Raises what the feeder thread's last send failed with (once): the queue lost
        with its host (ObjectLostError) or the host gone (HostUnavailableError) as
        themselves, so that a producer catching them learns it from its next put; any
        other failure as a RuntimeError."""
        exc = self.error
        if exc is not None:
            self.error = None
            message = f"sending buffered items of queue {self.name!r} failed: {exc}"
            if isinstance(exc, (ObjectLostError, HostUnavailableError)):
                raise type(exc)(message) from exc
            raise RuntimeError(message) from exc

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
                conn.call(conn.queues.Ack, pb().AckRequest(target=self.ref(conn), count=ack),
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
        with self.cond:
            # Reserved slots ended with the session: the buffered items wait for space.
            self.credits = 0
            self.uncredited = len(self.buffer) if self.maxsize > 0 else 0

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


def queue_collected(local: QueueLocal, pid: int, kind: int, name: str) -> None:
    """``weakref.finalize`` callback of a queue proxy (may run inside garbage collection:
    only hands the work to the background thread)."""
    if sys.is_finalizing() or os.getpid() != pid or local.pid != pid:
        return
    conn = current_connection()
    if conn is not None and conn.pid == pid:
        conn.run_in_background(lambda: local.finish(conn, kind))

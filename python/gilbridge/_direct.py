"""A direct pool's data path: the caller feeds its leased workers itself.

The host leases the workers (``CreatePool`` with ``direct``) and supervises them; chunks,
results and credits go straight between this process and each worker, over the worker's
own socket, never through the host (a Unix socket on this machine; TCP for a worker of
another host of a cluster, opened with that host's token for the pool)::

    submitter thread ── dispatch(chunk): the least busy worker with a credit ──► WorkerLink.send
                                                                                  │ data socket
    on_result(result) ◄── WorkerLink reader thread (one per worker) ◄─────────────┘ result / ready / output

Frames are a 4-byte little-endian length and a ``DataFrame`` (protos/bridge/v1/execution.proto).
A worker grants credits (``ready``); a chunk is sent only against one, so a worker never
hoards chunks while a sibling idles. When a worker's socket ends while chunks sent to it
are unanswered (it died, or was terminated), those chunks fail with ``worker_died``.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, Final

__all__ = ["DirectDispatcher"]

_HEADER: Final = struct.Struct("<I")
_MAX_FRAME: Final = 1 << 30
# What one recv of the reader thread takes at most; larger frames get a buffer of their own.
_RECV_BYTES: Final = 1 << 16


def _pb() -> Any:
    from ._proto.bridge.v1 import execution_pb2

    return execution_pb2


def _connect(address: str) -> socket.socket:
    """A connected socket to ``unix:/path`` or ``tcp:ADDRESS:PORT`` (OSError when it fails)."""
    if address.startswith("tcp:"):
        host, _, port = address[len("tcp:"):].rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address[len("unix:"):] if address.startswith("unix:") else address)
    except BaseException:
        sock.close()
        raise
    return sock


class _WorkerLink:
    """One worker's data socket. ``send`` is called by one feeder at a time (the pool's
    task handler thread, or a caller sending its own task: see
    ``PoolCore.put_one``); a daemon thread reads the worker's frames."""

    def __init__(self, dispatcher: DirectDispatcher, pid: int, address: str, token: str) -> None:
        self.pid = pid
        self.address = address
        self.credits = 0
        self.running: set[int] = set()
        self.closed = False
        self._sock = _connect(address)
        try:
            self._send_frame(_pb().DataFrame(token=token))
        except BaseException:
            self._sock.close()
            raise
        self._dispatcher = dispatcher
        self.thread = threading.Thread(target=self._read, name=f"gilbridge-link-{pid}", daemon=True)
        self.thread.start()

    def _send_frame(self, frame: Any) -> None:
        data = frame.SerializeToString()
        self._sock.sendall(_HEADER.pack(len(data)) + data)

    def send(self, chunk: Any) -> None:
        """Sends one chunk (blocks while the socket's buffer is full)."""
        self._send_frame(_pb().DataFrame(task=chunk))

    def close(self) -> None:
        """Ends the connection (the reader thread then ends)."""
        self.closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read(self) -> None:
        """The reader thread: one ``recv`` takes whatever the worker sent (a result and
        the credit after it usually arrive in one write), and every whole frame in it is
        handled before the next ``recv``: each ``recv`` releases and retakes the GIL."""
        parse = _pb().DataFrame.FromString
        unpack_from = _HEADER.unpack_from
        recv_into = self._sock.recv_into
        incoming = bytearray(_RECV_BYTES)
        incoming_view = memoryview(incoming)
        pending = bytearray()  # received, not yet handled: always the start of a frame
        error: BaseException | None = None
        try:
            while True:
                k = recv_into(incoming_view)
                if k == 0:
                    if pending:
                        raise ConnectionError("the worker's data socket ended inside a frame")
                    break
                pending += incoming_view[:k]
                offset = 0
                available = len(pending)
                while available - offset >= 4:
                    (length,) = unpack_from(pending, offset)
                    if length > _MAX_FRAME:
                        raise ValueError(f"a data frame of {length} bytes")
                    end = offset + 4 + length
                    if end > available:
                        if length > _RECV_BYTES:
                            # A large frame: read the rest of it straight into its own buffer.
                            body = self._recv_rest(pending[offset + 4:], length)
                            offset = available
                            self._handle(parse(body))
                        break
                    self._handle(parse(bytes(pending[offset + 4:end])))
                    offset = end
                del pending[:offset]
        except BaseException as exc:  # noqa: BLE001 - reported as the link's end
            error = exc
        finally:
            self._sock.close()
            self._dispatcher._on_lost(self, error)

    def _recv_rest(self, start: bytearray, length: int) -> bytes:
        body = bytearray(length)
        body[:len(start)] = start
        view = memoryview(body)
        got = len(start)
        while got < length:
            k = self._sock.recv_into(view[got:])
            if k == 0:
                raise ConnectionError("the worker's data socket ended inside a frame")
            got += k
        return bytes(body)

    def _handle(self, frame: Any) -> None:
        kind = frame.WhichOneof("frame")
        if kind == "result":
            self._dispatcher._on_result(self, frame.result)
        elif kind == "ready":
            self._dispatcher._on_ready(self, frame.ready.slots)
        elif kind == "output":
            self._dispatcher._on_output_cb(frame.output)


class DirectDispatcher:
    """The chunks of one direct pool, dispatched to its workers against their credits.

    ``on_result(result)`` gets every ``TaskResult`` (from the link threads), including the
    synthesized failures of chunks whose worker went away; ``on_output(output)`` every
    ``OutputText`` the workers' tasks printed (before the result of the task that printed).
    """

    def __init__(self, token: str, on_result: Callable[[Any], None], on_output: Callable[[Any], None]) -> None:
        self._token = token
        self._on_result_cb = on_result
        self._on_output_cb = on_output
        self._cond = threading.Condition(threading.Lock())
        # By data address: pids of workers on different machines may be equal.
        self._links: dict[str, _WorkerLink] = {}
        self._closed = False

    def add_worker(self, pid: int, address: str, strict: bool = False, token: str = "") -> None:
        """Connects to a leased worker (blocks for the connect: a few µs on one machine, a
        network round trip to another host's worker, at most 10 s). ``token`` opens that
        worker's socket when it is not the pool's (a part on another host). A worker that
        cannot be reached is skipped (the host replaces it if it died), unless ``strict``:
        then the OSError propagates."""
        try:
            link = _WorkerLink(self, pid, address, token or self._token)
        except OSError:
            if strict:
                raise
            return
        with self._cond:
            if self._closed:
                link.close()
                return
            self._links[address] = link
            self._cond.notify_all()

    def dispatch(self, chunk: Any, timeout_check: Callable[[], bool]) -> bool:
        """Sends ``chunk`` to the least busy worker with a credit, waiting for one (in
        0.25 s slices, each asking ``timeout_check()`` whether to give up). False when the
        pool closed or ``timeout_check`` said stop; the chunk was not sent."""
        with self._cond:
            while True:
                if self._closed or timeout_check():
                    return False
                link = self._choose()
                if link is not None:
                    break
                self._cond.wait(0.25)
            link.credits -= 1
            link.running.add(chunk.task_id)
        self._send(link, chunk)
        return True

    def can_take(self) -> bool:
        """Whether a worker would take a chunk now (a hint: another feeder may take the
        credit first; :meth:`try_dispatch` decides)."""
        with self._cond:
            return not self._closed and self._choose() is not None

    def try_dispatch(self, chunk: Any) -> bool:
        """Sends ``chunk`` now if a worker can take it, without waiting: False when none
        can (nothing was sent)."""
        with self._cond:
            link = None if self._closed else self._choose()
            if link is None:
                return False
            link.credits -= 1
            link.running.add(chunk.task_id)
        self._send(link, chunk)
        return True

    @staticmethod
    def _send(link: _WorkerLink, chunk: Any) -> None:
        try:
            link.send(chunk)
        except OSError:
            # The worker is gone: its reader thread fails what it had, this chunk included.
            link.close()

    def _choose(self) -> _WorkerLink | None:
        best: _WorkerLink | None = None
        any_idle = False
        for link in self._links.values():
            any_idle |= not link.running
            if link.credits > 0 and (best is None or len(link.running) < len(best.running)):
                best = link
        # Never queue a chunk behind a running one while a sibling idles: the idle one's
        # credit is on its way (a quick task would otherwise wait for a slow one).
        if best is not None and best.running and any_idle:
            return None
        return best

    def _on_ready(self, link: _WorkerLink, slots: int) -> None:
        with self._cond:
            link.credits += max(0, slots)
            self._cond.notify_all()

    def _on_result(self, link: _WorkerLink, result: Any) -> None:
        with self._cond:
            link.running.discard(result.task_id)
            self._cond.notify_all()
        self._on_result_cb(result)

    def _on_lost(self, link: _WorkerLink, error: BaseException | None) -> None:
        with self._cond:
            if self._links.get(link.address) is link:
                del self._links[link.address]
            lost = sorted(link.running)
            link.running.clear()
            self._cond.notify_all()
        if not lost:
            return
        pb = _pb()
        reason = f": {error}" if error is not None and not link.closed else ""
        for task_id in lost:
            self._on_result_cb(pb.TaskResult(task_id=task_id, worker_pid=link.pid, error=pb.TaskError(
                type="BrokenProcessPool", worker_died=True,
                message=f"the worker process {link.pid} running this task exited abruptly{reason}")))

    def close(self, wait: float = 0.0) -> None:
        """No more dispatching; with ``wait`` > 0, first wait that long for the workers to
        end their sockets themselves (a released worker does once its results are sent),
        then end the rest."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            links = list(self._links.values())
        for link in links:
            if wait > 0:
                link.thread.join(wait)
            link.close()
        for link in links:
            link.thread.join(1.0)

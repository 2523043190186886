"""This process's descriptor sharer: file descriptors that Bridge workers on this machine
take from it (a ``Pipe`` end, a socket, a shared-heap arena pickled for a worker).

The stdlib's ``resource_sharer`` serves its children the same way, but its listener
registers ``multiprocessing.util.Finalize`` entries (unlink the socket, remove the temp
directory), which programs and CPython's own tests see in ``util._finalizer_registry``.
This one cleans up through ``atexit`` instead, and otherwise speaks the same protocol:
a Unix socket in a private (0700) directory, the stdlib's HMAC challenge with this
process's authkey both ways, then ``(key, pid)`` in and the descriptor out over
``SCM_RIGHTS``. Each registered descriptor can be taken once.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import struct
import tempfile
import threading
from typing import Final

__all__ = ["share", "take"]

_CONNECTION_TIMEOUT: Final = 30


class _Sharer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fds: dict[int, int] = {}
        self._next_key = 0
        self._listener: socket.socket | None = None
        self._directory = ""
        self._address = ""
        os.register_at_fork(after_in_child=self._forget)

    def share(self, fd: int) -> tuple[str, int]:
        """Registers a duplicate of ``fd``: the address and key that :func:`take` needs."""
        duplicate = os.dup(fd)
        with self._lock:
            if self._listener is None:
                self._start()
            self._next_key += 1
            self._fds[self._next_key] = duplicate
            return self._address, self._next_key

    def _start(self) -> None:
        self._directory = tempfile.mkdtemp(prefix="gilbridge-fds-")
        self._address = os.path.join(self._directory, "sharer.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self._address)
        listener.listen()
        self._listener = listener
        atexit.register(self._stop)
        threading.Thread(target=self._serve, args=(listener,), name="gilbridge-fd-sharer", daemon=True).start()

    def _serve(self, listener: socket.socket) -> None:
        # Signals go to the main thread, as in the stdlib's sharer.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            try:
                accepted, _ = listener.accept()
            except OSError:  # closed: the process ends, or forked
                return
            threading.Thread(target=self._answer, args=(accepted,), name="gilbridge-fd-send", daemon=True).start()

    def _answer(self, accepted: socket.socket) -> None:
        from multiprocessing import connection, process, reduction

        # A kernel receive timeout: the connection's reads stay blocking ones.
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", _CONNECTION_TIMEOUT, 0))
        with connection.Connection(accepted.detach()) as conn:
            authkey = bytes(process.current_process().authkey)
            try:
                connection.deliver_challenge(conn, authkey)
                connection.answer_challenge(conn, authkey)
                key, pid = conn.recv()
            except (OSError, EOFError, ValueError, TypeError, connection.AuthenticationError):
                return  # not a taker of ours: nothing is handed out
            with self._lock:
                fd = self._fds.pop(key, None)
            if fd is None:
                return  # taken already, or never shared: the taker's recv fails
            try:
                reduction.send_handle(conn, fd, pid)
            finally:
                os.close(fd)

    def _stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            fds, self._fds = self._fds, {}
        if listener is not None:
            listener.close()
            for path, remove in ((self._address, os.unlink), (self._directory, os.rmdir)):
                try:
                    remove(path)
                except OSError:
                    pass
        for fd in fds.values():
            os.close(fd)

    def _forget(self) -> None:
        # A forked child serves nothing of its parent's (and must not unlink its socket).
        self._lock = threading.Lock()
        if self._listener is not None:
            self._listener.close()
            atexit.unregister(self._stop)
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}
        self._listener = None


_sharer: _Sharer | None = None
_sharer_lock = threading.Lock()


def share(fd: int) -> tuple[str, int]:
    """Registers a duplicate of ``fd`` for one :func:`take` (starts the sharer's thread
    on first use); returns its ``(address, key)``."""
    global _sharer
    with _sharer_lock:
        if _sharer is None:
            _sharer = _Sharer()
    return _sharer.share(fd)


def take(address: str, key: int, authkey: bytes) -> int:
    """The descriptor registered under ``key`` by the process serving ``address``
    (blocks until it is sent; OSError or EOFError when it cannot be had)."""
    from multiprocessing import reduction
    from multiprocessing.connection import Client

    with Client(address, authkey=authkey) as conn:
        conn.send((key, os.getpid()))
        return int(reduction.recv_handle(conn))

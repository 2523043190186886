"""Runner processes: where the benches run, one process per side.

The coordinator (the ``compare`` command) never runs a workload itself. It starts two
runners, ``stdlib`` and ``bridge``, each a fresh interpreter in its own session (so its
pool workers and children can be ended with it), and drives them over a socket pair:
``setup`` a contender, ``sample`` it, ``close`` it. The stdlib runner never imports grpc,
so its ``fork`` contenders fork a plain process, as a stdlib-only script would; the
Bridge runner holds the one connection to the host.

Every request has a deadline; a runner that misses it (or dies) is killed with its
process group and replaced for the next request, and the request reports the error.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final

SETUP_TIMEOUT: Final = 180.0
EXIT_TIMEOUT: Final = 30.0


class RunnerError(Exception):
    """A request failed in the runner (``str`` is the runner's one-line reason,
    ``details`` its traceback)."""

    def __init__(self, message: str, details: str = "", *, runner_lost: bool = False) -> None:
        super().__init__(message)
        self.details = details
        self.runner_lost = runner_lost  # the runner died: every bench it held is gone


@dataclass
class _Process:
    proc: subprocess.Popen[bytes]
    conn: Connection


class Runner:
    """Coordinator side of one runner process (started lazily, restarted after a failure)."""

    def __init__(self, side: str) -> None:
        self.side = side
        self._current: _Process | None = None

    def _start(self) -> _Process:
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c",
                 "import sys; from gilbridge.compare._runner import serve; "
                 "serve(int(sys.argv[1]), sys.argv[2])",
                 str(theirs.fileno()), self.side],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=2,  # what a workload prints goes to stderr, out of the table
                start_new_session=True,
            )
        finally:
            theirs.close()
        return _Process(proc, Connection(ours.detach()))

    def request(self, timeout: float, *message: Any) -> Any:
        """Send ``message``; block up to ``timeout`` s for the reply. Raises RunnerError
        for a failure in the runner, and when the runner died or did not answer in time
        (then it was killed and ``runner_lost`` is set)."""
        if self._current is None:
            self._current = self._start()
        current = self._current
        try:
            current.conn.send(message)
            if not current.conn.poll(timeout):
                self.kill()
                raise RunnerError(f"the {self.side} runner did not answer {message[0]!r} "
                                  f"within {timeout:.0f} s (killed)", runner_lost=True)
            status, payload, details = current.conn.recv()
        except (EOFError, OSError) as exc:
            code = current.proc.poll()
            self.kill()
            raise RunnerError(f"the {self.side} runner died (exit status {code}): {exc!r}",
                              runner_lost=True) from None
        if status == "error":
            raise RunnerError(payload, details)
        return payload

    def kill(self) -> None:
        """SIGKILL the runner's process group (the runner, its pool workers and
        children) and reap it."""
        current, self._current = self._current, None
        if current is None:
            return
        current.conn.close()
        try:
            os.killpg(current.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        current.proc.wait(10)

    def close(self) -> None:
        """Ask the runner to exit (blocks up to 30 s), then end its group by PID."""
        current = self._current
        if current is None:
            return
        try:
            current.conn.send(("exit",))
            if current.conn.poll(EXIT_TIMEOUT):
                current.conn.recv()
            current.proc.wait(EXIT_TIMEOUT)
        except (EOFError, OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


# ------------------------------------------------------------------ the runner process


def _side_info(side: str) -> dict[str, Any]:
    info: dict[str, Any] = {"pid": os.getpid()}
    if side == "bridge":
        from .. import _host

        address = _host.configured_address()
        host = _host.ensure_host(address)
        info["host"] = {"address": address.target, "pid": int(host.pid), "version": host.version,
                        "cpu_count": int(host.cpu_count)}
    return info


def serve(fd: int, side: str) -> None:
    """The runner's loop: answer requests on the socket ``fd`` until ``exit`` or EOF."""
    from . import workloads

    conn = Connection(fd)
    benches: dict[str, workloads.Bench] = {}
    op = ""
    while True:
        try:
            message = conn.recv()
        except EOFError:
            break
        op = message[0]
        try:
            result: Any = None
            if op == "info":
                result = _side_info(side)
            elif op == "setup":
                _, workload, contender, sizes = message
                benches[contender] = workloads.open_bench(workload, contender, sizes)
            elif op == "sample":
                result = benches[message[1]].sample()
            elif op == "close":
                bench = benches.pop(message[1], None)
                if bench is not None:
                    bench.close()
            elif op == "exit":
                break
            else:
                raise ValueError(f"unknown request {op!r}")
            reply: tuple[str, Any, str] = ("ok", result, "")
        except Exception as exc:  # reported to the coordinator, which decides
            reason = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            reply = ("error", reason, traceback.format_exc())
        try:
            conn.send(reply)
        except OSError:  # the coordinator is gone: nobody to work for
            break
    for name, bench in benches.items():
        try:
            bench.close()
        except Exception as exc:  # exiting anyway: say so, and close the others
            print(f"compare runner: closing {name}: {exc!r}", file=sys.stderr)
    if op == "exit":
        try:
            conn.send(("ok", None, ""))
        except OSError:
            pass
    conn.close()

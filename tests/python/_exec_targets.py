"""Task and Process targets for the execution tests (importable by workers: they get
this process's sys.path)."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import gilbridge.multiprocessing as mp

_initialized: Any = None


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def pid_of(_: object = None) -> int:
    return os.getpid()


def slow_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def divide(a: float, b: float) -> float:
    return a / b


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


class Unpicklable(Exception):
    """An exception that cannot be pickled (a lambda attribute)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.hook = lambda: None


def raise_unpicklable() -> None:
    raise Unpicklable("no pickle for me")


def init_worker(value: Any) -> None:
    global _initialized
    _initialized = (value, os.getpid())


def initialized(_: object = None) -> Any:
    return _initialized


def exit_hard(code: int) -> None:
    sys.stdout.flush()
    os._exit(code)


def kill_self(_: object = None) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def put_items(q: Any, worker: int, n: int) -> int:
    for i in range(n):
        q.put((worker, i))
    return n


def locked_increments(lock: Any, counter: Any, n: int) -> int:
    for _ in range(n):
        with lock:
            counter.value += 1
    return n


def wait_event(event: Any, started: Any, timeout: float) -> bool:
    started.put(os.getpid())
    return bool(event.wait(timeout))


def child_report(q: Any) -> None:
    """Process target: report name, pid and parent as the child sees them."""
    me = mp.current_process()
    parent = mp.parent_process()
    q.put((me.name, me.pid, os.getpid(), parent.pid if parent else None, parent.name if parent else None))


def print_lines(text: str) -> None:
    print(text)
    print(f"to stderr: {text}", file=sys.stderr)


def exit_with(code: int) -> None:
    sys.exit(code)


def raise_runtime() -> None:
    raise RuntimeError("child failed on purpose")


class Squarer(mp.Process):
    """A Process subclass overriding run()."""

    def __init__(self, q: Any, n: int) -> None:
        super().__init__()
        self.q = q
        self.n = n

    def run(self) -> None:
        self.q.put(self.n * self.n)


def store_square(d: Any, k: int) -> None:
    d[k] = k * k


def pipe_echo(conn: Any) -> str:
    """Receives one object on a Pipe end and sends it back doubled."""
    value = conn.recv()
    conn.send(value * 2)
    conn.close()
    return "echoed"


def fill_shared(array: Any, start: int, stop: int, value: int) -> int:
    """Writes ``value`` into ``array[start:stop]`` (a RawArray shared with the caller)."""
    for i in range(start, stop):
        array[i] = value
    return stop - start


class Tally:
    """A user type served by a manager (BaseManager.register)."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, n: int) -> int:
        self.total += n
        return self.total

    def server_pid(self) -> int:
        return os.getpid()


def managed_work(d: Any, q: Any, lock: Any, tally: Any, k: int) -> None:
    """Writes k*k into a manager dict under a manager lock, adds k to a served Tally and
    reports k on a manager queue."""
    with lock:
        d[k] = k * k
    tally.add(k)
    q.put(k)


def send_log_level(conn: Any) -> None:
    """Sends the multiprocessing logger's effective level back on a Pipe end."""
    from multiprocessing import util

    conn.send(util.get_logger().getEffectiveLevel())
    conn.close()


def dotnet_start_settings(_: object = None) -> tuple[str | None, str | None, bool]:
    """What a task sees of how its worker started .NET: the two runtime settings
    bridge_worker.py sets for the runtime's start only, and whether JIT-compiled code is
    double-mapped (W^X)."""
    with open("/proc/self/maps") as maps:
        double_mapped = "doublemapper" in maps.read()
    return (os.environ.get("DOTNET_EnableDiagnostics_Debugger"),
            os.environ.get("DOTNET_EnableWriteXorExecute"), double_mapped)

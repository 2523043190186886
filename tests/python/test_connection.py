"""The connection: lazy imports, sessions (keep-alive, Goodbye), TCP with a token, the
module surface."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gilbridge.multiprocessing as mp
from gilbridge._connection import get_connection

from conftest import LEASE_SECONDS, HostProcess, start_host, stop_host


@pytest.mark.usefixtures("host")
def test_imports_are_lazy(children) -> None:
    out = children.run(
        """
        import sys
        import gilbridge, gilbridge.multiprocessing as mp
        import gilbridge.multiprocessing.synchronize, gilbridge.multiprocessing.queues
        import gilbridge.multiprocessing.sharedctypes
        print(sorted(m for m in sys.modules if m == "grpc" or m.startswith("grpc.")))
        mp.Lock()
        print("grpc" in sys.modules)
        # grpc's core imports asyncio; the client never uses it, so it has not run...
        print("asyncio ran", "asyncio.base_events" in sys.modules, "ssl" in sys.modules)
        # ...until the script uses it, as it would without gilbridge.
        import asyncio

        async def answer():
            await asyncio.sleep(0)
            return 42

        print("asyncio", asyncio.run(answer()), type(sys.modules["asyncio"]).__name__)
        import grpc.aio
        print("grpc.aio", callable(grpc.aio.insecure_channel))
        """
    )
    assert out.splitlines() == ["[]", "True", "asyncio ran False False", "asyncio 42 module", "grpc.aio True"]


def test_a_deferred_module_runs_once_on_first_use_from_any_thread(tmp_path: Path) -> None:
    # import_deferring: the deferred module is created empty while its importer loads,
    # runs at its first attribute read, once, even when two threads read at once (the
    # second waits for the first: Python 3.11's LazyLoader raises AttributeError there).
    (tmp_path / "slowpkg").mkdir()
    (tmp_path / "slowpkg" / "__init__.py").write_text(
        "import time\nimport builtins\nbuiltins.SLOW_RUNS = getattr(builtins, 'SLOW_RUNS', 0) + 1\n"
        "time.sleep(0.3)\nfrom .part import VALUE\n")
    (tmp_path / "slowpkg" / "part.py").write_text("VALUE = 7\n")
    (tmp_path / "user.py").write_text("import slowpkg\nHELD = slowpkg\n")
    code = """
import builtins, sys, threading
sys.path.insert(0, sys.argv[1])
from gilbridge._deferred import import_deferring
user = import_deferring("user", ("slowpkg",))
print("ran at import", getattr(builtins, "SLOW_RUNS", 0))
seen = []
threads = [threading.Thread(target=lambda: seen.append(user.HELD.VALUE)) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join(10)
print("seen", seen, "runs", builtins.SLOW_RUNS, type(sys.modules["slowpkg"]).__name__)
import slowpkg.part
print("same", sys.modules["slowpkg"] is user.HELD, slowpkg.part.VALUE)
"""
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ran at import 0", "seen [7, 7] runs 1 module", "same True 7"]


def test_module_surface_matches_stdlib() -> None:
    import multiprocessing as stdlib

    # a drop-in: every public name of the stdlib module is there
    missing = [n for n in stdlib.__all__ if not hasattr(mp, n)]
    assert not missing, missing
    # not bridged: the stdlib's own objects, so isinstance/except clauses keep working
    for name in ["Pipe", "freeze_support", "TimeoutError", "ProcessError",
                 "BufferTooShort", "AuthenticationError"]:
        assert getattr(mp, name) is getattr(stdlib, name), name
    for name in ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Event", "Condition",
                 "Barrier", "Queue", "JoinableQueue", "SimpleQueue", "Value", "Array",
                 "RawValue", "RawArray", "Manager", "cpu_count"]:
        assert getattr(mp, name) is not getattr(stdlib, name), name
        assert name in mp.__all__


@pytest.mark.usefixtures("host")
def test_cpu_count_from_host() -> None:
    assert mp.cpu_count() == get_connection().host_info.cpu_count == os.cpu_count()


@pytest.mark.usefixtures("host")
def test_idle_session_is_kept_alive_by_the_keepalive_thread() -> None:
    lock = mp.Lock()
    session = get_connection().session_id
    assert lock.acquire()
    time.sleep(LEASE_SECONDS * 2.5)  # idle: only the keep-alive thread talks to the host
    assert get_connection().session_id == session
    lock.release()  # still ours: the session did not lapse
    with pytest.raises(ValueError):
        lock.release()


@pytest.mark.usefixtures("host")
def test_goodbye_at_exit_releases_at_once(children) -> None:
    child = children.start(
        """
        import gilbridge.multiprocessing as mp
        lock = mp.Lock(name="tests.conn.goodbye")
        lock.acquire()
        print("held", flush=True)
        input()
        """,
        stdin=subprocess.PIPE,
    )
    child.wait_line("held")
    lock = mp.Lock(name="tests.conn.goodbye", create=False)
    assert lock.acquire(False) is False
    assert child.proc.stdin is not None
    child.proc.stdin.write("\n")
    child.proc.stdin.flush()
    child.wait_ok()
    t0 = time.monotonic()
    assert lock.acquire(timeout=LEASE_SECONDS * 3)
    assert time.monotonic() - t0 < LEASE_SECONDS / 2, "released by the lease, not by Goodbye"


@pytest.mark.usefixtures("host")
def test_status_command_against_the_configured_address(bridge_host: HostProcess) -> None:
    proc = subprocess.run([sys.executable, "-m", "gilbridge", "host", "status"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"pid:       {bridge_host.pid}" in proc.stdout
    assert bridge_host.address in proc.stdout


# --------------------------------------------------------------------------- TCP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tcp_host(tmp_path_factory: pytest.TempPathFactory):
    port = _free_port()
    host = start_host(Path(tmp_path_factory.mktemp("tcp")), f"--Bridge:TcpPort={port}",
                      "--Bridge:Token=s3cret-token-0123456789")
    try:
        yield host, port
    finally:
        alive = host.proc.poll() is None
        stop_host(host)
        assert alive, f"the TCP host died:\n{host.log_tail()}"


def test_tcp_with_token(tcp_host, children) -> None:
    _host, port = tcp_host
    code = """
        import queue, gilbridge.multiprocessing as mp
        try:
            q = mp.Queue(name="tests.tcp.q")
            q.put((1, "over tcp"))
            print("ok", q.get(timeout=10))
        except PermissionError as exc:
            print("denied", type(exc).__name__)
        """
    out = children.run(code, env={"GILBRIDGE_ADDRESS": f"127.0.0.1:{port}", "GILBRIDGE_TOKEN": "s3cret-token-0123456789"})
    assert out.strip() == "ok (1, 'over tcp')"
    out = children.run(code, env={"GILBRIDGE_ADDRESS": f"127.0.0.1:{port}", "GILBRIDGE_TOKEN": "wrong"})
    assert out.strip() == "denied PermissionError"
    env = {"GILBRIDGE_ADDRESS": f"127.0.0.1:{port}"}
    out = children.run(code, env={**env, "GILBRIDGE_TOKEN": ""})
    assert out.strip() == "denied PermissionError"


def test_the_descriptor_sharer_hands_each_descriptor_once_to_its_authkey_and_cleans_up(children) -> None:
    """The sharer behind descriptors pickled for a worker: the right authkey takes a
    descriptor once, a wrong one gets nothing, the stdlib's finalizer registry stays as it
    was, and the private socket directory goes at exit."""
    out = children.run(
        """
        import os
        from multiprocessing import AuthenticationError, process, util
        from gilbridge import _fdshare

        registry = dict(util._finalizer_registry)
        reader, writer = os.pipe()
        address, key = _fdshare.share(writer)
        os.close(writer)
        try:
            _fdshare.take(address, key, b"not this process's key")
        except AuthenticationError:
            print("wrong key refused")
        fd = _fdshare.take(address, key, bytes(process.current_process().authkey))
        os.write(fd, b"through the sharer")
        os.close(fd)
        print(os.read(reader, 100).decode())
        try:
            _fdshare.take(address, key, bytes(process.current_process().authkey))
        except (EOFError, OSError) as exc:
            print("taken once:", type(exc).__name__)
        print("registry unchanged:", dict(util._finalizer_registry) == registry)
        print(os.path.dirname(address))
        """
    )
    lines = out.splitlines()
    assert lines[:4] == ["wrong key refused", "through the sharer", "taken once: EOFError",
                         "registry unchanged: True"], out
    directory = Path(lines[4])
    assert directory.name.startswith("gilbridge-fds-") and not directory.exists(), out


def test_a_deferred_package_run_never_deadlocks_with_an_import_of_its_submodule(tmp_path: Path) -> None:
    # Thread A's attribute read runs the deferred package, whose code imports its
    # submodule; thread B is importing that submodule meanwhile (holding its module
    # lock), and the submodule reads the package. Each waits for the other: B's wait for
    # the run is bounded, so both finish (with an unbounded wait this hangs for good).
    (tmp_path / "deferredpkg").mkdir()
    (tmp_path / "deferredpkg" / "__init__.py").write_text(
        "import time\ntime.sleep(0.4)\nfrom .sub import VALUE\n")
    (tmp_path / "deferredpkg" / "sub.py").write_text(
        "import sys\nhasattr(sys.modules['deferredpkg'], 'anything')\nVALUE = 3\n")
    (tmp_path / "holder.py").write_text("import deferredpkg\n")
    code = """
import sys, threading, time
sys.path.insert(0, sys.argv[1])
from gilbridge._deferred import import_deferring
holder = import_deferring("holder", ("deferredpkg",))
seen = []
first = threading.Thread(target=lambda: seen.append(holder.deferredpkg.VALUE))
def importing_the_submodule():
    import deferredpkg.sub
    seen.append(deferredpkg.sub.VALUE)
second = threading.Thread(target=importing_the_submodule)
first.start()
time.sleep(0.1)
second.start()
first.join(20)
second.join(20)
print("seen", sorted(seen), first.is_alive() or second.is_alive())
"""
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "seen [3, 3] False", result.stdout

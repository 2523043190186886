"""Trust (README "Trust model"): the host's Unix socket and the workers' data sockets are
private to their user, a default runtime directory of another user is not trusted, and a
worker's TCP data socket refuses connections without their pool's token.

The second-user test needs root (CI runs as root): it creates the system user
``gilbridge-probe`` if missing and runs a Python client as that user.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import HostProcess, start_host, stop_host

PROBE_USER = "gilbridge-probe"


def probe_user() -> tuple[int, int]:
    """The second Unix user's uid and gid (created when missing); skips unless root."""
    if os.geteuid() != 0:
        pytest.skip(f"acting as a second Unix user ({PROBE_USER}) needs root (CI runs as root)")
    try:
        entry = pwd.getpwnam(PROBE_USER)
    except KeyError:
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PROBE_USER],
            capture_output=True, text=True, timeout=30)
        # 9: created meanwhile by a concurrent run; anything else is a real failure.
        assert done.returncode in (0, 9), f"useradd failed ({done.returncode}): {done.stderr}"
        entry = pwd.getpwnam(PROBE_USER)
    assert entry.pw_uid != 0
    return entry.pw_uid, entry.pw_gid


# Run as the second user: tries each path with a raw connect, then as a gilbridge client
# (a named queue of the owner: reading it and adding to it). Prints one JSON line.
PROBE = """
import json, os, socket, sys
out = {"uid": os.getuid(), "raw": {}}
import gilbridge.multiprocessing as mp
from gilbridge import HostUnavailableError
out["imported"] = True
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        out["raw"][path] = "connected"
    except OSError as exc:
        out["raw"][path] = type(exc).__name__
    finally:
        s.close()
try:
    q = mp.Queue(name="trust.secret")
    out["queue"] = "opened"
    q.put("from the probe")
    out["get"] = repr(q.get(timeout=2))
except (PermissionError, HostUnavailableError) as exc:
    out["queue"] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""

# The control: with the modes opened up, the same user reaches the host.
CONTROL = """
import json, os, sys
from gilbridge import _host
info = _host.probe(_host.Address("unix:" + sys.argv[1], is_default=False), timeout=10)
print(json.dumps({"uid": os.getuid(), "pid": info.pid if info is not None else None}))
"""

# The owner: a named queue with one item and an open (direct) pool, so that a worker's
# data socket exists; after a line on stdin, reports what the queue holds.
OWNER = """
import json, sys
import gilbridge.multiprocessing as mp
q = mp.Queue(name="trust.secret")
q.put("owner's item")
with mp.Pool(1) as pool:
    assert pool.map(abs, [-3]) == [3]
    print("ready", flush=True)
    sys.stdin.readline()
    assert pool.map(abs, [-4]) == [4]
print(json.dumps({"qsize": q.qsize(), "item": q.get(timeout=5)}), flush=True)
"""


def readable_package(base: Path) -> Path:
    """A copy of the gilbridge package under ``base`` that any user can read: the second
    user cannot enter a checkout in a private directory (a fresh clone in mkdtemp's
    0700 directory), nor the venv inside it."""
    import gilbridge

    target = base / "pythonpath"
    if not target.exists():
        shutil.copytree(Path(gilbridge.__file__).parent, target / "gilbridge",
                        ignore=shutil.ignore_patterns("__pycache__", "_bin"))
        for path in [target, *target.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def run_as(uid: int, gid: int, code: str, *args: str, env: dict[str, str], base: Path) -> dict[str, object]:
    """``code`` run as the second user by the system's interpreter (the venv's is a link
    to it), importing the readable copy of gilbridge; its last stdout line as JSON."""
    done = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--",
         os.path.realpath(sys.executable), "-c", code, *args],
        env=dict(env, PYTHONPATH=str(readable_package(base))), cwd="/", capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["uid"] == uid, result  # really the second user
    return result


@pytest.fixture()
def shared_base() -> Iterator[Path]:
    """A directory every user may enter (0755), so that what stops the second user is the
    runtime directory's own mode and the sockets' modes, not the test's temp directory."""
    base = Path(tempfile.mkdtemp(prefix="gb-trust-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_second_unix_user_is_refused_and_the_hosts_objects_are_untouched(shared_base: Path) -> None:
    uid, gid = probe_user()
    runtime = shared_base / "runtime"
    runtime.mkdir(mode=0o755)
    runtime.chmod(0o755)  # open on purpose: the host itself must close it
    host: HostProcess = start_host(runtime)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GILBRIDGE_")}
    env.update(GILBRIDGE_ADDRESS=host.address, GILBRIDGE_HOST_PATH="/nonexistent", HOME="/nonexistent",
               PYTHONDONTWRITEBYTECODE="1")
    owner = subprocess.Popen([sys.executable, "-c", OWNER], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdin is not None
        line = owner.stdout.readline()
        assert line.strip() == "ready", line + owner.stderr.read() if owner.stderr else line

        assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
        assert stat.S_IMODE(host.socket.stat().st_mode) == 0o600
        data_sockets = sorted(runtime.glob("w-*.sock"))
        assert data_sockets, f"no worker data socket in {runtime}: {os.listdir(runtime)}"
        for path in data_sockets:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        paths = [str(host.socket), *map(str, data_sockets)]

        # 1. As the host made them: the 0700 directory stops the second user.
        started = time.monotonic()
        refused = run_as(uid, gid, PROBE, *paths, env=env, base=shared_base)
        assert refused["imported"] is True
        assert set(refused["raw"].values()) == {"PermissionError"}, refused  # type: ignore[union-attr]
        assert str(refused["queue"]).startswith(("PermissionError", "HostUnavailableError")), refused
        assert "get" not in refused, refused

        # 2. Directory opened to traversal (0711): the sockets' own 0600 still refuse.
        runtime.chmod(0o711)
        refused = run_as(uid, gid, PROBE, *paths, env=env, base=shared_base)
        assert set(refused["raw"].values()) == {"PermissionError"}, refused  # type: ignore[union-attr]
        assert str(refused["queue"]).startswith(("PermissionError", "HostUnavailableError")), refused

        # 3. Control: with the host socket opened up too, the same user does reach the
        # host -- so what refused it above was the modes, nothing else.
        host.socket.chmod(0o666)
        reached = run_as(uid, gid, CONTROL, str(host.socket), env=env, base=shared_base)
        assert reached["pid"] == host.pid, reached
        host.socket.chmod(0o600)
        runtime.chmod(0o700)
        probing = time.monotonic() - started

        # The owner's objects are as it left them, its pool still works.
        owner.stdin.write("check\n")
        owner.stdin.flush()
        out, err = owner.communicate(timeout=60)
        assert owner.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"qsize": 1, "item": "owner's item"}
        host.assert_alive()
        print(f"three runs as {PROBE_USER} took {probing:.1f} s")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        stop_host(host)


def test_a_default_runtime_directory_of_another_user_is_not_trusted(
        shared_base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone else's ``/tmp/gilbridge-<uid>`` (made there first): the client must not
    connect to a host in it -- it would send that host its pickles and unpickle its answers."""
    uid, gid = probe_user()
    from gilbridge import _host

    squatted = shared_base / "squatted"
    squatted.mkdir(mode=0o755)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(squatted / "host.sock"))
        listener.listen(1)
        os.chown(squatted, uid, gid)
        monkeypatch.delenv("GILBRIDGE_ADDRESS", raising=False)
        monkeypatch.setenv("GILBRIDGE_RUNTIME_DIR", str(squatted))
        address = _host.configured_address()
        assert address.is_default and address.socket_path == squatted / "host.sock"
        with pytest.raises(PermissionError, match=rf"belongs to uid {uid}, not to this user"):
            _host.probe(address)
        with pytest.raises(PermissionError, match="not connecting"):
            _host.ensure_host(address)
    finally:
        listener.close()


def test_an_explicit_address_is_the_users_choice(shared_base: Path) -> None:
    """The ownership check is for the default directory only: GILBRIDGE_ADDRESS names a
    socket on purpose (a host of this user's own in a shared directory, for instance)."""
    from gilbridge import _host

    assert _host.probe(_host.Address(f"unix:{shared_base / 'nothing.sock'}", is_default=False)) is None


# ------------------------------------------------------------------ TCP data sockets

CLUSTER_OWNER = """
import sys
import gilbridge.multiprocessing as mp
with mp.Pool(2) as pool:
    assert pool.map(abs, [-3, -4]) == [3, 4]
    print("ready", flush=True)
    sys.stdin.readline()
    print("after", *pool.map(abs, range(-5, 0)), flush=True)
"""


def _data_tcp_ports(host_pid: int) -> list[tuple[int, int]]:
    """(pid, port) of each worker of ``host_pid`` that listens on a TCP data socket."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == host_pid and "--data-tcp" in argv:
            found.append((int(entry.name), int(argv[argv.index("--data-tcp") + 1].rpartition(":")[2])))
    return found


def _frame(message: bytes) -> bytes:
    return len(message).to_bytes(4, "little") + message


def _closed_after(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the worker closed ``sock`` and what it sent first (b"": nothing)."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        received = sock.recv(65536)
    except (ConnectionResetError, socket.timeout) as exc:
        received = b"" if isinstance(exc, ConnectionResetError) else b"<still open>"
    return time.monotonic() - started, received


def test_a_workers_tcp_data_socket_refuses_connections_without_their_pools_token(tmp_path: Path) -> None:
    from gilbridge._proto.bridge.v1 import execution_pb2
    from test_cluster import TOKEN, free_port, gilbridge

    redis_port = _start_redis(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    started = gilbridge("host", "start", "--cluster", f"redis://127.0.0.1:{redis_port[0]}", "--tcp", address,
                        runtime=tmp_path / "runtime")
    assert started.returncode == 0, started.stdout + started.stderr
    host_pid = int(re.search(r"pid (\d+)", started.stdout).group(1))  # type: ignore[union-attr]
    owner = subprocess.Popen([sys.executable, "-c", CLUSTER_OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, GILBRIDGE_TOKEN=TOKEN, GILBRIDGE_ADDRESS=address))
    try:
        assert owner.stdout is not None and owner.stdin is not None
        assert owner.stdout.readline().strip() == "ready", owner.stderr.read() if owner.stderr else ""
        workers = _data_tcp_ports(host_pid)
        assert workers, "no worker of the cluster host listens on a TCP data socket"

        task = execution_pb2.DataFrame(task=execution_pb2.TaskChunk(
            task_id=1, function=execution_pb2.Callable(kernel="Bridge.Kernels.Primes.Count"),
            style=execution_pb2.STARMAP, items=[b"\x92\x00\x64"])).SerializeToString()
        attempts = {
            "a task frame first, no token": _frame(task),
            "a first frame announcing 1 GiB": (1 << 30).to_bytes(4, "little"),
            "a wrong token": _frame(execution_pb2.DataFrame(token="0" * 32).SerializeToString()),
            "an empty token": _frame(execution_pb2.DataFrame(token="").SerializeToString()),
            "nothing at all": b"",
        }
        outcomes: dict[str, tuple[float, bytes]] = {}
        for pid, port in workers:
            sockets = {}
            for name, data in attempts.items():
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(data)
                sockets[name] = sock
            for name, sock in sockets.items():
                with sock:
                    outcomes[f"{name} (worker {pid})"] = _closed_after(sock, 20)
        for name, (seconds, received) in outcomes.items():
            assert received == b"", f"{name}: the worker sent {received[:40]!r} after {seconds:.1f} s"
            limit = 3 if name.startswith(("a task frame", "a first frame")) else 15
            assert seconds < limit, f"{name}: closed only after {seconds:.1f} s"
        print({name: round(seconds, 2) for name, (seconds, _) in outcomes.items()})

        # The workers survived all that and still serve their pool.
        assert {pid for pid, _ in workers} <= {pid for pid, _ in _data_tcp_ports(host_pid)}
        out, err = owner.communicate("\n", timeout=60)
        assert owner.returncode == 0, err
        assert out.split() == ["after", "5", "4", "3", "2", "1"], out
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        from gilbridge import _host

        if _host.pid_alive(host_pid):
            _host.stop_host(host_pid, timeout=10)
        _stop_redis(redis_port[1])


def _start_redis(directory: Path) -> tuple[int, subprocess.Popen[bytes]]:
    from conftest import wait_for
    from test_cluster import free_port

    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is missing (scripts/setup.sh installs Debian's package)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    if not wait_for(accepts, timeout=10):
        _stop_redis(proc)
        pytest.fail("redis-server did not start")
    return port, proc


def _stop_redis(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(10)

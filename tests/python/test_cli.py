"""``python -m gilbridge host start|status|stop`` and the auto-start path, in a private
runtime directory with GILBRIDGE_ADDRESS unset (the default address)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import HOST_EXE, run_command, stop_host_in, wait_for


def _alive(pid: int) -> bool:
    from gilbridge._host import pid_alive

    return pid_alive(pid)


@pytest.fixture()
def runtime(request: pytest.FixtureRequest) -> Iterator[tuple[Path, dict[str, str]]]:
    # A short path: Unix socket paths are limited to 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="gb-cli-")) / "rt"
    env = {k: v for k, v in os.environ.items() if k not in ("GILBRIDGE_ADDRESS", "XDG_RUNTIME_DIR")}
    env.update(
        GILBRIDGE_RUNTIME_DIR=str(directory),
        GILBRIDGE_HOST_PATH=str(HOST_EXE),
        GILBRIDGE_IDLE_TIMEOUT="120",
    )
    try:
        yield directory, env
    finally:
        # Whatever happened, no host may outlive the test: stop it by PID.
        stop_host_in(directory)
        shutil.rmtree(directory.parent, ignore_errors=True)


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> tuple[int, str]:
    done = run_command([sys.executable, "-m", "gilbridge", *args], timeout, merge_stderr=True, env=env)
    return done.returncode, done.stdout


AUTO_START_CLIENT = """
import gilbridge.multiprocessing as mp
from gilbridge._connection import get_connection
lock = mp.Lock(name="cli.lock")
assert lock.acquire(timeout=5)
lock.release()
conn = get_connection()
print("pid", conn.host_info.pid, conn.address.target)
"""


WORKER_SETTINGS_CLIENT = """
import sys
sys.path.insert(0, %r)
import _exec_targets
import gilbridge.multiprocessing as mp
if __name__ == "__main__":
    with mp.Pool(1) as pool:
        print("settings", pool.map(_exec_targets.dotnet_start_settings, [0]))
""" % str(Path(__file__).parent)


def test_host_cli_and_auto_start(runtime: tuple[Path, dict[str, str]]) -> None:
    directory, env = runtime
    rc, out = cli(env, "host", "status")
    assert rc == 3 and "not running" in out, out

    # Two clients at once, no host yet: exactly one host is started (start.lock).
    clients = [
        subprocess.Popen([sys.executable, "-c", AUTO_START_CLIENT], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = []
    try:
        for c in clients:
            out_c, err_c = c.communicate(timeout=90)
            assert c.returncode == 0, err_c
            outputs.append(out_c.split())
    finally:
        for c in clients:
            if c.poll() is None:
                os.kill(c.pid, signal.SIGKILL)
                c.wait(10)
    (pid_a, addr_a), (pid_b, addr_b) = [(o[1], o[2]) for o in outputs]
    assert pid_a == pid_b, "two hosts were started"
    host_pid = int(pid_a)
    assert addr_a == addr_b == f"unix:{directory / 'host.sock'}"
    assert int((directory / "host.pid").read_text()) == host_pid
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "host.sock").stat().st_mode) == 0o600
    assert (directory / "host.log").exists()
    # An auto-started host runs .NET without W^X (unless the user's environment says
    # otherwise): no double-mapped code pages.
    host_environment = Path(f"/proc/{host_pid}/environ").read_bytes().split(b"\0")
    if "DOTNET_EnableWriteXorExecute" not in env:
        assert b"DOTNET_EnableWriteXorExecute=0" in host_environment
        assert "doublemapper" not in Path(f"/proc/{host_pid}/maps").read_text()
        # Its workers inherit the setting for their own runtime; their tasks do not.
        done = run_command([sys.executable, "-c", WORKER_SETTINGS_CLIENT], 90, merge_stderr=True, env=env)
        assert done.returncode == 0 and "settings [(None, None, False)]" in done.stdout, done.stdout

    rc, out = cli(env, "host", "status")
    assert rc == 0, out
    assert re.search(rf"pid:\s+{host_pid}\b", out), out
    assert re.search(r"version:\s+\S+", out) and re.search(r"uptime:\s+[\d.]+ s", out)
    assert re.search(r"sessions:\s+\d+", out)

    rc, out = cli(env, "host", "start")  # already running: same host
    assert rc == 0 and f"pid {host_pid}" in out and str(directory / "host.sock") in out, out

    rc, out = cli(env, "host", "stop")
    assert rc == 0, out
    assert not _alive(host_pid)
    rc, out = cli(env, "host", "status")
    assert rc == 3, out


HOST_DIES_CLIENT = """
import json, os, signal, threading, time, warnings
import gilbridge.multiprocessing as mp
from gilbridge import HostUnavailableError, ObjectLostError
from gilbridge._connection import get_connection
warnings.simplefilter("ignore", RuntimeWarning)
q = mp.Queue()
q.put("before")
assert q.get(timeout=10) == "before"
first = get_connection().host_info.pid
outcome = {}
def blocked_get():
    started = time.monotonic()
    try:
        q.get(timeout=60)
        outcome["blocked"] = "returned"
    except Exception as exc:
        outcome["blocked"] = type(exc).__name__
    outcome["blocked_s"] = time.monotonic() - started
waiter = threading.Thread(target=blocked_get)
waiter.start()
time.sleep(0.5)
os.kill(first, signal.SIGKILL)
waiter.join(30)
fresh = mp.Queue(name="after.death")  # the next use finds no host: a new one starts
fresh.put("after")
outcome["fresh"] = fresh.get(timeout=30)
with mp.Pool(2) as pool:
    outcome["pool"] = pool.map(abs, [-1, -2])
try:
    q.get(timeout=5)
    outcome["old"] = "returned"
except ObjectLostError as exc:
    outcome["old"] = "ObjectLostError: " + str(exc)
except Exception as exc:
    outcome["old"] = type(exc).__name__ + ": " + str(exc)
outcome["names_queue"] = q._name in outcome["old"]
outcome["first"], outcome["second"] = first, get_connection().host_info.pid
print(json.dumps(outcome))
"""


def test_a_killed_host_fails_blocked_calls_and_the_next_use_starts_another(
        runtime: tuple[Path, dict[str, str]]) -> None:
    directory, env = runtime
    done = run_command([sys.executable, "-c", HOST_DIES_CLIENT], 180, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    import json

    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["blocked"] == "HostUnavailableError" and outcome["blocked_s"] < 5, outcome
    assert outcome["fresh"] == "after" and outcome["pool"] == [1, 2], outcome
    assert outcome["second"] != outcome["first"] and not _alive(outcome["first"]), outcome
    assert outcome["old"].startswith("ObjectLostError: ") and outcome["names_queue"], outcome
    assert f"pid {outcome['first']}" in outcome["old"], outcome


def test_host_start_command_starts_one(runtime: tuple[Path, dict[str, str]]) -> None:
    directory, env = runtime
    rc, out = cli(env, "host", "start")
    assert rc == 0, out
    match = re.search(r"pid (\d+)", out)
    assert match, out
    pid = int(match.group(1))
    assert _alive(pid)
    rc, out = cli(env, "host", "stop")
    assert rc == 0 and str(pid) in out
    assert wait_for(lambda: not _alive(pid), timeout=5)


def test_start_failure_reports_the_log(runtime: tuple[Path, dict[str, str]]) -> None:
    directory, env = runtime
    directory.mkdir(parents=True, mode=0o700)
    fake = directory / "fake-host.sh"
    fake.write_text("#!/bin/sh\necho 'fake host: cannot start' >&2\nexit 7\n")
    fake.chmod(0o755)
    env = dict(env, GILBRIDGE_HOST_PATH=str(fake))
    t0 = time.monotonic()
    rc, out = cli(env, "host", "start")
    assert rc == 1
    assert "status 7" in out and "fake host: cannot start" in out, out
    assert time.monotonic() - t0 < 20


def test_missing_host_executable(runtime: tuple[Path, dict[str, str]]) -> None:
    directory, env = runtime
    env = dict(env, GILBRIDGE_HOST_PATH=str(directory / "does-not-exist"))
    rc, out = cli(env, "host", "start")
    assert rc == 1 and "does-not-exist" in out, out


def test_a_dead_hosts_socket_file_is_seen_as_no_host_at_once(tmp_path: Path) -> None:
    """A socket file nobody listens on (what a SIGKILLed host leaves) is no host: the probe
    says so at once instead of waiting out its timeout (grpc did, ~1-2 s per probe, twice
    before a client whose host died started another)."""
    import socket

    from gilbridge import _host

    path = tmp_path / "host.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.listen(1)
    stale.close()  # the file stays, refusing connections
    assert path.exists()
    address = _host.Address(f"unix:{path}", is_default=False)
    # The client's own channel to the dead host stays open, reconnecting with backoff; grpc
    # shares that connection attempt with every new channel to the same socket.
    grpc = _host.import_grpc()
    channel = address.open_channel(grpc)
    try:
        with pytest.raises(grpc.RpcError):
            channel.unary_unary("/bridge.v1.Sessions/GetHostInfo")(b"", timeout=1)
        started = time.monotonic()
        for _ in range(6):
            assert _host.probe(address, timeout=30) is None
        # Each took ~1.7 s before (grpc's reconnect backoff); now each is one refused connect.
        assert time.monotonic() - started < 5, "the probes waited for a host that cannot answer"
    finally:
        channel.close()


STATUS_HOLDER = """
import sys
import gilbridge.multiprocessing as mp
jobs = mp.Queue(name="status.jobs")
for i in range(3):
    jobs.put(i)
assert jobs.qsize() == 3  # flushes the buffered puts
bounded = mp.Queue(7, name="status.bounded")
guard = mp.Lock(name="status.guard")
assert guard.acquire(timeout=10)
units = mp.Semaphore(3, name="status.units")
assert units.acquire(timeout=10)
flag = mp.Event(name="status.flag")
flag.set()
meeting = mp.Barrier(3, name="status.meeting")
count = mp.Value("i", 7, name="status.count")
hidden = mp.Queue()
hidden.put("x")
assert hidden.qsize() == 1
with mp.Pool(2) as pool:
    assert pool.map(abs, [-1, -2]) == [1, 2]
    print("ready", flush=True)
    sys.stdin.readline()  # the test's go-ahead to finish
guard.release()
print("done", flush=True)
"""

STATUS_WAITER = """
import gilbridge.multiprocessing as mp
guard = mp.Lock(name="status.guard")
print("waiting", flush=True)
print("acquired" if guard.acquire(timeout=60) else "timed out", flush=True)
"""


def _status_json(env: dict[str, str]) -> dict[str, object]:
    import json

    rc, out = cli(env, "host", "status", "--json")
    assert rc == 0, out
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def _objects(data: dict[str, object]) -> dict[str, dict[str, object]]:
    objects = data["objects"]
    assert isinstance(objects, list)
    return {o["name"]: o for o in objects}


@pytest.mark.timeout(150)
def test_host_status_lists_sessions_objects_and_pools(runtime: tuple[Path, dict[str, str]]) -> None:
    directory, env = runtime
    started: list[subprocess.Popen[str]] = []
    try:
        holder = subprocess.Popen([sys.executable, "-c", STATUS_HOLDER], env=env, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(holder)
        assert holder.stdout is not None and holder.stdin is not None
        line = holder.stdout.readline()  # the pytest timeout bounds this read
        assert line.strip() == "ready", line + (holder.stderr.read() if holder.poll() is not None else "")
        waiter = subprocess.Popen([sys.executable, "-c", STATUS_WAITER], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(waiter)

        # The waiter's acquire reaches the host (and the holder's cached grant becomes a
        # plain hold) asynchronously: poll until the lock shows it.
        data: dict[str, object] = {}

        def waiter_seen() -> bool:
            nonlocal data
            data = _status_json(env)
            guard = _objects(data).get("status.guard")
            # Once the lock shows the waiter, its session counts the lock in the same status
            # (asserted below): the host reads the sessions after the objects. (It read them
            # before, and once in ~60 runs listed the waiter at 0 objects.)
            return guard is not None and guard["waiters"] == 1 and not guard["lock"]["cached"]

        assert wait_for(waiter_seen, timeout=30, interval=0.2), data

        sessions = {s["pid"]: s for s in data["sessions"]}  # type: ignore[union-attr]
        assert {holder.pid, waiter.pid} <= set(sessions), sessions
        holder_session = sessions[holder.pid]
        assert holder_session["language"] == "python" and holder_session["age_seconds"] > 0
        assert holder_session["objects"] >= 9, holder_session  # 8 named, the anonymous queue, count's lock
        assert len(sessions) == len(data["sessions"]), data["sessions"]  # type: ignore[arg-type]
        assert sessions[waiter.pid]["objects"] == 1, data["sessions"]

        objects = _objects(data)
        assert data["objects_omitted"] == 0 and data["objects_unanswered"] == 0, data
        jobs = objects["status.jobs"]
        assert (jobs["kind"], jobs["sessions"], jobs["waiters"]) == ("QUEUE", 1, 0)
        assert jobs["queue"]["size"] == 3 and jobs["queue"]["maxsize"] == 0 and jobs["queue"]["leased"] == 0
        assert objects["status.bounded"]["queue"]["maxsize"] == 7
        guard = objects["status.guard"]
        assert (guard["kind"], guard["sessions"], guard["waiters"]) == ("LOCK", 2, 1)
        assert guard["lock"]["value"] == 0 and guard["lock"]["holder_sessions"] == [holder_session["session_id"]]
        units = objects["status.units"]
        assert units["kind"] == "SEMAPHORE" and units["lock"]["value"] == 2 and units["lock"]["initial_value"] == 3
        assert units["lock"]["holders"] == 1
        assert objects["status.flag"]["event"] == {"set": True}
        assert objects["status.meeting"]["barrier"] == {"parties": 3, "waiting": 0, "broken": False}
        count = objects["status.count"]
        assert count["value"]["typecode"] == "i" and count["value"]["length"] == 1 and not count["value"]["is_array"]
        anonymous = [o for o in objects.values() if o["anonymous"]]
        assert [(o["kind"], o["queue"]["size"]) for o in anonymous] == [("QUEUE", 1)], anonymous
        assert list(objects).index("status.jobs") < list(objects).index(anonymous[0]["name"]), "named objects come first"

        pools = [p for p in data["pools"] if p["session_id"] == holder_session["session_id"]]  # type: ignore[union-attr]
        assert len(pools) == 1, data["pools"]
        pool = pools[0]
        assert pool["processes"] == 2 and pool["state"] == "running" and len(pool["workers"]) == 2, pool
        assert data["workers"]["in_pools"] >= 2  # type: ignore[index]

        # The same, for people: the host's own lines, then the three tables.
        rc, out = cli(env, "host", "status")
        assert rc == 0, out
        assert re.search(r"pid:\s+\d+", out) and re.search(r"sessions:\s+2\b", out), out
        assert re.search(rf"^\s+{holder_session['session_id'][:8]}\s+{holder.pid}\s+python\s", out, re.M), out
        assert re.search(r"^\s+QUEUE\s+status\.jobs\s+1\s+0\s+size 3, maxsize inf, leased 0$", out, re.M), out
        assert re.search(rf"^\s+LOCK\s+status\.guard\s+2\s+1\s+held by {holder_session['session_id'][:8]}$", out, re.M), out
        assert re.search(r"^\s+SEMAPHORE\s+status\.units\s+1\s+0\s+value 2/3, holders 1", out, re.M), out
        assert re.search(r"^\s+EVENT\s+status\.flag\s+1\s+0\s+set$", out, re.M), out
        assert re.search(r"^\s+BARRIER\s+status\.meeting\s+1\s+0\s+0/3 waiting$", out, re.M), out
        worker_pids = [str(w["pid"]) for w in pool["workers"]]
        assert re.search(rf"^\s+{pool['pool_id'][:8]}\s+{holder_session['session_id'][:8]}\s+\S+\s+running\s", out, re.M), out
        assert all(pid in out for pid in worker_pids), out

        rc, out = cli(env, "host", "status", "--json", "--max-objects", "2")
        assert rc == 0, out
        import json

        limited = json.loads(out)
        assert len(limited["objects"]) == 2 and limited["objects_omitted"] == len(objects) - 2, limited

        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "done"
        assert waiter.communicate(timeout=30)[0].split() == ["waiting", "acquired"]
        assert holder.wait(30) == 0
    finally:
        for process in started:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(10)

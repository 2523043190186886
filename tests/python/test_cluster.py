"""Several hosts, one cluster (issue 10, first step: membership): a real redis-server and
three real hosts started by ``python -m gilbridge host start --cluster ... --tcp ...`` on
127.0.0.1; every process is stopped by its PID at the end."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gilbridge import _host

from conftest import HOST_EXE, wait_for

TOKEN = "cluster-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server of its own on a free port (no persistence); yields the port."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is missing (scripts/setup.sh installs Debian's package)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def accepts() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False

        assert wait_for(accepts, timeout=10), "redis-server did not start"
        yield port
    finally:
        proc.kill()
        proc.wait(10)


def gilbridge(*args: str, runtime: Path | None = None, address: str | None = None,
              timeout: float = 90, tls_ca: Path | None = None) -> subprocess.CompletedProcess[str]:
    # (conftest points GILBRIDGE_HOST_PATH nowhere, so that nothing starts a host by itself)
    env = dict(os.environ, GILBRIDGE_TOKEN=TOKEN, GILBRIDGE_HOST_PATH=str(HOST_EXE))
    env.pop("GILBRIDGE_TLS_CA", None)
    if tls_ca is not None:
        env["GILBRIDGE_TLS_CA"] = str(tls_ca)
    env.pop("GILBRIDGE_ADDRESS", None)
    if runtime is not None:
        env["GILBRIDGE_RUNTIME_DIR"] = str(runtime)
    if address is not None:
        env["GILBRIDGE_ADDRESS"] = address
    return subprocess.run([sys.executable, "-m", "gilbridge", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def members(address: str) -> dict[str, str]:
    """host id -> membership status, from ``host status`` of the host at ``address``."""
    out = gilbridge("host", "status", address=address, timeout=30).stdout
    return dict(re.findall(r"member (\S+) silo \S+ (\w+)", out))


@pytest.fixture()
def hosts(tmp_path: Path, redis: int) -> Iterator[list[tuple[str, int, str]]]:
    """Three cluster hosts: (address, pid, host id) each; stopped by PID afterwards."""
    started: list[tuple[str, int, str]] = []
    try:
        for i in range(3):
            address = f"127.0.0.1:{free_port()}"
            done = gilbridge("host", "start", "--cluster", f"redis://127.0.0.1:{redis}",
                             "--tcp", address, runtime=tmp_path / f"runtime{i}")
            assert done.returncode == 0, done.stdout + done.stderr
            pid = int(re.search(r"pid (\d+)", done.stdout).group(1))  # type: ignore[union-attr]
            status = gilbridge("host", "status", address=address).stdout
            host_id = re.search(r"^id:\s+(\S+)", status, re.M).group(1)  # type: ignore[union-attr]
            started.append((address, pid, host_id))
        yield started
    finally:
        for _, pid, _ in started:
            if _host.pid_alive(pid):
                _host.stop_host(pid, timeout=10)


def test_three_hosts_form_one_cluster_and_a_killed_one_is_declared_dead(hosts) -> None:
    ids = {host_id for _, _, host_id in hosts}
    assert len(ids) == 3
    first, second, third = hosts
    # every host sees the same three members, all active
    for address, _, _ in hosts:
        assert wait_for(lambda a=address: {i: s for i, s in members(a).items() if i in ids}
                        == dict.fromkeys(ids, "Active"), timeout=30), members(address)

    os.kill(third[1], signal.SIGKILL)
    killed = time.monotonic()
    assert wait_for(lambda: members(first[0]).get(third[2]) == "Dead", timeout=30, interval=0.1), \
        members(first[0])
    detected = time.monotonic() - killed
    print(f"a SIGKILLed host was declared dead after {detected:.1f} s")
    assert members(second[0]).get(third[2]) == "Dead"
    assert {members(first[0])[i] for i in (first[2], second[2])} == {"Active"}


def test_cluster_options_are_checked(tmp_path: Path) -> None:
    done = gilbridge("host", "start", "--cluster", "redis://127.0.0.1:1", runtime=tmp_path)
    assert done.returncode == 2 and "--tcp" in done.stderr
    done = gilbridge("host", "start", "--cluster", "127.0.0.1:6379", "--tcp", "127.0.0.1:1",
                     runtime=tmp_path)
    assert done.returncode == 1 and "redis://HOST:PORT" in done.stderr
    done = gilbridge("host", "start", "--tcp", "nonsense", runtime=tmp_path)
    assert done.returncode == 1 and "ADDRESS:PORT" in done.stderr


CLIENT = """
import sys
import gilbridge.multiprocessing as mp
q = mp.Queue(name="cluster-jobs")
lock = mp.Lock(name="cluster-lock")
if sys.argv[1] == "first":
    q.put("from the first host")
    q.close()
    q.join_thread()
    assert lock.acquire(timeout=10)
    print("holding", flush=True)
    sys.stdin.readline()  # hold the lock until told
    lock.release()
else:
    print("got", q.get(timeout=20), flush=True)
    print("while held elsewhere", lock.acquire(timeout=1), flush=True)
    sys.stdin.readline()
    print("after release", lock.acquire(timeout=20), flush=True)
"""


def test_a_named_queue_and_lock_are_the_same_objects_through_two_hosts(hosts) -> None:
    (first, _, _), (second, _, _), _ = hosts
    env = dict(os.environ, GILBRIDGE_TOKEN=TOKEN)

    def client(address: str, role: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", CLIENT, role], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True,
                                env=dict(env, GILBRIDGE_ADDRESS=address))

    holder = client(first, "first")
    other: subprocess.Popen[str] | None = None
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        other = client(second, "second")  # only now: it must find the lock held
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "got from the first host"
        assert other.stdout.readline().strip() == "while held elsewhere False"
        holder.communicate("\n", timeout=30)
        assert holder.returncode == 0
        out, _ = other.communicate("\n", timeout=30)
        assert out.strip() == "after release True"
        assert other.returncode == 0
    finally:
        for proc in (holder, other):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


HOLDER = """
import sys
import gilbridge.multiprocessing as mp
q = mp.Queue(name="doomed-queue")
lock = mp.Lock(name="doomed-lock")
q.put("before the loss")
q.close()
q.join_thread()
print("ready", flush=True)
sys.stdin.readline()
"""

SURVIVOR = """
import sys, time
import gilbridge
import gilbridge.multiprocessing as mp
q = mp.Queue(name="doomed-queue", create=False)
lock = mp.Lock(name="doomed-lock", create=False)
kept = mp.Queue(name="kept-queue")
kept.put("kept")
print("got", q.get(timeout=20), flush=True)
started = time.monotonic()
try:
    q.get(timeout=60)
except gilbridge.ObjectLostError as exc:
    print(f"blocked get failed after {time.monotonic() - started:.1f} s: {exc}", flush=True)
started = time.monotonic()
try:
    lock.acquire(timeout=5)
except gilbridge.ObjectLostError as exc:
    print(f"lock: after {time.monotonic() - started:.1f} s: {exc}", flush=True)
try:
    print("kept:", kept.get(timeout=10), flush=True)
except Exception as exc:
    print("kept: failed:", repr(exc), flush=True)
    raise
sys.stdin.readline()  # the name is created again meanwhile
try:
    q.get(timeout=2)
except gilbridge.ObjectLostError as exc:
    print("old reference:", type(exc).__name__, flush=True)
print("reopened:", mp.Queue(name="doomed-queue", create=False).get(timeout=10), flush=True)
"""

RECREATOR = """
import sys
import gilbridge.multiprocessing as mp
q = mp.Queue(name="doomed-queue")
q.put("a new queue")
q.close()
q.join_thread()
lock = mp.Lock(name="doomed-lock")
print("recreated", lock.acquire(timeout=5), flush=True)
sys.stdin.readline()  # the new objects live while this process references them
"""


def test_a_dead_hosts_objects_report_their_loss_by_name_and_the_others_work_on(hosts) -> None:
    (first, _, _), (second, _, _), (third, third_pid, third_id) = hosts
    env = dict(os.environ, GILBRIDGE_TOKEN=TOKEN)

    def client(address: str, source: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", source], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env=dict(env, GILBRIDGE_ADDRESS=address))

    procs: list[subprocess.Popen[str]] = []
    try:
        # The objects are created through the third host, so its silo holds their grains.
        holder = client(third, HOLDER)
        procs.append(holder)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        survivor = client(second, SURVIVOR)
        procs.append(survivor)
        assert survivor.stdout is not None
        assert survivor.stdout.readline().strip() == "got before the loss"
        time.sleep(0.5)  # the survivor is now blocked in its second get
        os.kill(third_pid, signal.SIGKILL)
        line = survivor.stdout.readline().strip()
        assert line.startswith("blocked get failed after "), line
        waited = float(line.split()[4])
        print(f"a get blocked on a queue of the killed host failed after {waited:.1f} s: {line}")
        assert waited < 15
        assert "doomed-queue" in line
        # the first use of a lost object waits for the dead host's directory lease (~4 s)
        line = survivor.stdout.readline().strip()
        print(line)
        assert line.startswith("lock:") and "'doomed-lock' was lost" in line and third_id in line, line
        assert float(line.split()[2]) < 15, line
        assert survivor.stdout.readline().strip() == "kept: kept"  # objects of living hosts work on

        recreator = client(first, RECREATOR)
        procs.append(recreator)
        assert recreator.stdout is not None
        # the name makes a new object (its lock is free)
        assert recreator.stdout.readline().strip() == "recreated True"
        out, _ = survivor.communicate("\n", timeout=60)
        assert out.splitlines() == ["old reference: ObjectLostError", "reopened: a new queue"]
        assert survivor.returncode == 0
        recreator.communicate("\n", timeout=60)
        assert recreator.returncode == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


SPREAD = """
import os, sys, time
import gilbridge
import gilbridge.multiprocessing as mp

def where(x):
    time.sleep(0.3)
    return os.getpid(), os.getppid()

def tell(queue, x):
    time.sleep(0.3)
    queue.put(os.getppid())

if __name__ == "__main__":
    with mp.Pool(6) as pool:
        ran = pool.map(where, range(12), chunksize=1)
        print("hosts", " ".join(sorted({str(ppid) for _, ppid in ran})), flush=True)
        print("workers", len({pid for pid, _ in ran}), flush=True)
        told = mp.Queue()  # anonymous: each worker attaches to it through its own host
        pool.starmap(tell, [(told, i) for i in range(12)], chunksize=1)
        print("told", " ".join(sorted({str(told.get(timeout=30)) for _ in range(12)})), flush=True)
        sys.stdin.readline()  # one of the hosts is killed meanwhile
        outcomes = []
        for result in [pool.apply_async(where, (i,)) for i in range(12)]:
            try:
                outcomes.append(result.get(timeout=60)[1])
            except gilbridge.BrokenProcessPool:
                outcomes.append("broken")
        print("after", " ".join(sorted({str(o) for o in outcomes})), flush=True)
        print("again", " ".join(sorted({str(ppid) for _, ppid in pool.map(where, range(8), chunksize=1)})), flush=True)
"""


def test_a_pool_spreads_over_hosts_and_serves_on_when_one_dies(hosts, tmp_path: Path) -> None:
    (first, first_pid, _), (_, second_pid, _), (_, third_pid, _) = hosts
    script = tmp_path / "spread.py"
    script.write_text(SPREAD)
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, GILBRIDGE_TOKEN=TOKEN, GILBRIDGE_ADDRESS=first))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line and line[0] == "hosts", line
        ran_under = {int(pid) for pid in line[1:]}
        # 6 workers, 2 free cores per host here: this host's and at least one other's
        assert first_pid in ran_under and ran_under & {second_pid, third_pid}, (ran_under, first_pid)
        assert proc.stdout.readline().split() == ["workers", "6"]
        told = proc.stdout.readline().split()
        assert told[0] == "told" and len(set(told[1:]) & {str(p) for p in (first_pid, second_pid, third_pid)}) >= 2, told
        # each host reports its own workers; `host status` of one lists them all
        status = gilbridge("host", "status", address=first).stdout
        in_pools = dict(re.findall(r"member (\S+) silo \S+ Active  workers \d+ \((\d+) in pools\)", status))
        assert len(in_pools) == 3 and sum(map(int, in_pools.values())) == 6, status
        victim = second_pid if second_pid in ran_under else third_pid
        os.kill(victim, signal.SIGKILL)
        out, _ = proc.communicate("\n", timeout=120)
        after, again = out.splitlines()
        print(f"hosts {first_pid}, {second_pid}, {third_pid}; ran under {sorted(ran_under)}; "
              f"{victim} killed; {after}; {again}")
        # each task right after the kill either ran (on a living host, or on the dead
        # host's worker before it saw its host go: parent pid 1 or still the host's) or
        # failed with BrokenProcessPool, none hangs; then the pool serves on the others
        assert set(after.split()[1:]) <= {"broken", "1", str(first_pid), str(second_pid), str(third_pid)}, after
        assert str(victim) not in again.split()[1:] and str(first_pid) in again.split()[1:], again
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


TLS_CLIENT = """
import gilbridge.multiprocessing as mp

def square(x):
    return x * x

if __name__ == "__main__":
    q = mp.Queue(name="over-tls")
    q.put("sealed")
    print(q.get(timeout=20), sum(mp.Pool(2).map(square, range(10))), flush=True)
"""


def test_a_tcp_host_speaks_tls_with_a_given_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                           "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                           "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    address = f"127.0.0.1:{free_port()}"
    runtime = tmp_path / "runtime"

    # the certificate and its key go together, and must be one
    done = gilbridge("host", "start", "--tcp", address, "--tls-cert", str(cert), runtime=runtime)
    assert done.returncode == 1 and "--tls-cert and --tls-key go together" in done.stderr
    done = gilbridge("host", "start", "--tcp", address, "--tls-cert", str(cert), "--tls-key", str(cert),
                     runtime=runtime)
    assert done.returncode == 1 and "TlsCertificate" in done.stderr, done.stdout + done.stderr

    done = gilbridge("host", "start", "--tcp", address, "--tls-cert", str(cert), "--tls-key", str(key),
                     runtime=runtime)
    assert done.returncode == 0, done.stdout + done.stderr
    pid = int(re.search(r"pid (\d+)", done.stdout).group(1))  # type: ignore[union-attr]
    try:
        status = gilbridge("host", "status", address=address, tls_ca=cert)
        assert "pid:" in status.stdout and str(pid) in status.stdout, status.stdout + status.stderr
        # a client that does not speak TLS finds no host there
        assert gilbridge("host", "status", address=address, timeout=30).returncode != 0
        script = tmp_path / "tls_client.py"
        script.write_text(TLS_CLIENT)
        ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, GILBRIDGE_TOKEN=TOKEN, GILBRIDGE_ADDRESS=address,
                                      GILBRIDGE_TLS_CA=str(cert)))
        assert ran.stdout.strip() == "sealed 285", ran.stdout + ran.stderr
    finally:
        _host.stop_host(pid, timeout=10)

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

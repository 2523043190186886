"""Fixtures: a real Bridge host process for the session, helpers to run Python children.

The host is ``<repo>/artifacts/host/Bridge.Host`` (override with GILBRIDGE_HOST_PATH).
It listens on a Unix socket in a temporary directory with a 2 s lease;
``GILBRIDGE_ADDRESS`` points there for this process and every child it starts. At the
end it is stopped by PID (SIGTERM, then SIGKILL) and must have exited.
"""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOST_EXE = Path(os.environ.get("GILBRIDGE_HOST_PATH") or REPO / "artifacts/host/Bridge.Host")
LEASE_SECONDS = 2
CHILD_TIMEOUT = 60.0

# The size of the load tests (test_load.py, and the cluster's under load): 0.02 is what CI
# runs, 1 the full load a person runs (GILBRIDGE_LOAD_SCALE=1).
LOAD_SCALE = float(os.environ.get("GILBRIDGE_LOAD_SCALE", "0.02"))


def scaled(full: int, least: int) -> int:
    """``full`` at GILBRIDGE_LOAD_SCALE, at least ``least``."""
    return max(least, int(full * LOAD_SCALE))

# A test (or child) that forgets GILBRIDGE_ADDRESS must fail loudly instead of
# auto-starting a host on the user's default socket; test_cli.py sets its own.
os.environ["GILBRIDGE_HOST_PATH"] = "/nonexistent/gilbridge-tests-must-not-auto-start"
os.environ.pop("GILBRIDGE_ADDRESS", None)
# Inline C# kernels compiled by the tests' workers (inherited from the hosts they start)
# stay out of the user's ~/.cache; the directory goes with the test run.
CSHARP_CACHE = Path(tempfile.mkdtemp(prefix="gb-csharp-"))
os.environ["GILBRIDGE_CSHARP_CACHE"] = str(CSHARP_CACHE)
atexit.register(shutil.rmtree, CSHARP_CACHE, True)


@dataclass
class HostProcess:
    proc: subprocess.Popen[bytes]
    directory: Path
    socket: Path
    log: Path

    @property
    def address(self) -> str:
        return f"unix:{self.socket}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, (
            f"the host exited with {self.proc.returncode}; log:\n{self.log_tail()}"
        )


def _probe(address: str) -> object | None:
    from gilbridge import _host

    return _host.probe(_host.Address(address, is_default=False), timeout=1.0)


def start_host(directory: Path, *extra_args: str) -> HostProcess:
    """Start a host listening on ``directory/host.sock`` and wait until it answers."""
    if not HOST_EXE.is_file():
        pytest.fail(
            f"Bridge host executable not found at {HOST_EXE}: publish src/Bridge.Host to "
            f"artifacts/host/ (or set GILBRIDGE_HOST_PATH) before running these tests",
            pytrace=False,
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    sock = directory / "host.sock"
    log = directory / "host.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(HOST_EXE),
                f"--Bridge:SocketPath={sock}",
                f"--Bridge:PidFile={directory / 'host.pid'}",
                "--Bridge:IdleTimeoutSeconds=3600",
                f"--Bridge:LeaseSeconds={LEASE_SECONDS}",
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host = HostProcess(proc, directory, sock, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"host exited with {proc.returncode} at start:\n{host.log_tail()}")
        if _probe(host.address) is not None:
            return host
        time.sleep(0.05)
    stop_host(host)
    pytest.fail(f"host did not answer within 30 s:\n{host.log_tail()}")


def stop_host(host: HostProcess) -> int:
    """SIGTERM by PID, wait up to 15 s, SIGKILL fallback. Returns the exit status."""
    proc = host.proc
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode is not None, "host still running after SIGKILL"
    return proc.returncode


@pytest.fixture(scope="session")
def bridge_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    """The session's host; GILBRIDGE_ADDRESS points at it (inherited by children)."""
    host = start_host(Path(tmp_path_factory.mktemp("bridge")))
    old = os.environ.get("GILBRIDGE_ADDRESS")
    os.environ["GILBRIDGE_ADDRESS"] = host.address
    try:
        yield host
    finally:
        # Say Goodbye from this process before the host goes away.
        from gilbridge import _connection

        _connection._close_current()
        if old is None:
            os.environ.pop("GILBRIDGE_ADDRESS", None)
        else:
            os.environ["GILBRIDGE_ADDRESS"] = old
        was_running = host.proc.poll() is None
        status = stop_host(host)
        assert was_running, f"the host died during the tests ({status}):\n{host.log_tail()}"


@pytest.fixture()
def host(bridge_host: HostProcess) -> Iterator[HostProcess]:
    """The session host, checked to be still alive after the test."""
    yield bridge_host
    bridge_host.assert_alive()


# --------------------------------------------------------------------------- children


class Child:
    """A Python child process running a snippet (killed by PID if left running)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._lines: queue.Queue[str | None] | None = None
        self._seen: list[str] = []
        self._reader: threading.Thread | None = None

    def _start_reader(self) -> queue.Queue[str | None]:
        if self._lines is None:
            self._lines = queue.Queue()
            lines = self._lines
            stdout = self.proc.stdout
            assert stdout is not None

            def pump() -> None:
                for line in stdout:
                    lines.put(line)
                lines.put(None)

            self._reader = threading.Thread(target=pump, daemon=True)
            self._reader.start()
        return self._lines

    def wait_line(self, expected: str, timeout: float = 20.0) -> str:
        """Read stdout until a line starting with ``expected``; return it stripped."""
        lines = self._start_reader()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(remaining, 0.0)) if remaining > 0 else None
            except queue.Empty:
                line = None
            if line is None:
                err = ""
                try:
                    self.proc.wait(5)  # stdout closed: the child is exiting
                except subprocess.TimeoutExpired:
                    pass
                if self.proc.poll() is not None and self.proc.stderr is not None:
                    err = self.proc.stderr.read()
                raise AssertionError(
                    f"no line {expected!r} from child within {timeout} s; got {self._seen!r}; "
                    f"exit={self.proc.poll()}; stderr:\n{err}"
                )
            self._seen.append(line)
            if line.startswith(expected):
                return line.strip()

    def wait(self, timeout: float = CHILD_TIMEOUT) -> tuple[int, str, str]:
        if self._lines is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"child timed out after {timeout} s; stdout so far {self._seen!r}")
            assert self._reader is not None
            self._reader.join(10)
            while True:
                try:
                    line = self._lines.get_nowait()
                except queue.Empty:
                    break
                if line is not None:
                    self._seen.append(line)
            err = self.proc.stderr.read() if self.proc.stderr is not None else ""
            return self.proc.returncode, "".join(self._seen), err
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"child timed out after {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def wait_ok(self, timeout: float = CHILD_TIMEOUT) -> str:
        rc, out, err = self.wait(timeout)
        assert rc == 0, f"child failed with {rc}\nstdout:\n{out}\nstderr:\n{err}"
        return out


class Children:
    """Starts Python snippets as children; all are killed by PID at teardown."""

    def __init__(self) -> None:
        self.started: list[Child] = []

    def start(self, code: str, *args: str, env: dict[str, str] | None = None,
              stdin: int | None = subprocess.DEVNULL) -> Child:
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        child = Child(proc)
        self.started.append(child)
        return child

    def run(self, code: str, *args: str, env: dict[str, str] | None = None,
            timeout: float = CHILD_TIMEOUT) -> str:
        """Run to completion; assert exit status 0; return stdout."""
        return self.start(code, *args, env=env).wait_ok(timeout)

    def kill_all(self) -> None:
        for child in self.started:
            child.kill()


@pytest.fixture()
def children() -> Iterator[Children]:
    c = Children()
    try:
        yield c
    finally:
        c.kill_all()


# Child-script code for tests that os.fork(): waits for a forked child and kills it
# by its PID if it hangs, so no test leaves one behind. Returns its exit code or "hung".
REAP_FORKED_CHILD = """
        import os, signal, time

        def reap(pid, limit=15):
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return os.waitstatus_to_exitcode(status)
                time.sleep(0.01)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "hung"
"""


def run_script(tmp_path: Path, code: str, *args: str, timeout: float = CHILD_TIMEOUT,
               signal_after: tuple[str, int] | None = None) -> tuple[int, str, str]:
    """Run ``code`` as a script (its own __main__) in a subprocess; kill it by pid if it
    outlives ``timeout``. ``signal_after``: (stdout line prefix, signal) to send once
    that line was printed."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out = ""
        if signal_after is not None:
            assert proc.stdout is not None
            while True:
                line = proc.stdout.readline()
                if not line:
                    break
                out += line
                if line.startswith(signal_after[0]):
                    proc.send_signal(signal_after[1])
                    break
        rest, err = proc.communicate(timeout=timeout)
        return proc.returncode, out + rest, err
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run_command(args: Sequence[str], timeout: float, *, merge_stderr: bool = False,
                **popen: object) -> subprocess.CompletedProcess[str]:
    """Run a command to its end and return its text output (stderr into stdout with
    ``merge_stderr``); kill it by pid if it outlives ``timeout`` (TimeoutExpired)."""
    proc = subprocess.Popen(list(args), stdout=subprocess.PIPE,  # type: ignore[call-overload]
                            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE, text=True, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return subprocess.CompletedProcess(list(args), proc.returncode, out, err)


def stop_host_in(runtime: Path) -> None:
    """Stop the host whose pid file is in ``runtime`` (one a test let the CLI or the
    auto-start path launch) by its PID: SIGTERM, then SIGKILL; none there is fine."""
    from gilbridge._host import pid_alive

    try:
        pid = int((runtime / "host.pid").read_text().strip())
    except (OSError, ValueError):
        return
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: not pid_alive(pid), timeout=15):
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not pid_alive(pid), timeout=10)
    assert not pid_alive(pid), f"host {pid} survived SIGKILL"


def wait_for(predicate: object, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until true or ``timeout``; returns its last value."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        time.sleep(interval)


__all__: Sequence[str] = [
    "Child", "Children", "HostProcess", "start_host", "stop_host", "wait_for",
]

"""Finding, starting and stopping the local Bridge host.

Only the DEFAULT address (a Unix socket in the per-user runtime directory) is ever
auto-started. When ``GILBRIDGE_ADDRESS`` is set the client connects there and never
starts anything.

Runtime directory (created with mode 0700):
``$GILBRIDGE_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/gilbridge``, else
``/tmp/gilbridge-<uid>``. It holds ``host.sock``, ``host.pid``, ``host.log`` and
``start.lock`` (an ``flock`` taken while starting, so two clients starting at once start
one host).
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # pragma: no cover
    import subprocess
    from pathlib import Path

    from ._proto.bridge.v1 import sessions_pb2

__all__ = [
    "Address",
    "configured_address",
    "ensure_host",
    "find_host_executable",
    "probe",
    "read_pid_file",
    "runtime_dir",
    "start_tcp_host",
    "stop_host",
]

ENV_ADDRESS: Final = "GILBRIDGE_ADDRESS"
ENV_TOKEN: Final = "GILBRIDGE_TOKEN"
ENV_TLS_CA: Final = "GILBRIDGE_TLS_CA"
ENV_RUNTIME_DIR: Final = "GILBRIDGE_RUNTIME_DIR"
ENV_HOST_PATH: Final = "GILBRIDGE_HOST_PATH"
ENV_IDLE_TIMEOUT: Final = "GILBRIDGE_IDLE_TIMEOUT"
ENV_DOTNET_WXORX: Final = "DOTNET_EnableWriteXorExecute"

START_TIMEOUT: Final = 30.0
DEFAULT_IDLE_TIMEOUT: Final = 300

# Unlimited in both directions: the host enforces max_payload_bytes itself.
CHANNEL_OPTIONS: Final = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
)


@dataclass(frozen=True)
class Address:
    """Where the host listens. ``target`` is what grpc's channels take; ``tls_ca``: the
    PEM file of the certificates that a TLS host's certificate must chain to (None: no
    TLS)."""

    target: str
    is_default: bool
    token: str | None = None
    tls_ca: str | None = None

    def open_channel(self, grpc: Any) -> Any:
        """A channel to this address: TLS when ``tls_ca`` is set (OSError when it cannot be read)."""
        if self.tls_ca is None:
            return grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        with open(self.tls_ca, "rb") as roots:
            credentials = grpc.ssl_channel_credentials(root_certificates=roots.read())
        return grpc.secure_channel(self.target, credentials, options=CHANNEL_OPTIONS)

    @property
    def socket_file(self) -> str | None:
        """The Unix socket's path, or None for a TCP address."""
        if self.target.startswith("unix:"):
            return self.target[len("unix:") :].removeprefix("//")
        return None

    @property
    def socket_path(self) -> Path | None:
        from pathlib import Path

        file = self.socket_file
        return None if file is None else Path(file)

    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        if self.token:
            return (("authorization", f"Bearer {self.token}"),)
        return None

    def __str__(self) -> str:
        return self.target


def import_grpc() -> Any:
    """Import grpc with fork support enabled (unless the user chose otherwise).

    Measured here: without ``GRPC_ENABLE_FORK_SUPPORT=1``, a child forked from a process
    that had a live channel cannot open a new one ("Socket operation on non-socket");
    with it, fork children (multiprocessing "fork", ``os.fork``) connect reliably. It only
    takes effect when set before grpc is first imported.
    """
    if "grpc" not in sys.modules:
        os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "1")
    fork_support = os.environ.get("GRPC_ENABLE_FORK_SUPPORT", "").lower() in ("1", "true", "yes")
    if fork_support:
        from . import _grpc_fork

        _grpc_fork.install()  # before grpc registers its own fork handlers
    from ._deferred import import_deferring

    # The synchronous client never uses asyncio, which grpc's core and grpc.aio import.
    grpc = import_deferring("grpc", ("asyncio", "grpc.aio"))

    if fork_support:
        _grpc_fork.adopt(grpc)
    return grpc


def _runtime_dir_name() -> str:
    """The per-user runtime directory's absolute path (pathlib is imported only when a
    caller needs a Path: ~4 ms of every script's start)."""
    env = os.environ.get(ENV_RUNTIME_DIR)
    if env:
        return os.path.abspath(env)
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.abspath(os.path.join(os.environ["XDG_RUNTIME_DIR"], "gilbridge"))
    return f"/tmp/gilbridge-{os.getuid()}"


def runtime_dir(create: bool = True) -> Path:
    """The per-user runtime directory (created 0700 when ``create``)."""
    from pathlib import Path

    path = Path(_runtime_dir_name())
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
        if st.st_uid != os.getuid():
            raise PermissionError(f"runtime directory {path} belongs to another user")
        if st.st_mode & 0o077:
            os.chmod(path, 0o700)
    return path


def _check_owned(directory: Path) -> None:
    """PermissionError when the default runtime directory exists but belongs to another
    user: a host there is not ours, and a client would send it its pickles (and unpickle
    its answers). Typically ``/tmp/gilbridge-<uid>`` made by someone else first."""
    try:
        owner = directory.stat().st_uid
    except FileNotFoundError:
        return
    if owner != os.getuid():
        raise PermissionError(
            f"the runtime directory {directory} belongs to uid {owner}, not to this user "
            f"(uid {os.getuid()}): not connecting to a host there"
        )


def configured_address() -> Address:
    """The address from ``GILBRIDGE_ADDRESS`` (``unix:/abs/path`` or ``host:port``, with
    ``GILBRIDGE_TOKEN`` and, for a TLS host, ``GILBRIDGE_TLS_CA``), else the default Unix
    socket ``<runtime_dir>/host.sock``."""
    env = os.environ.get(ENV_ADDRESS, "").strip()
    if env:
        if env.startswith("unix:"):
            return Address(env, is_default=False)
        target = env.removeprefix("tcp://").removeprefix("http://")
        return Address(target, is_default=False, token=os.environ.get(ENV_TOKEN) or None,
                       tls_ca=os.environ.get(ENV_TLS_CA) or None)
    return Address(f"unix:{os.path.join(_runtime_dir_name(), 'host.sock')}", is_default=True)


def probe(address: Address, timeout: float = 2.0) -> sessions_pb2.HostInfo | None:
    """GetHostInfo from the host at ``address``, or None when nothing answers."""
    sock = address.socket_path
    if sock is not None and address.is_default:
        _check_owned(sock.parent)
    if sock is not None and not _listening(sock):
        return None
    grpc = import_grpc()
    from ._proto.bridge.v1 import sessions_pb2, sessions_pb2_grpc

    channel = address.open_channel(grpc)
    try:
        stub = sessions_pb2_grpc.SessionsStub(channel)
        try:
            return stub.GetHostInfo(
                sessions_pb2.HostInfoRequest(), timeout=timeout, metadata=address.metadata()
            )
        except grpc.RpcError as err:
            if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return None
            from ._errors import translate

            raise translate(err, address.target) from None
    finally:
        channel.close()


def _listening(sock: Path) -> bool:
    """Whether anything listens on the Unix socket ``sock``: False at once for a missing
    file or a refused connect (a dead host's socket file), where grpc would wait out the
    probe's whole timeout (measured: a client whose host was SIGKILLed spent ~2.7 s in two
    such probes before starting a new host)."""
    import socket

    probe_socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe_socket.settimeout(1.0)
        probe_socket.connect(str(sock))
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    except OSError:
        return True  # busy (a full backlog) or slow: grpc's probe decides
    finally:
        probe_socket.close()
    return True


def find_host_executable() -> Path:
    """``$GILBRIDGE_HOST_PATH``, else the host inside an installed wheel
    (``gilbridge/_bin/host/Bridge.Host``), else a checkout's ``artifacts/host/Bridge.Host``."""
    env = os.environ.get(ENV_HOST_PATH)
    from pathlib import Path

    package = Path(__file__).resolve().parent
    bundled = package / "_bin" / "host" / "Bridge.Host"
    if env:
        path = Path(env)
    elif bundled.is_file():
        path = bundled
    else:
        path = package.parents[1] / "artifacts" / "host" / "Bridge.Host"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"cannot start the Bridge host: no executable at {path} "
            f"(set {ENV_HOST_PATH} or {ENV_ADDRESS})"
        )
    return path


def read_pid_file(rdir: Path) -> int | None:
    try:
        return int((rdir / "host.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            stat = stat_file.read()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


# What .NET's launcher prints when it finds no runtime, or not the version the host needs.
_NO_RUNTIME_MARKERS: Final = (
    "You must install .NET", "You must install or update .NET", "libhostfxr.so",
    "Framework: 'Microsoft.AspNetCore.App'", "Framework: 'Microsoft.NETCore.App'",
)


def _missing_runtime_hint(log_tail: str) -> str:
    """A sentence naming the missing .NET runtime when the host's log says it found none."""
    if not any(marker in log_tail for marker in _NO_RUNTIME_MARKERS):
        return ""
    return (": the .NET 10 runtime with ASP.NET Core (Microsoft.NETCore.App and "
            "Microsoft.AspNetCore.App 10.x) is not installed where the host looks for it "
            "(DOTNET_ROOT, else the system's .NET location); install the ASP.NET Core "
            "Runtime 10 (Debian: aspnetcore-runtime-10.0 from Microsoft's package feed) "
            "or point DOTNET_ROOT at one")


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _idle_timeout() -> int:
    raw = os.environ.get(ENV_IDLE_TIMEOUT)
    if not raw:
        return DEFAULT_IDLE_TIMEOUT
    try:
        return int(float(raw))
    except ValueError:
        raise ValueError(f"{ENV_IDLE_TIMEOUT} must be a number of seconds, got {raw!r}") from None


def _prewarm_arguments() -> list[str]:
    """Host options that start warm workers for this interpreter with the host, so the
    first pool does not wait for a cold one."""
    return [f"--Bridge:PrewarmPythonExecutable={sys.executable}"]


def ensure_host(address: Address | None = None) -> sessions_pb2.HostInfo:
    """Return the running default host's info, starting the host when none answers.

    Blocks up to 30 s while a new host starts; raises RuntimeError (with the tail of
    ``host.log``) when it does not become ready, or ConnectionError for a configured
    (non-default) address that does not answer.
    """
    address = address or configured_address()
    info = probe(address)
    if info is not None:
        return info
    if not address.is_default:
        from ._errors import HostUnavailableError

        raise HostUnavailableError(f"Bridge host unavailable at {address.target}")
    rdir = runtime_dir()
    with open(rdir / "start.lock", "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            info = probe(address)
            if info is not None:
                return info
            return _start_locked(rdir, address)
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _start_locked(rdir: Path, address: Address) -> sessions_pb2.HostInfo:
    sock = rdir / "host.sock"
    log = rdir / "host.log"
    pid = read_pid_file(rdir)
    proc: subprocess.Popen[bytes] | None = None
    if pid is not None and pid_alive(pid) and _is_bridge_host(pid):
        # A host is still starting (or stuck): wait for it rather than start a second.
        pass
    else:
        proc = _launch(rdir, log, [
            f"--Bridge:SocketPath={sock}",
            f"--Bridge:PidFile={rdir / 'host.pid'}",
            f"--Bridge:IdleTimeoutSeconds={_idle_timeout()}",
            *_prewarm_arguments(),
        ])
        pid = proc.pid
    info = _await_start(address, log, proc, pid)
    # None: the other starter's host died: start our own.
    return info if info is not None else _start_locked(rdir, address)


def _await_start(address: Address, log: Path, proc: subprocess.Popen[bytes] | None,
                 pid: int | None) -> sessions_pb2.HostInfo | None:
    """Poll until the starting host (``proc``, or another starter's ``pid``) answers at
    ``address`` and return its info; None when that other starter's host died. Blocks up
    to START_TIMEOUT s; RuntimeError (with ``log``'s tail) when ``proc`` exits or nothing
    answers in time."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = probe(address, timeout=1.0)
        if info is not None:
            return info
        if proc is not None and proc.poll() is not None:
            tail = _log_tail(log)
            raise RuntimeError(
                f"the Bridge host exited with status {proc.returncode} while starting"
                f"{_missing_runtime_hint(tail)}; {log} ends with:\n{tail}"
            )
        if proc is None and pid is not None and not pid_alive(pid):
            return None
        # A probe before the socket exists costs ~0.1 ms: poll finely, the first pool waits.
        time.sleep(0.01)
    raise RuntimeError(
        f"the Bridge host (pid {pid}) did not answer at {address.target} within "
        f"{START_TIMEOUT:.0f} s; {log} ends with:\n{_log_tail(log)}"
    )


def _launch(rdir: Path, log: Path, options: list[str]) -> subprocess.Popen[bytes]:
    """Start the host executable in the background (its own session, output to ``log``)."""
    import subprocess  # only when a host starts: ~3 ms of every script's start otherwise

    exe = find_host_executable()
    environment = dict(os.environ)
    # .NET's W^X double-maps every page of JIT-compiled code: ~0.1 s of the host's start
    # (a cold start's first result 1.55 -> 1.45 s here). The host serves only its owner,
    # whose workers run the owner's own code; a value the user set is kept.
    environment.setdefault(ENV_DOTNET_WXORX, "0")
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(exe), *options],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=str(rdir),
        )


def start_tcp_host(tcp: str, cluster: str | None = None, silo_port: int | None = None,
                   tls_certificate: str | None = None,
                   tls_key: str | None = None) -> tuple[Address, sessions_pb2.HostInfo]:
    """Start a host in the background that serves TCP at ``tcp`` (``ADDRESS:PORT``; the
    token comes from ``GILBRIDGE_TOKEN``, at least 16 characters), with TLS when given a
    PEM ``tls_certificate`` and its ``tls_key`` (this process then checks the host
    against ``GILBRIDGE_TLS_CA``, else against the certificate itself), and, given ``cluster``
    (``redis://HOST:PORT``), joins that cluster with its silo at ADDRESS:``silo_port``
    (a free port when None). It never exits for being idle. Its Unix socket, pid file
    and log are ``host-<PORT>.sock/.pid/.log`` in the runtime directory.

    Blocks until it answers (at most START_TIMEOUT s); RuntimeError (with the log's tail)
    when it exits or does not answer, ValueError for a malformed argument.
    """
    host, _, port_text = tcp.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"--tcp must be ADDRESS:PORT, got {tcp!r}")
    token = os.environ.get(ENV_TOKEN, "")
    if len(token) < 16:
        raise ValueError(f"{ENV_TOKEN} must hold a token of at least 16 characters to serve TCP")
    if cluster is not None and not cluster.startswith("redis://"):
        raise ValueError(f"--cluster must be redis://HOST:PORT, got {cluster!r}")
    if (tls_certificate is None) != (tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    port = int(port_text)
    tls_ca = None
    if tls_certificate is not None:
        tls_certificate, tls_key = os.path.abspath(tls_certificate), os.path.abspath(str(tls_key))
        tls_ca = os.environ.get(ENV_TLS_CA) or tls_certificate
    address = Address(f"{host}:{port}", is_default=False, token=token, tls_ca=tls_ca)
    if probe(address) is not None:
        raise RuntimeError(f"a Bridge host already answers at {address.target}")
    rdir = runtime_dir()
    log = rdir / f"host-{port}.log"
    options = [
        f"--Bridge:SocketPath={rdir / f'host-{port}.sock'}",
        f"--Bridge:PidFile={rdir / f'host-{port}.pid'}",
        f"--Bridge:TcpAddress={host.strip('[]')}",
        f"--Bridge:TcpPort={port}",
        "--Bridge:IdleTimeoutSeconds=0",
        *_prewarm_arguments(),
    ]
    if tls_certificate is not None:
        options += [f"--Bridge:TlsCertificate={tls_certificate}", f"--Bridge:TlsKey={tls_key}"]
    if cluster is not None:
        options.append(f"--Bridge:Cluster={cluster}")
    if silo_port is not None:
        options.append(f"--Bridge:SiloPort={silo_port}")
    proc = _launch(rdir, log, options)
    info = _await_start(address, log, proc, proc.pid)
    assert info is not None  # only another starter's host can vanish
    return address, info


def _is_bridge_host(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline_file:
            cmdline = cmdline_file.read()
    except OSError:
        return False
    return b"Bridge.Host" in cmdline


def stop_host(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM ``pid`` and wait up to ``timeout`` s for it to exit, then SIGKILL it.

    Returns True when it stopped after SIGTERM, False when SIGKILL was needed.
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    for _ in range(100):
        if not pid_alive(pid):
            break
        time.sleep(0.05)
    else:
        print(f"warning: host pid {pid} survived SIGKILL", file=sys.stderr)
    return False

"""Command line: ``python -m gilbridge host start|stop|status``,
``python -m gilbridge compare [options]`` and ``python -m gilbridge [run] script.py [args]``.

``compare`` times the same workloads on the stdlib and on the Bridge side by side (see
``gilbridge.compare``).

The last form runs an unmodified multiprocessing script on the Bridge: its
``import multiprocessing`` is ``gilbridge.multiprocessing`` and
``concurrent.futures.ProcessPoolExecutor`` is gilbridge's (see ``gilbridge._runner``).

Exit codes: 0 success; 3 "not running" (status); 1 errors; a script's own exit status.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import _host

if TYPE_CHECKING:
    import argparse

EXIT_NOT_RUNNING = 3


def _cmd_host_start(args: argparse.Namespace) -> int:
    if args.tcp is not None:
        address, info = _host.start_tcp_host(args.tcp, args.cluster, args.silo_port, args.tls_cert, args.tls_key)
    elif any(option is not None for option in (args.cluster, args.silo_port, args.tls_cert, args.tls_key)):
        print("error: --cluster, --silo-port and --tls-cert/--tls-key need --tcp ADDRESS:PORT", file=sys.stderr)
        return 2
    else:
        address = _host.configured_address()
        info = _host.ensure_host(address)
    print(f"Bridge host running: pid {info.pid}, address {address.target}, version {info.version}")
    return 0


def _cmd_host_status(args: argparse.Namespace) -> int:
    import json

    address = _host.configured_address()
    info = _host.probe(address)
    if info is None:
        if args.json:
            print(json.dumps({"running": False, "address": address.target}))
        else:
            print(f"Bridge host not running (address {address.target})")
        return EXIT_NOT_RUNNING
    from . import _status

    data = _status.as_dict(address.target, info, _status.fetch(address, args.max_objects))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"address:   {address.target}")
    print(f"version:   {info.version}")
    print(f"pid:       {info.pid}")
    print(f"sessions:  {info.active_sessions}")
    print(f"uptime:    {info.uptime_seconds:.1f} s")
    print(f"cpu_count: {info.cpu_count}")
    print(f"max_payload_bytes: {info.max_payload_bytes}")
    if info.host_id:
        print(f"id:        {info.host_id}")
    if info.cluster_id:
        print(f"cluster:   {info.cluster_id} ({len(info.members)} members)")
        for member in info.members:
            mark = " (this host)" if member.host_id == info.host_id else ""
            workers = "" if member.status != "Active" else (
                "  workers ?" if member.workers < 0 else f"  workers {member.workers} ({member.workers_in_pools} in pools)")
            print(f"  member {member.host_id} silo {member.silo_address} {member.status}{workers}{mark}")
    for line in _status.render(data):
        print(line)
    return 0


def _cmd_host_stop(args: argparse.Namespace) -> int:
    address = _host.configured_address()
    pid: int | None = None
    if address.is_default:
        pid = _host.read_pid_file(_host.runtime_dir(create=False))
        if pid is not None and not _host.pid_alive(pid):
            pid = None
    if pid is None:
        info = _host.probe(address)
        pid = int(info.pid) if info is not None else None
        if pid is not None and not _is_local(address):
            print(f"error: the host at {address.target} is not on this machine "
                  f"(its pid {pid} is not ours to signal)", file=sys.stderr)
            return 1
    if pid is None:
        print(f"Bridge host not running (address {address.target})")
        return 0
    graceful = _host.stop_host(pid, timeout=args.timeout)
    print(f"Bridge host pid {pid} stopped" + ("" if graceful else " (killed)"))
    return 0


def _is_local(address: _host.Address) -> bool:
    if address.socket_path is not None:
        return True
    host = address.target.rsplit(":", 1)[0].strip("[]").lower()
    return host in ("localhost", "127.0.0.1", "::1", "0.0.0.0", "")


def build_parser() -> argparse.ArgumentParser:
    # Imported here: a script run (python -m gilbridge script.py) never parses options.
    import argparse

    parser = argparse.ArgumentParser(
        prog=_program_name(),
        description="Bridge: multiprocessing objects served by a .NET host.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    host = commands.add_parser("host", help="start, stop or inspect the local host")
    host_commands = host.add_subparsers(dest="host_command", metavar="ACTION")
    host_commands.required = True
    start = host_commands.add_parser(
        "start", help="start the default host if it is not running, or a TCP (cluster) host",
        description="Without options: start the default host (a Unix socket in the runtime "
                    "directory) unless one answers. With --tcp: start a host in the background "
                    "that serves TCP (token from GILBRIDGE_TOKEN; TLS with --tls-cert/--tls-key) and, "
                    "with --cluster, joins the "
                    "cluster whose membership is in that Redis.")
    start.add_argument("--tcp", metavar="ADDRESS:PORT",
                       help="serve TCP here; ADDRESS is also the address other hosts reach")
    start.add_argument("--cluster", metavar="redis://HOST:PORT",
                       help="join the cluster whose membership table is in this Redis")
    start.add_argument("--silo-port", type=int, metavar="N",
                       help="the port other hosts reach this one's silo on (default: a free one)")
    start.add_argument("--tls-cert", metavar="FILE",
                       help="with --tcp: serve TLS with this PEM certificate (clients trust it via GILBRIDGE_TLS_CA)")
    start.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    start.set_defaults(func=_cmd_host_start)
    stop = host_commands.add_parser("stop", help="stop the host (SIGTERM, then SIGKILL)")
    stop.add_argument("--timeout", type=float, default=15.0,
                      help="seconds to wait after SIGTERM before SIGKILL (default 15)")
    stop.set_defaults(func=_cmd_host_stop)
    status = host_commands.add_parser(
        "status", help="print the host, its sessions, objects (with their state) and pools",
        description="Print the host's version, pid and uptime, then tables of its sessions, "
                    "the objects it holds (queue sizes, lock holders, waiters, ...) and its "
                    "pools with their workers. Exit status 3 when no host runs.")
    status.add_argument("--json", action="store_true",
                        help="print all of it as one JSON document, for scripts")
    status.add_argument("--max-objects", type=int, default=0, metavar="N",
                        help="list at most N objects, named ones first (default 200; the rest are counted)")
    status.set_defaults(func=_cmd_host_status)
    run = commands.add_parser(
        "run", help="run a multiprocessing script on the Bridge (also: python -m gilbridge script.py)")
    run.add_argument("script", help="the script to run as __main__")
    run.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (sys.argv[1:])")
    run.set_defaults(func=_cmd_run)
    from . import compare as compare_command

    compare = commands.add_parser(
        "compare", help="time workloads on the stdlib and on the Bridge, side by side",
        description=compare_command.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    compare_command.add_arguments(compare)
    compare.set_defaults(func=_cmd_compare)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from ._runner import run_script

    return run_script(args.script, args.args)


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import run

    return run(args)


def _program_name() -> str:
    """How the user invoked us: the ``gilbridge`` console command or ``python -m gilbridge``."""
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m gilbridge" if invoked in ("", "__main__.py", "-m") else invoked


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A script runs outside the error handling below (its exceptions are its own) and
    # its options never reach argparse.
    script_args = argv[1:] if argv[:1] == ["run"] and argv[1:2] not in (["-h"], ["--help"]) else argv
    if script_args and (script_args is not argv or script_args[0].endswith(".py")):
        from ._runner import run_script

        return run_script(script_args[0], script_args[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (RuntimeError, ConnectionError, PermissionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

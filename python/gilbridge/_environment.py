"""What a worker needs of the caller's process to look like its spawned child: the
main script (run there as ``__mp_main__``, and the names bound at its top level, whose
objects then travel by reference) and the environment (``sys.path``, working directory,
variables, ``sys.argv``) sent with a pool's creation."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._connection import Connection

if TYPE_CHECKING:  # pragma: no cover
    from ._proto.bridge.v1 import execution_pb2

__all__ = ["MainInfo", "main_info", "python_environment"]


def _pb() -> Any:
    from ._proto.bridge.v1 import execution_pb2

    return execution_pb2


@dataclass(frozen=True)
class MainInfo:
    """The parent's main script as workers see it."""

    path: str
    # Names bound at the script's top level outside its main guard: objects reachable
    # through them are pickled by reference (the worker re-runs the script).
    names: frozenset[str]


_main_cache: dict[tuple[str, float], MainInfo | None] = {}


def _is_main_guard(node: Any) -> bool:
    import ast

    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    has_name = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    has_main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return has_name and has_main


def _top_level_names(body: list[Any], names: set[str]) -> bool:
    """Collect names bound at module level outside a main guard; True if a guard exists."""
    import ast

    guarded = False
    for node in body:
        if _is_main_guard(node):
            guarded = True
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None) or []
                for item in inner:
                    if isinstance(item, ast.ExceptHandler):
                        guarded |= _top_level_names(item.body, names)
                    else:
                        guarded |= _top_level_names([item], names)
    return guarded


def main_info() -> MainInfo | None:
    """The main script when workers may re-run it (it has a ``__name__ == "__main__"``
    guard, as the stdlib's spawn requires), else None."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return None
    path = os.path.abspath(path)
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    key = (path, mtime)
    if key in _main_cache:
        return _main_cache[key]
    info: MainInfo | None = None
    import ast

    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), filename=path)
        names: set[str] = set()
        if _top_level_names(tree.body, names):
            info = MainInfo(path, frozenset(names))
    except (OSError, SyntaxError, ValueError):
        info = None
    _main_cache[key] = info
    return info


def python_environment(conn: Connection, main: MainInfo | None) -> execution_pb2.PythonEnvironment:
    """This interpreter, for workers to run in: executable, sys.path ('' as the
    working directory), working directory, environment (``os.environ`` plus the address,
    token and TLS roots of this connection's host) and the main script (see :func:`main_info`)."""
    pb = _pb()
    cwd = os.getcwd()
    environment = dict(os.environ)
    environment["GILBRIDGE_ADDRESS"] = conn.address.target
    if conn.address.token:
        environment["GILBRIDGE_TOKEN"] = conn.address.token
    if conn.address.tls_ca:
        environment["GILBRIDGE_TLS_CA"] = conn.address.tls_ca
    return pb.PythonEnvironment(
        executable=sys.executable,
        sys_path=[p if p else cwd for p in sys.path],
        working_directory=cwd,
        environment=environment,
        main_path=main.path if main else "",
        argv=[str(arg) for arg in sys.argv],
    )

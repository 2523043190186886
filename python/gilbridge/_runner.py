"""``python -m gilbridge script.py [args]``: run an unmodified multiprocessing script on
the Bridge.

:func:`install` makes the script's ``import multiprocessing`` give
:mod:`gilbridge.multiprocessing` (and ``multiprocessing.pool`` and
``multiprocessing.sharedctypes`` Bridge's modules), and
``concurrent.futures.ProcessPoolExecutor`` give :class:`gilbridge.futures.ProcessPoolExecutor`.
The stdlib's ``multiprocessing`` and all its submodules are imported first, so gilbridge's
internals and the stdlib's own modules (``Manager``, ``shared_memory``, ``dummy`` ...) keep
working with the real package. :func:`run_script` then runs the script as ``__main__``
with ``runpy.run_path`` and ``sys.argv = [script, *args]``; its exit status is the
process's.

Workers do not get the swap. A script with an ``if __name__ == "__main__":`` guard is
re-run there as ``__mp_main__`` (as the stdlib's spawn would), so its top-level
``multiprocessing`` name is the stdlib's inside children; a script without a guard (fine
with Linux's fork) is never re-run, and its functions travel by value, keeping the
bridge module they refer to.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
from collections.abc import Sequence
from typing import Final

__all__ = ["install", "run_script"]

# Imported before the swap: after it, "import multiprocessing.X" would look for X in
# gilbridge's package.
STDLIB_SUBMODULES: Final = (
    "connection", "context", "dummy", "dummy.connection", "forkserver", "heap", "managers",
    "pool", "popen_fork", "popen_forkserver", "popen_spawn_posix", "process", "queues",
    "reduction", "resource_sharer", "resource_tracker", "shared_memory", "sharedctypes",
    "spawn", "synchronize", "util",
)


def install() -> None:
    """Route ``multiprocessing`` and ``concurrent.futures.ProcessPoolExecutor`` to the
    Bridge for code imported from now on in this process. Idempotent."""
    import multiprocessing as stdlib

    if sys.modules.get("multiprocessing") is not stdlib and \
            getattr(sys.modules.get("multiprocessing"), "__name__", "") == "gilbridge.multiprocessing":
        return
    for name in STDLIB_SUBMODULES:
        try:
            importlib.import_module(f"multiprocessing.{name}")
        except ImportError:
            pass
    import concurrent.futures
    import concurrent.futures.process

    import gilbridge.futures
    import gilbridge.multiprocessing as bridge
    import gilbridge.multiprocessing.pool
    import gilbridge.multiprocessing.process  # noqa: F401
    import gilbridge.multiprocessing.sharedctypes
    from gilbridge import _environment, _execution, _pickling, _poolcore, _remote  # noqa: F401 - before the swap

    # "multiprocessing.util" and friends stay reachable as attributes (import_from looks
    # them up on the module object, whose __name__ is gilbridge's).
    for name in STDLIB_SUBMODULES:
        top = name.split(".")[0]
        if not hasattr(bridge, top) and f"multiprocessing.{top}" in sys.modules:
            setattr(bridge, top, sys.modules[f"multiprocessing.{top}"])
    sys.modules["multiprocessing"] = bridge
    sys.modules["multiprocessing.pool"] = gilbridge.multiprocessing.pool
    sys.modules["multiprocessing.sharedctypes"] = gilbridge.multiprocessing.sharedctypes
    concurrent.futures.ProcessPoolExecutor = gilbridge.futures.ProcessPoolExecutor  # type: ignore[misc]
    concurrent.futures.process.ProcessPoolExecutor = gilbridge.futures.ProcessPoolExecutor  # type: ignore[misc]


def run_script(path: str, args: Sequence[str]) -> int:
    """Run the script at ``path`` as ``__main__`` on the Bridge (see the module
    docstring). Blocks until the script returns; SystemExit and KeyboardInterrupt
    propagate. Returns 0 when the script simply ends; 2 when the file does not exist."""
    if not os.path.isfile(path):
        print(f"python -m gilbridge: can't open file {path!r}: no such file", file=sys.stderr)
        return 2
    install()
    sys.argv = [path, *args]
    script_dir = os.path.dirname(os.path.abspath(path))
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path[0] = script_dir
    else:
        sys.path.insert(0, script_dir)
    runpy.run_path(path, run_name="__main__")
    return 0

"""``python -m gilbridge script.py [args]``: run an unmodified multiprocessing script on
the Bridge.

:func:`install` makes the script's ``import multiprocessing`` give
:mod:`gilbridge.multiprocessing` (and ``multiprocessing.pool`` and
``multiprocessing.sharedctypes`` Bridge's modules), and
``concurrent.futures.ProcessPoolExecutor`` give :class:`gilbridge.futures.ProcessPoolExecutor`.
The stdlib's other ``multiprocessing`` submodules (``connection``, ``managers``,
``shared_memory``, ``dummy`` ...) stay the stdlib's, found by an import hook when first
imported, so gilbridge's internals and the stdlib's own modules keep working with the real
package, and a script pays only for what it imports (as with the stdlib); gilbridge's
executor is imported when ``concurrent.futures.process`` is. :func:`run_script` then runs
the script as ``__main__`` with ``runpy.run_path`` and ``sys.argv = [script, *args]``;
its exit status is the process's.

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
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from importlib.abc import Loader

__all__ = ["install", "run_script"]

# The submodules gilbridge replaces under their stdlib names.
SWAPPED_SUBMODULES: Final = ("pool", "sharedctypes")


class _StdlibSubmodules:
    """A meta-path finder for ``multiprocessing.X`` once ``multiprocessing`` is
    gilbridge's package: X is found in the stdlib's package directory (the path finder
    would look in gilbridge's). Deeper names (``multiprocessing.dummy.connection``) follow
    their parent's ``__path__``, already the stdlib's."""

    def __init__(self, directory: str) -> None:
        self._path = [directory]

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> ModuleSpec | None:
        parent, _, child = fullname.rpartition(".")
        if parent != "multiprocessing" or child in SWAPPED_SUBMODULES:
            return None
        return PathFinder.find_spec(fullname, self._path)

    def attribute(self, name: str) -> ModuleType:
        """``multiprocessing.<name>`` as a module attribute (``from multiprocessing import
        shared_memory``, and the stdlib's own ``from . import util``): the stdlib's
        submodule, imported now. The import system would otherwise look for it under
        the package's ``__name__``, gilbridge's."""
        if name.startswith("__") or PathFinder.find_spec(f"multiprocessing.{name}", self._path) is None:
            raise AttributeError(f"module 'multiprocessing' has no attribute {name!r}")
        return importlib.import_module(f"multiprocessing.{name}")


class _ThenPatch:
    """The stdlib's loader of one module, then ``patch(module)`` once it has run."""

    def __init__(self, loader: Loader, patch: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._patch = patch

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name: str) -> Any:  # get_source, is_package ... for tracebacks and pkgutil
        return getattr(self._loader, name)


class _ExecutorSwap:
    """A meta-path finder that lets ``concurrent.futures.process`` load as usual, then
    points its ``ProcessPoolExecutor`` at gilbridge's (``concurrent.futures`` takes it
    from there on first use)."""

    MODULE: Final = "concurrent.futures.process"

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != self.MODULE:
            return None
        spec = PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenPatch(spec.loader, _use_bridge_executor)  # type: ignore[assignment]
        return spec


def _use_bridge_executor(process_module: ModuleType) -> None:
    """``process_module.ProcessPoolExecutor`` becomes gilbridge's, imported on first use
    (gilbridge's own modules import ``concurrent.futures.process`` for its exceptions)."""

    def bridge_executor(name: str) -> Any:
        if name != "ProcessPoolExecutor":
            raise AttributeError(f"module {process_module.__name__!r} has no attribute {name!r}")
        from gilbridge.futures import ProcessPoolExecutor

        process_module.ProcessPoolExecutor = ProcessPoolExecutor  # type: ignore[attr-defined]
        return ProcessPoolExecutor

    vars(process_module).pop("ProcessPoolExecutor", None)
    process_module.__getattr__ = bridge_executor  # type: ignore[method-assign]
    futures = sys.modules.get("concurrent.futures")
    if futures is not None:
        vars(futures).pop("ProcessPoolExecutor", None)  # its __getattr__ asks the module again


def install() -> None:
    """Route ``multiprocessing`` and ``concurrent.futures.ProcessPoolExecutor`` to the
    Bridge for code imported from now on in this process. Idempotent."""
    import multiprocessing as stdlib

    if getattr(sys.modules.get("multiprocessing"), "__name__", "") == "gilbridge.multiprocessing":
        return
    import gilbridge.multiprocessing as bridge
    import gilbridge.multiprocessing.pool
    import gilbridge.multiprocessing.process  # noqa: F401
    import gilbridge.multiprocessing.sharedctypes

    # Stdlib submodules imported so far stay reachable as attributes (import_from looks
    # them up on the module object, whose __name__ is gilbridge's); the hook adds later ones.
    prefix = "multiprocessing."
    for name, module in list(sys.modules.items()):
        child = name[len(prefix):]
        if name.startswith(prefix) and "." not in child and not hasattr(bridge, child):
            setattr(bridge, child, module)
    submodules = _StdlibSubmodules(os.path.dirname(stdlib.__file__ or ""))
    sys.meta_path.insert(0, submodules)
    bridge.__getattr__ = submodules.attribute  # type: ignore[method-assign]
    sys.modules["multiprocessing"] = bridge
    for name in SWAPPED_SUBMODULES:
        sys.modules[f"multiprocessing.{name}"] = sys.modules[f"gilbridge.multiprocessing.{name}"]
    if _ExecutorSwap.MODULE in sys.modules:
        _use_bridge_executor(sys.modules[_ExecutorSwap.MODULE])
    else:
        sys.meta_path.insert(0, _ExecutorSwap())


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

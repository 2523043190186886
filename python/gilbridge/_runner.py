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
    would look in gilbridge's), except the SWAPPED_SUBMODULES, which are gilbridge's
    modules under the stdlib's name, imported when first asked for. Deeper names
    (``multiprocessing.dummy.connection``) follow their parent's ``__path__``, already
    the stdlib's.

    gilbridge's swapped modules build on the stdlib's module of the same name, which
    they import as ``multiprocessing.X``: while one of them runs its code (however it
    was imported), ``multiprocessing`` is the stdlib's package again and this finder
    stands aside. A thread importing ``multiprocessing`` meanwhile (~5 ms, once per
    module) would get the stdlib's."""

    def __init__(self, stdlib: ModuleType, bridge: ModuleType) -> None:
        self._stdlib = stdlib
        self._bridge = bridge
        self._path = [os.path.dirname(stdlib.__file__ or "")]
        self._stdlib_mode = 0  # nesting depth (a swapped module importing the other one)

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if self._stdlib_mode:
            return None
        parent, _, child = fullname.rpartition(".")
        if child in SWAPPED_SUBMODULES:
            if parent == "multiprocessing":
                return ModuleSpec(fullname, _BridgeSubmodule())  # type: ignore[arg-type]
            if parent == "gilbridge.multiprocessing":
                spec = PathFinder.find_spec(fullname, path)
                if spec is not None and spec.loader is not None:
                    spec.loader = _WrappedLoader(spec.loader, self._run_in_stdlib_mode)  # type: ignore[assignment]
                return spec
        if parent != "multiprocessing":
            return None
        return PathFinder.find_spec(fullname, self._path)

    def attribute(self, name: str) -> ModuleType:
        """``multiprocessing.<name>`` as a module attribute (``from multiprocessing import
        shared_memory``, and the stdlib's own ``from . import util``): the stdlib's
        submodule (gilbridge's for a swapped one), imported now. The import system would
        otherwise look for it under the package's ``__name__``, gilbridge's."""
        if name.startswith("__") or PathFinder.find_spec(f"multiprocessing.{name}", self._path) is None:
            raise AttributeError(f"module 'multiprocessing' has no attribute {name!r}")
        return importlib.import_module(f"multiprocessing.{name}")

    def _run_in_stdlib_mode(self, exec_module: Callable[[ModuleType], None], module: ModuleType) -> None:
        self._stdlib_mode += 1
        sys.modules["multiprocessing"] = self._stdlib
        try:
            exec_module(module)
        finally:
            self._stdlib_mode -= 1
            if not self._stdlib_mode:
                sys.modules["multiprocessing"] = self._bridge
                _swap_loaded_submodules()


def _swap_loaded_submodules() -> None:
    """``multiprocessing.X`` for each swapped X: gilbridge's module once it is imported,
    else nothing (the finder swaps it when it is), never the stdlib's."""
    for name in SWAPPED_SUBMODULES:
        bridge_module = sys.modules.get(f"gilbridge.multiprocessing.{name}")
        if bridge_module is not None:
            sys.modules[f"multiprocessing.{name}"] = bridge_module
        else:
            sys.modules.pop(f"multiprocessing.{name}", None)


class _BridgeSubmodule:
    """Loads ``multiprocessing.X`` as gilbridge's ``gilbridge.multiprocessing.X``, the
    same module object."""

    @staticmethod
    def create_module(spec: ModuleSpec) -> ModuleType:
        return importlib.import_module(f"gilbridge.{spec.name}")

    @staticmethod
    def exec_module(module: ModuleType) -> None:
        pass


class _WrappedLoader:
    """A module's own loader, its ``exec_module`` run through ``run(exec_module, module)``."""

    def __init__(self, loader: Loader, run: Callable[[Callable[[ModuleType], None], ModuleType], None]) -> None:
        self._loader = loader
        self._run = run

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._run(self._loader.exec_module, module)

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
            spec.loader = _WrappedLoader(spec.loader, _then_use_bridge_executor)  # type: ignore[assignment]
        return spec


def _then_use_bridge_executor(exec_module: Callable[[ModuleType], None], module: ModuleType) -> None:
    exec_module(module)
    _use_bridge_executor(module)


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
    import gilbridge.multiprocessing.process  # noqa: F401

    # Stdlib submodules imported so far stay reachable as attributes (import_from looks
    # them up on the module object, whose __name__ is gilbridge's); the hook adds later ones.
    prefix = "multiprocessing."
    for name, module in list(sys.modules.items()):
        child = name[len(prefix):]
        if (name.startswith(prefix) and "." not in child and child not in SWAPPED_SUBMODULES
                and not hasattr(bridge, child)):
            setattr(bridge, child, module)
    submodules = _StdlibSubmodules(stdlib, bridge)
    sys.meta_path.insert(0, submodules)
    bridge.__getattr__ = submodules.attribute  # type: ignore[method-assign]
    sys.modules["multiprocessing"] = bridge
    _swap_loaded_submodules()
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

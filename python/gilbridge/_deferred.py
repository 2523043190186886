"""Importing a module whose imports include packages it does not use when it loads.

:func:`import_deferring` imports a module while the named modules it imports are created
empty and run only when something first reads one of their attributes. grpc is the case:
its Cython core and its ``grpc.aio`` package import ``asyncio`` (with ``ssl``,
``subprocess`` and the event loop machinery), ~30 ms of a script's start on this machine,
though Bridge's synchronous client never touches them.

A deferred module is the module itself, not a proxy: its first attribute read runs its
code in that same module object (under a lock, so two threads cannot both run it, and
the second waits for the first, at most a second: see _WAIT_FOR_RUN) and from then on
it is an ordinary module.
``importlib.util.LazyLoader`` does the same, but in Python 3.11 a thread reading an
attribute while another thread's read is running the module gets ``AttributeError``.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Sequence
from importlib.machinery import ModuleSpec, PathFinder
from typing import Any

__all__ = ["import_deferring"]

# Module code runs under it; re-entrant because running a package imports its submodules,
# which read the package's attributes.
_RUNNING = threading.RLock()
# How long a thread waits for another thread's run of a deferred module. Bounded because
# that thread may be waiting for an import this one holds (this thread's first touch is
# importing one of the package's submodules, whose module lock the run needs): past the
# bound this thread reads what the module has so far, and the import system goes on.
_WAIT_FOR_RUN = 1.0
# Deferred modules the import system has finished creating (it reads missing attributes
# while it sets a module up; those must not run it) and that have not run yet.
_armed: set[str] = set()


class _DeferredModule(types.ModuleType):
    """A module created but not yet run; the first missing attribute read runs it."""

    def __getattr__(self, name: str) -> Any:
        # Reached only for names the namespace lacks: before the module ran, or while it
        # runs (its own code, in this thread, reading what it has not defined yet).
        if _RUNNING.acquire(timeout=_WAIT_FOR_RUN):
            try:
                spec = self.__dict__.get("__spec__")
                if type(self) is _DeferredModule and spec is not None and spec.name in _armed:
                    _armed.discard(spec.name)
                    real = spec.loader_state
                    self.__loader__ = spec.loader = real
                    spec.loader_state = None
                    real.exec_module(self)
                    self.__class__ = types.ModuleType
            finally:
                _RUNNING.release()
        return types.ModuleType.__getattribute__(self, name)


class _DeferringLoader:
    """Creates the module empty; its real loader (``spec.loader_state``) runs it later."""

    @staticmethod
    def create_module(spec: ModuleSpec) -> types.ModuleType:
        return _DeferredModule(spec.name)

    @staticmethod
    def exec_module(module: types.ModuleType) -> None:
        with _RUNNING:
            _armed.add(module.__name__)


class _DeferringFinder:
    def __init__(self, names: frozenset[str]) -> None:
        self._names = names

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: types.ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in self._names:
            return None
        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader_state = spec.loader
        spec.loader = _DeferringLoader()  # type: ignore[assignment]
        return spec


def import_deferring(module: str, deferred: Sequence[str]) -> types.ModuleType:
    """Imports ``module`` (blocks for its import, as ``import`` does), with each of
    ``deferred`` that is not imported yet created empty and run on its first attribute
    read (see the module docstring). A deferred name the import does not reach stays
    unimported."""
    names = frozenset(name for name in deferred if name not in sys.modules)
    if not names:
        __import__(module)
        return sys.modules[module]
    finder = _DeferringFinder(names)
    sys.meta_path.insert(0, finder)
    try:
        __import__(module)
    finally:
        sys.meta_path.remove(finder)
    return sys.modules[module]

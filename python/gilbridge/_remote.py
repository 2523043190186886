"""Errors of work run on Bridge workers, rebuilt as Python exceptions in the parent.

A failed task comes back as a ``TaskError`` (protos/bridge/v1/execution.proto). It
becomes, in order of preference:

* ``BrokenProcessPool`` (:class:`gilbridge.BrokenProcessPool`, a subclass of
  ``concurrent.futures.process.BrokenProcessPool``) when the worker died while running
  the task (``worker_died``: ``os._exit``, a signal, a crash) or the pool was terminated
  before the task ran;
* the original exception, unpickled from ``TaskError.pickled``;
* for a C# kernel: the builtin exception when the worker reports one in Python's terms
  (``TypeError`` for arguments that do not fit, ``AttributeError`` for an unknown
  kernel), else :class:`DotnetError` carrying ``.dotnet_type`` (a dotted .NET name);
* otherwise a ``RuntimeError`` subclass named after ``TaskError.type``.

The remote traceback (Python) or stack trace (.NET) is attached as ``__cause__``, as an
instance of the stdlib's own ``multiprocessing.pool.RemoteTraceback`` (for ``Pool``) or
``concurrent.futures.process._RemoteTraceback`` (for the executor), formatted exactly as
the stdlib does, so it prints under "The above exception was the direct cause of ...".
"""

from __future__ import annotations

import builtins
import pickle
import sys
import threading
from concurrent.futures.process import BrokenProcessPool as _StdlibBrokenProcessPool
from typing import Any

__all__ = ["BrokenProcessPool", "DotnetError", "rebuild_exception", "alias_main_module"]


class BrokenProcessPool(_StdlibBrokenProcessPool):
    """A worker process died while running the task (or the pool was terminated before
    the task could finish). A ``concurrent.futures.process.BrokenProcessPool``, so code
    written for the stdlib catches it unchanged."""


class DotnetError(Exception):
    """A .NET exception thrown by a C# kernel.

    ``dotnet_type`` is its full type name (``"System.ArgumentOutOfRangeException"``),
    ``remote_traceback`` the .NET stack trace (also attached as ``__cause__``).
    """

    def __init__(self, message: str, dotnet_type: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.dotnet_type = dotnet_type
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0] if self.args else "", self.dotnet_type, self.remote_traceback))

    def __str__(self) -> str:
        message = self.args[0] if self.args else ""
        return f"{self.dotnet_type}: {message}" if self.dotnet_type else str(message)


_fallback_lock = threading.Lock()
_fallback_classes: dict[str, type[RuntimeError]] = {}


def _fallback_class(qualified: str) -> type[RuntimeError]:
    """A RuntimeError subclass named after a remote exception type (one per name)."""
    with _fallback_lock:
        cls = _fallback_classes.get(qualified)
        if cls is None:
            module, _, name = qualified.rpartition(".")
            name = name or "RemoteError"
            cls = type(name, (RuntimeError,), {
                "__doc__": f"Stands for the remote exception {qualified}, which could not "
                           f"be unpickled in this process.",
                "__module__": module or "gilbridge.remote",
            })
            _fallback_classes[qualified] = cls
        return cls


def alias_main_module() -> None:
    """Point ``sys.modules['__mp_main__']`` at the current ``__main__``.

    Workers run the parent's main script as ``__mp_main__`` (as the stdlib's spawn
    does), so objects of classes defined there come back pickled as
    ``__mp_main__.Name``. ``multiprocessing`` makes that alias when it is first imported;
    this renews it when ``__main__`` changed since (``runpy``, ``python -m gilbridge``).
    """
    main = sys.modules.get("__main__")
    if main is not None and sys.modules.get("__mp_main__") is not main:
        sys.modules["__mp_main__"] = main


def _format_remote(tb: str) -> str:
    return '\n"""\n%s"""' % tb


def _traceback_class(for_executor: bool) -> type[Exception]:
    if for_executor:
        from concurrent.futures.process import _RemoteTraceback

        return _RemoteTraceback
    from multiprocessing.pool import RemoteTraceback

    return RemoteTraceback


def rebuild_exception(error: Any, *, kernel: bool, terminated: bool = False,
                      for_executor: bool = False) -> BaseException:
    """The Python exception for a ``TaskError`` message (see the module docstring).

    ``kernel``: the task's function was a C# kernel. ``terminated``: the pool was
    terminated by its owner (the message says so instead of "died").
    """
    tb_text = str(error.traceback)
    if error.worker_died or error.type in ("BrokenProcessPool", "TerminatedError"):
        if terminated:
            exc: BaseException = BrokenProcessPool(
                f"the pool was terminated before this task finished ({error.message})")
        else:
            exc = BrokenProcessPool(str(error.message) or "a worker process died while running this task")
        return exc
    exc = None
    if error.pickled:
        try:
            alias_main_module()
            loaded = pickle.loads(error.pickled)
            if isinstance(loaded, BaseException):
                exc = loaded
        except Exception:  # noqa: BLE001 - not loadable here: fall back on the name
            exc = None
    if exc is None and error.type == "CSharpCompileError":
        from ._kernels import CSharpCompileError

        exc = CSharpCompileError(str(error.message), tb_text)
        tb_text = ""  # the diagnostics are the exception's own; no .NET stack to attach
    if exc is None:
        name = str(error.type)
        message = str(error.message)
        builtin = getattr(builtins, name, None) if "." not in name else None
        if isinstance(builtin, type) and issubclass(builtin, Exception):
            try:
                exc = builtin(message)
            except Exception:  # noqa: BLE001 - an exception with odd arguments
                exc = None
        if exc is None:
            exc = DotnetError(message, name, tb_text) if kernel else _fallback_class(name)(message)
    if tb_text:
        exc.__cause__ = _traceback_class(for_executor)(_format_remote(tb_text))
    return exc

"""References to compiled C# kernels, usable wherever a Python callable is.

``gilbridge.dotnet("Bridge.Kernels.Primes.Count")`` names a built-in kernel;
``gilbridge.dotnet("/abs/path/My.dll:My.Namespace.Type.Method")`` a public static method
of a user assembly. The reference is a small picklable object: passed to
``Pool.map``/``apply_async``/``starmap``…, ``ProcessPoolExecutor.submit``/``map`` or
``Process(target=...)``, the work runs in the worker's .NET runtime, with no GIL, on
MessagePack-typed arguments (ints, floats, strings, bytes, lists, maps). A .NET
exception arrives as :class:`gilbridge.DotnetError` with the .NET stack trace as its
``__cause__``.

Calling a reference directly (``kernel(0, 1000)``) runs it through a one-off pool of one
.NET-only worker (no Python in it): it blocks for the worker's start (tens of ms when
the host has a warm one) plus the call. Inside a ``Process`` target that is what happens
too: the Process's worker asks the host for a kernel worker. Prefer a ``Pool`` for many
calls.
"""

from __future__ import annotations

import os
import re
from typing import Any, Final

__all__ = ["CSharpCompileError", "CSharpKernel", "DotnetKernel", "csharp", "dotnet"]

_DOTTED: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_`]*(\.[A-Za-z_][A-Za-z0-9_`+]*)+$")
_IDENTIFIER: Final = re.compile(r"^@?[A-Za-z_][A-Za-z0-9_]*$")
# The worker's first error, "line L, column C: error CSnnnn: message" (1-based).
_COMPILE_ERROR: Final = re.compile(r"^line (\d+), column (\d+): (.*)$", re.DOTALL)
# Callable.kernel of an inline C# kernel: this prefix, the method name (may be empty),
# a newline, the source (src/Bridge.Worker/Kernels/KernelCatalog.cs).
_CSHARP_PREFIX: Final = "csharp:"


class DotnetKernel:
    """A picklable reference to a C# kernel (see the module docstring).

    Equality and hashing follow the name. ``__name__``/``__qualname__`` are the method's
    name, so code that labels callables by name keeps working.
    """

    __slots__ = ("_name", "__name__", "__qualname__")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a kernel name is a str, not {type(name).__qualname__}")
        name = name.strip()
        path, sep, member = name.rpartition(":") if name.count(":") else ("", "", name)
        if sep:
            if not os.path.isabs(path) or not path.lower().endswith(".dll"):
                raise ValueError(
                    f"kernel {name!r}: an assembly kernel is '/abs/path/Assembly.dll:Namespace.Type.Method'"
                )
        if not _DOTTED.match(member) or member.count(".") < 1:
            raise ValueError(
                f"kernel {name!r}: expected 'Namespace.Type.Method' (e.g. 'Bridge.Kernels.Primes.Count') "
                f"or '/abs/path/Assembly.dll:Namespace.Type.Method'"
            )
        self._name = name
        method = member.rsplit(".", 1)[-1]
        self.__name__ = method
        self.__qualname__ = member

    @property
    def name(self) -> str:
        """The kernel's full name, as sent to the workers (``Callable.kernel``)."""
        return self._name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the kernel once, in a one-off single-worker pool; blocks until it returns
        (worker start, usually a warm one, plus the call). Raises what the kernel raised
        (:class:`gilbridge.DotnetError` for .NET exceptions)."""
        from .multiprocessing.pool import Pool

        pool = Pool(1, _kernel_only=True)
        try:
            return pool.apply(self, args, kwargs)
        finally:
            pool.terminate()

    def __reduce__(self) -> tuple[Any, ...]:
        return (DotnetKernel, (self._name,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DotnetKernel) and other._name == self._name

    def __hash__(self) -> int:
        return hash(("gilbridge.dotnet", self._name))

    def __repr__(self) -> str:
        return f"gilbridge.dotnet({self._name!r})"


def dotnet(name: str) -> DotnetKernel:
    """A reference to the C# kernel ``name``: ``"Bridge.Kernels.Primes.Count"`` or
    ``"/abs/path/My.dll:Namespace.Type.Method"``. Raises ValueError for a malformed name
    (an unknown kernel fails when it is run, as a TypeError-like task error)."""
    return DotnetKernel(name)


class CSharpCompileError(SyntaxError):
    """An inline C# kernel (:func:`csharp`) did not compile. ``lineno``/``offset`` are the
    first error's line and column in the given source (1-based), ``msg`` its text
    (``error CS1002: ; expected``), ``diagnostics`` every error, one per line."""

    def __init__(self, message: str, diagnostics: str = "") -> None:
        match = _COMPILE_ERROR.match(message)
        if match:
            super().__init__(match.group(3), ("<csharp>", int(match.group(1)), int(match.group(2)), None))
        else:
            super().__init__(message)
        self.report = message
        self.diagnostics = diagnostics or message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.report, self.diagnostics))


class CSharpKernel(DotnetKernel):
    """A C# kernel compiled from source in the workers (see :func:`csharp`)."""

    __slots__ = ("source", "method")

    def __init__(self, source: str, method: str | None = None) -> None:  # noqa: D107 - see csharp()
        if not isinstance(source, str):
            raise TypeError(f"C# source is a str, not {type(source).__qualname__}")
        if not source.strip():
            raise ValueError("the C# source is empty")
        if method is not None and (not isinstance(method, str) or not _IDENTIFIER.match(method)):
            raise ValueError(f"method must be a C# method name, not {method!r}")
        self.source = source
        self.method = method
        self._name = f"{_CSHARP_PREFIX}{method or ''}\n{source}"
        self.__name__ = method or "csharp"
        self.__qualname__ = self.__name__

    def __reduce__(self) -> tuple[Any, ...]:
        return (CSharpKernel, (self.source, self.method))

    def __repr__(self) -> str:
        lines = self.source.count("\n") + 1
        method = f", method={self.method!r}" if self.method else ""
        return f"gilbridge.csharp(<{lines} line{'s' if lines != 1 else ''} of C#>{method})"


def csharp(source: str, method: str | None = None) -> CSharpKernel:
    """A C# kernel from source, compiled with Roslyn in the workers that run it.

    ``source`` is C# text, or the path of a ``.cs`` file: either whole types (with their
    namespaces and usings) or just members, such as
    ``"public static long Count(long a, long b) { ... }"``, which are wrapped in a
    ``public static class`` with the usual ``using``s (System, System.Linq,
    System.Collections.Generic, System.Numerics, System.Text, System.Threading). The
    kernel is the source's public static method ``method``, or its only one when None.

    Usable wherever :func:`dotnet`'s references are (``Pool.map``, ``apply_async``,
    ``ProcessPoolExecutor.submit``, a direct call). Nothing compiles here: a worker
    compiles the source the first time it runs it (about a second) and keeps the
    assembly by the source's SHA-256, in memory and in the user's cache
    (``$GILBRIDGE_CSHARP_CACHE``, else ``~/.cache/gilbridge/csharp``), so later workers
    load it instead. A compile error fails the task with :class:`CSharpCompileError`
    (a ``SyntaxError`` with the line and column in ``source``).
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, str) and "\n" not in source and source.endswith(".cs") and os.path.isfile(source):
        with open(source, encoding="utf-8") as file:
            source = file.read()
    return CSharpKernel(source, method)

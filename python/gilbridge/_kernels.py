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

__all__ = ["DotnetKernel", "dotnet"]

_DOTTED: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_`]*(\.[A-Za-z_][A-Za-z0-9_`+]*)+$")


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

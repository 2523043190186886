"""gilbridge: Python's multiprocessing objects served by a .NET gRPC host ("Bridge").

Use ``import gilbridge.multiprocessing as multiprocessing``. Importing this package does
not import grpc: the connection (and, for the default address, the host) starts when the
first object is created. Configuration (environment):

* ``GILBRIDGE_ADDRESS``: ``unix:/abs/path`` or ``host:port`` (TCP; ``GILBRIDGE_TOKEN``
  is sent as a bearer token; ``GILBRIDGE_TLS_CA``, a PEM file of trusted roots, for a
  host that serves TLS). When set, no host is ever started automatically.
* ``GILBRIDGE_RUNTIME_DIR``: directory of the default host's socket, pid file and log
  (default ``$XDG_RUNTIME_DIR/gilbridge`` or ``/tmp/gilbridge-<uid>``).
* ``GILBRIDGE_HOST_PATH``: the host executable to auto-start.
* ``GILBRIDGE_IDLE_TIMEOUT``: idle seconds before an auto-started host exits (300).

``python -m gilbridge host start|stop|status`` manages the default host;
``python -m gilbridge script.py [args]`` runs an unmodified multiprocessing script on it.

Execution: ``gilbridge.multiprocessing.Process``/``Pool`` and
``gilbridge.futures.ProcessPoolExecutor`` run work on Bridge worker processes.
``gilbridge.dotnet("Bridge.Kernels.Primes.Count")`` is a callable reference to a C#
kernel, ``gilbridge.csharp("public static long F(long x) { ... }")`` one compiled from
source in the workers; a failed kernel raises :class:`DotnetError`; a worker that dies mid-task fails
its tasks with :class:`BrokenProcessPool`.
"""

from __future__ import annotations

from typing import Any

from ._errors import BridgeError, HostUnavailableError, ObjectLostError
from ._kernels import CSharpCompileError, CSharpKernel, DotnetKernel, csharp, dotnet

__version__ = "0.1.0"

__all__ = [
    "BridgeError", "BrokenProcessPool", "CSharpCompileError", "CSharpKernel", "DotnetError",
    "DotnetKernel", "HostUnavailableError", "ObjectLostError", "__version__", "csharp", "dotnet",
]


def __getattr__(name: str) -> Any:
    # Lazy: these import concurrent.futures.process.
    if name in ("BrokenProcessPool", "DotnetError"):
        from . import _remote

        return getattr(_remote, name)
    raise AttributeError(f"module 'gilbridge' has no attribute {name!r}")

"""gilbridge: Python's multiprocessing objects served by a .NET gRPC host ("Bridge").

Use ``import gilbridge.multiprocessing as multiprocessing``. Importing this package does
not import grpc: the connection (and, for the default address, the host) starts when the
first object is created. Configuration (environment):

* ``GILBRIDGE_ADDRESS``: ``unix:/abs/path`` or ``host:port`` (TCP; ``GILBRIDGE_TOKEN``
  is sent as a bearer token). When set, no host is ever started automatically.
* ``GILBRIDGE_RUNTIME_DIR``: directory of the default host's socket, pid file and log
  (default ``$XDG_RUNTIME_DIR/gilbridge`` or ``/tmp/gilbridge-<uid>``).
* ``GILBRIDGE_HOST_PATH``: the host executable to auto-start.
* ``GILBRIDGE_IDLE_TIMEOUT``: idle seconds before an auto-started host exits (300).

``python -m gilbridge host start|stop|status`` manages the default host.
"""

from __future__ import annotations

from ._errors import BridgeError, HostUnavailableError

__version__ = "0.1.0"

__all__ = ["BridgeError", "HostUnavailableError", "__version__"]

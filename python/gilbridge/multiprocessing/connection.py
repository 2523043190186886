"""``multiprocessing.connection`` for :mod:`gilbridge.multiprocessing`: Pipe, Listener, Client, wait and Connection: the stdlib's own. A Pipe end passed to a Bridge ``Process`` or pool task reaches it as in a spawned child (its descriptor is shared with the worker); Listener/Client work by address.

Every name is the stdlib module's, so ``from gilbridge.multiprocessing.connection import X``
works as ``from multiprocessing.connection import X`` does.
"""

from __future__ import annotations

import multiprocessing.connection as _stdlib
from multiprocessing.connection import *  # noqa: F403

from ._base import stdlib_fallback

__all__ = list(getattr(_stdlib, "__all__", ()))
__getattr__ = stdlib_fallback(__name__, _stdlib)

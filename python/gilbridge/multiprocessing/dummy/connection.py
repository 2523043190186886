"""``multiprocessing.dummy.connection``: the stdlib's thread-backed ``Pipe``, ``Listener``
and ``Client`` (queues between threads of this process)."""

from __future__ import annotations

import multiprocessing.dummy.connection as _stdlib
from multiprocessing.dummy.connection import *  # noqa: F403

from .._base import stdlib_fallback

__all__ = list(_stdlib.__all__)
__getattr__ = stdlib_fallback(__name__, _stdlib)

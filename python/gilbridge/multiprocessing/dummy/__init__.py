"""``multiprocessing.dummy`` for :mod:`gilbridge.multiprocessing`: the stdlib's API
backed by threads of this process (``Pool`` is a thread pool, ``Process`` a thread).
Threads share this interpreter's GIL; nothing here goes through Bridge.
"""

from __future__ import annotations

import multiprocessing.dummy as _stdlib
from multiprocessing.dummy import *  # noqa: F403

from .._base import stdlib_fallback

__all__ = list(_stdlib.__all__)
__getattr__ = stdlib_fallback(__name__, _stdlib)

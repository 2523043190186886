"""``multiprocessing.heap`` for :mod:`gilbridge.multiprocessing`: The stdlib's heap of shared memory arenas (``BufferWrapper``), which the stdlib's own ctypes objects use.

Every name is the stdlib module's, so ``from gilbridge.multiprocessing.heap import X``
works as ``from multiprocessing.heap import X`` does.
"""

from __future__ import annotations

import multiprocessing.heap as _stdlib
from multiprocessing.heap import *  # noqa: F403

from ._base import stdlib_fallback

__all__ = list(getattr(_stdlib, "__all__", ()))
__getattr__ = stdlib_fallback(__name__, _stdlib)

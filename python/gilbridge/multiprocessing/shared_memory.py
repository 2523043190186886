"""``multiprocessing.shared_memory`` for :mod:`gilbridge.multiprocessing`: ``SharedMemory`` and ``ShareableList``: the stdlib's own (POSIX shared memory by name, which Bridge workers on this machine open like any process).

Every name is the stdlib module's, so ``from gilbridge.multiprocessing.shared_memory import X``
works as ``from multiprocessing.shared_memory import X`` does.
"""

from __future__ import annotations

import multiprocessing.shared_memory as _stdlib
from multiprocessing.shared_memory import *  # noqa: F403

from ._base import stdlib_fallback

__all__ = list(getattr(_stdlib, "__all__", ()))
__getattr__ = stdlib_fallback(__name__, _stdlib)

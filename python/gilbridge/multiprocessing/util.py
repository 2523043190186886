"""``multiprocessing.util`` for :mod:`gilbridge.multiprocessing`: The stdlib's helpers (``Finalize``, ``get_logger``, ``log_to_stderr``, ``register_after_fork``...).

Every name is the stdlib module's, so ``from gilbridge.multiprocessing.util import X``
works as ``from multiprocessing.util import X`` does.
"""

from __future__ import annotations

import multiprocessing.util as _stdlib
from multiprocessing.util import *  # noqa: F403

from ._base import stdlib_fallback

__all__ = list(getattr(_stdlib, "__all__", ()))
__getattr__ = stdlib_fallback(__name__, _stdlib)

"""``multiprocessing.reduction`` for :mod:`gilbridge.multiprocessing`: The stdlib's pickling helpers (``ForkingPickler``, ``register``, ``send_handle``/``recv_handle``...).

Every name is the stdlib module's, so ``from gilbridge.multiprocessing.reduction import X``
works as ``from multiprocessing.reduction import X`` does.
"""

from __future__ import annotations

import multiprocessing.reduction as _stdlib
from multiprocessing.reduction import *  # noqa: F403

from ._base import stdlib_fallback

__all__ = list(getattr(_stdlib, "__all__", ()))
__getattr__ = stdlib_fallback(__name__, _stdlib)

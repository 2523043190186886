"""``multiprocessing.managers`` for :mod:`gilbridge.multiprocessing`: ``Manager``/``SyncManager``/``BaseManager`` and their proxies: the stdlib's own, whose server process the stdlib starts; its proxies pickle to Bridge workers.

Every name is the stdlib module's, so ``from gilbridge.multiprocessing.managers import X``
works as ``from multiprocessing.managers import X`` does.
"""

from __future__ import annotations

import multiprocessing.managers as _stdlib
from multiprocessing.managers import *  # noqa: F403

from ._base import stdlib_fallback

__all__ = list(getattr(_stdlib, "__all__", ()))
__getattr__ = stdlib_fallback(__name__, _stdlib)

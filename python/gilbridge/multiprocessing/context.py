"""``multiprocessing.context`` for :mod:`gilbridge.multiprocessing`: the stdlib module's
names (``BaseContext``, ``DefaultContext``, the Process classes, ``reduction``...) and
Bridge's own context classes, :class:`BridgeContext` (what ``get_context()`` returns).
"""

from __future__ import annotations

import multiprocessing.context as _stdlib
from multiprocessing.context import *  # noqa: F403

from ._base import stdlib_fallback
from ._context import BridgeContext, DefaultBridgeContext, default_context

__all__ = [*getattr(_stdlib, "__all__", ()), "BridgeContext", "DefaultBridgeContext", "default_context"]
__getattr__ = stdlib_fallback(__name__, _stdlib)

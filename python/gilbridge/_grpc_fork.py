"""Runs grpc's Python fork-child handler where it is safe: after CPython re-creates the GIL.

grpc before 1.55 (Debian's ``python3-grpcio`` is 1.51) registers the Python part of its
fork support with ``pthread_atfork``, so in a forked child it runs inside ``fork()``,
before CPython re-creates the GIL (grpc issue #18075, fixed upstream by PR #32935 with
``os.register_at_fork``). Measured here, two failures follow:

* the child hangs for good when another thread had asked for the GIL at the instant of
  the fork: grpc's handler calls Python code, which hands the GIL over and waits for a
  thread that does not exist in the child (gdb: ``drop_gil`` waiting on the GIL's switch
  condition under grpc's handler). 2 forks in 20 hung with a CPU-bound thread beside,
  about 1 in 400 with only this package's threads on a loaded machine;
* the child exits with status 64 ("Failed to shutdown gRPC Core after fork()") when the
  core's channel teardown, which finishes asynchronously, has not finished by the time
  the handler checks for it: about 1 fork in 1,000 on a loaded machine.

This module backports the upstream fix. A prepare handler registered with glibc ahead of
grpc's (prepare handlers run in reverse order of registration, so it runs after grpc's
own) sets the flag grpc's child handler consults to skip its Python part; an
``os.register_at_fork`` child hook then does that part, as grpc 1.55 does: fresh
conditions, reset fork states, the inherited channels closed. grpc's core handlers are
untouched. It takes effect only for grpc versions that have the flaw, and only when this
module is installed before grpc first initialises (``_host.import_grpc`` does that).
"""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = ["adopt", "install"]

_FIXED_UPSTREAM = (1, 55)

_install_lock = threading.Lock()
_installed = False
_prepare_callback: Any = None  # glibc keeps a pointer to it: it must live for good
_cygrpc: Any = None  # grpc's extension module, when its fork handler has the flaw
_skipped_in_child = False


def install() -> None:
    """Register the handlers (once per process; before grpc is imported)."""
    global _installed, _prepare_callback
    with _install_lock:
        if _installed:
            return
        _installed = True
        try:
            import ctypes

            register = ctypes.CDLL(None).__register_atfork
        except (ImportError, OSError, AttributeError):  # not glibc: nothing to do
            return
        register.argtypes = [ctypes.c_void_p] * 4
        register.restype = ctypes.c_int
        _prepare_callback = ctypes.CFUNCTYPE(None)(_skip_grpc_child_handler)
        register(ctypes.cast(_prepare_callback, ctypes.c_void_p), None, None, None)
        os.register_at_fork(after_in_parent=_after_fork_in_parent,
                            after_in_child=_after_fork_in_child)


def adopt(grpc: Any) -> None:
    """Take over the child handler of this grpc, if it is a version with the flaw."""
    global _cygrpc
    if not _installed or _prepare_callback is None:
        return
    try:
        version = tuple(int(part) for part in grpc.__version__.split(".")[:2])
    except (AttributeError, ValueError):
        return
    if version >= _FIXED_UPSTREAM:
        return
    from grpc._cython import cygrpc

    state = getattr(cygrpc, "_fork_state", None)
    if getattr(state, "fork_handler_registered", True):
        return  # registered before ours, so grpc's prepare handler would run after ours
    if (hasattr(cygrpc, "_fork_handler_failed") and hasattr(cygrpc, "_ActiveThreadCount")
            and all(hasattr(state, name) for name in (
                "fork_in_progress_condition", "active_thread_count", "channels",
                "postfork_states_to_reset", "fork_epoch", "fork_in_progress"))):
        _cygrpc = cygrpc


def _skip_grpc_child_handler() -> None:
    """Inside fork(), after grpc's own prepare handlers (which clear the flag)."""
    global _skipped_in_child
    cygrpc = _cygrpc
    if cygrpc is not None and cygrpc._fork_state.fork_handler_registered:
        cygrpc._fork_handler_failed = True
        _skipped_in_child = True


def _after_fork_in_parent() -> None:
    global _skipped_in_child
    if _skipped_in_child:
        _skipped_in_child = False
        _cygrpc._fork_handler_failed = False


def _after_fork_in_child() -> None:
    """What grpc's child handler does (grpc 1.55's ``__postfork_child``), now that the
    GIL is sound. The final check that grpc's core has shut down is left out: its
    channel teardown may still be finishing, and a new channel starts it again."""
    global _skipped_in_child
    if not _skipped_in_child:
        return
    _skipped_in_child = False
    cygrpc = _cygrpc
    cygrpc._fork_handler_failed = False
    state = cygrpc._fork_state
    # Another thread may have held these at fork time.
    state.fork_in_progress_condition = threading.Condition()
    state.active_thread_count = cygrpc._ActiveThreadCount()
    for state_to_reset in state.postfork_states_to_reset:
        state_to_reset.reset_postfork_child()
    state.postfork_states_to_reset = []
    state.fork_epoch += 1
    for channel in list(state.channels):
        channel._close_on_fork()
    with state.fork_in_progress_condition:
        state.fork_in_progress = False

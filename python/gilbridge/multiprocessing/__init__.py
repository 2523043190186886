"""Drop-in replacement for :mod:`multiprocessing` whose synchronization objects, queues
and shared values live in the Bridge host::

    import gilbridge.multiprocessing as multiprocessing

    lock = multiprocessing.Lock()
    q = multiprocessing.Queue()

``Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier, Queue,
JoinableQueue, SimpleQueue, Value, Array, RawValue, RawArray`` and ``cpu_count`` are the
bridge's (shared values live in memory the host names and every local process maps); every
factory also takes keyword-only ``name=`` / ``create=`` to share a named object between
unrelated programs. Proxies pickle: unpickled in another process (spawn, fork, or any
program) they attach to the same host object.

``Process`` and ``Pool`` run on Bridge workers (this interpreter's
executable with .NET loaded into it, running Python callables and C# kernels given as
``gilbridge.dotnet(...)``), with
``current_process``, ``parent_process``, ``active_children`` and the start-method
functions (every method name is accepted and recorded; all run on Bridge workers).

``Manager()`` is the stdlib's ``SyncManager`` with its server on a Bridge worker and its
locks, events, barriers and queues Bridge objects (:mod:`.managers`). The other names
(``Pipe`` ...) are the stdlib's, so scripts keep working. Deliberate deviation: a negative timeout raises ValueError (the stdlib
silently treats it as 0).
"""

from __future__ import annotations

import multiprocessing as _stdlib

from ._context import BridgeContext, default_context

# Bridge implementations, bound from the default context (as CPython does).
Lock = default_context.Lock
RLock = default_context.RLock
Semaphore = default_context.Semaphore
BoundedSemaphore = default_context.BoundedSemaphore
Event = default_context.Event
Condition = default_context.Condition
Barrier = default_context.Barrier
Queue = default_context.Queue
JoinableQueue = default_context.JoinableQueue
SimpleQueue = default_context.SimpleQueue
Value = default_context.Value
Array = default_context.Array
RawValue = default_context.RawValue
RawArray = default_context.RawArray
cpu_count = default_context.cpu_count
Process = default_context.Process
Pool = default_context.Pool
Manager = default_context.Manager
current_process = default_context.current_process
active_children = default_context.active_children
parent_process = default_context.parent_process
get_context = default_context.get_context
set_start_method = default_context.set_start_method
get_start_method = default_context.get_start_method
get_all_start_methods = default_context.get_all_start_methods

# Not bridged: the stdlib's own.
Pipe = _stdlib.Pipe
set_executable = _stdlib.set_executable
set_forkserver_preload = _stdlib.set_forkserver_preload
freeze_support = _stdlib.freeze_support
get_logger = _stdlib.get_logger
log_to_stderr = _stdlib.log_to_stderr
allow_connection_pickling = _stdlib.allow_connection_pickling
ProcessError = _stdlib.ProcessError
BufferTooShort = _stdlib.BufferTooShort
TimeoutError = _stdlib.TimeoutError
AuthenticationError = _stdlib.AuthenticationError
reducer = _stdlib.reducer
SUBDEBUG = _stdlib.SUBDEBUG
SUBWARNING = _stdlib.SUBWARNING

__all__ = [
    "Array", "AuthenticationError", "Barrier", "BoundedSemaphore", "BridgeContext",
    "BufferTooShort", "Condition", "Event", "JoinableQueue", "Lock", "Manager", "Pipe",
    "Pool", "Process", "ProcessError", "Queue", "RLock", "RawArray", "RawValue",
    "SUBDEBUG", "SUBWARNING", "Semaphore", "SimpleQueue", "TimeoutError", "Value",
    "active_children", "allow_connection_pickling", "cpu_count", "current_process",
    "default_context", "freeze_support", "get_all_start_methods", "get_context",
    "get_logger", "get_start_method", "log_to_stderr", "parent_process", "reducer",
    "set_executable", "set_forkserver_preload", "set_start_method",
]

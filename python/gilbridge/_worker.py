"""The Python half of a Bridge worker: the worker process is the client's own interpreter.

The host starts ``<sys.executable> bridge_worker.py`` (shipped beside ``Bridge.Worker.dll``),
which loads .NET into this interpreter with hostfxr and starts the worker: its Work
stream with the host and its C# kernels run on .NET threads, while the interpreter's main
thread loops in :func:`serve`, taking one call at a time from .NET and answering it::

    Bridge.Host ──Work stream──► Bridge.Worker (.NET threads) ──Next(): call + bytes──► serve()
                ◄─TaskResult────                              ◄─Complete(answer bytes)──┘
                ◄─OutputText────  Output(stream, text) ◄── sys.stdout / sys.stderr writes

Interop is a handful of byte strings per chunk: .NET hands over the protobuf bytes of a
``TaskChunk`` and gets back the protobuf bytes of a ``TaskResult``; everything in between
(unpickling the function, decoding the MessagePack items, calling, encoding) happens here,
on the main thread, at the interpreter's full speed (no GIL hand-off per chunk).

* :func:`prepare` applies the client's environment once: ``sys.path``, working
  directory, environment, output forwarding, the parent's ``__main__`` run as
  ``__mp_main__`` (as the stdlib's spawn does); a warm worker may do it before its pool
  exists. :func:`assign` then names the process and runs the pool initializer;
  :func:`release` ends a pool's use of the worker, which then serves the session's next
  pool (assigned again).
* :func:`run_chunk` runs one chunk of calls (styles CALL, MAP, STARMAP).
* :func:`run_process` runs a pickled ``multiprocessing`` Process object as the stdlib's
  spawned child does and returns its exit code.
* :func:`at_exit` runs the ``atexit`` handlers before a clean (Shutdown) exit.

:func:`run_chunk` works without :func:`prepare`/:func:`assign` too (it is tested in-process that way).
"""

from __future__ import annotations

import codecs
import io
import itertools
import os
import pickle
import sys
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

import msgpack

from . import _codec
from ._proto.bridge.v1 import execution_pb2 as _pb

__all__ = ["assign", "at_exit", "flush_output", "prepare", "release", "run_chunk", "run_process", "serve"]

#: How the .NET side receives output: ``sink(stream, text)`` with stream 1 (stdout) or 2.
OutputSink = Callable[[int, str], None]

_CALL: Final = _pb.CALL
_MAP: Final = _pb.MAP
_STARMAP: Final = _pb.STARMAP
_RUN_PROCESS: Final = _pb.RUN_PROCESS

# A map's chunks all carry the same pickled function: unpickling it once per chunk would
# cost more than small calls themselves. A few entries cover pools that interleave maps.
_FUNCTION_CACHE_SIZE: Final = 16


class _FunctionCache:
    """Unpickled callables keyed by their cloudpickle bytes (least recently used out)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: OrderedDict[bytes, Callable[..., Any]] = OrderedDict()

    def get(self, pickled: bytes) -> Callable[..., Any]:
        """The callable ``pickled`` holds, unpickled on first use."""
        function = self._entries.get(pickled)
        if function is not None:
            self._entries.move_to_end(pickled)
            return function
        function = pickle.loads(pickled)  # cloudpickle output loads with plain pickle
        if not callable(function):
            raise TypeError(f"the task's function is not callable: {type(function).__qualname__}")
        self._entries[pickled] = function
        if len(self._entries) > _FUNCTION_CACHE_SIZE:
            self._entries.popitem(last=False)
        return function


class _Encoder:
    """:func:`gilbridge._codec.encode` (without a size limit) with one reused
    ``msgpack.Packer``: building a packer per call (``packb``) costs ~0.5 µs, several
    times a small call itself. Not re-entrant; the worker thread is its only user."""

    __slots__ = ("_pack",)

    def __init__(self) -> None:
        packer = msgpack.Packer(use_bin_type=True, strict_types=True, default=_codec._default)
        self._pack = packer.pack

    def __call__(self, obj: Any) -> bytes:
        if type(obj) not in _codec._SCALARS and _codec._has_buffer(obj):
            obj = _codec._mark_buffers(obj)
        return self._pack(obj)


def _decode_all(items: Sequence[bytes]) -> list[Any] | None:
    """Decodes a chunk's items with one streaming unpacker (~25 ns per small item
    instead of ~170 ns for ``unpackb`` each), exactly as :func:`gilbridge._codec.decode`
    would decode each one. None when the fast path cannot vouch for the result (an item
    that is not exactly one document, or any decoding error): the caller then decodes
    item by item so that an error belongs to its own call, in order."""
    if len(items) < 2:
        return None
    data = b"".join(items)
    unpacker = msgpack.Unpacker(
        raw=False, strict_map_key=False, ext_hook=_codec._ext_hook, max_buffer_size=len(data)
    )
    unpacker.feed(data)
    decoded: list[Any] = []
    offset = 0
    try:
        for item in items:
            decoded.append(unpacker.unpack())
            offset += len(item)
            if unpacker.tell() != offset:
                return None
    except Exception:  # noqa: BLE001 - the slow path reports the error at its own item
        return None
    return decoded


class _SinkWriter(io.RawIOBase):
    """The raw layer of a forwarded stream: bytes written are decoded (UTF-8, split
    characters kept for the next write) and handed to the .NET sink."""

    def __init__(self, stream: int, sink: OutputSink) -> None:
        super().__init__()
        self._stream = stream
        self._sink = sink
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        view = memoryview(data)
        text = self._decoder.decode(view.tobytes())
        if text:
            self._sink(self._stream, text)
        return view.nbytes

    def fileno(self) -> int:
        # The worker's real stdout/stderr (the host logs them): code that writes to the
        # descriptor directly (faulthandler, subprocess) still has somewhere to write.
        return self._stream


def _forwarding_stream(stream: int, sink: OutputSink) -> io.TextIOWrapper:
    """A ``sys.stdout``-like text stream whose lines go to ``sink``.

    Line buffered like a terminal: the .NET side is called once per line written (or per
    8 KiB, or on ``flush()``), not once per ``write`` call.
    """
    raw = _SinkWriter(stream, sink)
    return io.TextIOWrapper(
        io.BufferedWriter(raw, buffer_size=8192),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


class _Worker:
    """The state of this worker process: its function cache and its forwarded streams."""

    def __init__(self) -> None:
        self.functions = _FunctionCache()
        self.encode = _Encoder()
        self.streams: list[io.TextIOWrapper] = []
        self.pid = os.getpid()

    def install_output(self, sink: OutputSink) -> None:
        """Replaces ``sys.stdout``/``sys.stderr`` with streams forwarded to ``sink``."""
        stdout = _forwarding_stream(1, sink)
        stderr = _forwarding_stream(2, sink)
        self.streams = [stdout, stderr]
        sys.stdout = sys.__stdout__ = stdout
        sys.stderr = sys.__stderr__ = stderr

    def flush(self) -> None:
        """Flushes the forwarded streams (what a task printed without a newline)."""
        for stream in self.streams:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # closed by user code: nothing buffered can be delivered anyway


_worker = _Worker()


def prepare(
    sys_path: Iterable[str],
    working_directory: str,
    environment: Mapping[str, str],
    main_path: str,
    argv: Iterable[str],
    output: OutputSink | None,
) -> None:
    """Makes this interpreter look like the client's spawned child: ``sys.path``,
    working directory, environment, ``sys.argv``, forwarded output and the parent's ``__main__`` run
    as ``__mp_main__``. A warm worker does this ahead of its pool (the host sends the
    environment of a session's earlier pools); :func:`assign` finishes the job.
    Exceptions propagate: the worker reports them and exits."""
    sys.path[:] = list(sys_path)
    if working_directory:
        os.chdir(working_directory)
    os.environ.update(environment)
    sys.argv = list(argv) or ([main_path] if main_path else [""])
    if output is not None:
        _worker.install_output(output)
    # The host's pipe is not the user's terminal; a stdlib spawned child reads nothing either.
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    import multiprocessing
    import multiprocessing.spawn

    # fork inside this process would fork the whole .NET runtime with its threads.
    multiprocessing.set_start_method("spawn", force=True)
    _attach_shared_memory_untracked()
    if main_path:
        multiprocessing.spawn._fixup_main_from_path(main_path)  # type: ignore[attr-defined]
    _worker.flush()


def _attach_shared_memory_untracked() -> None:
    """A ``SharedMemory`` this worker attaches to (by name, or unpickled) is not
    registered with its resource tracker: a spawned child shares its parent's tracker,
    but a worker has its own, which would unlink the client's segment when the worker
    exits (after a Process, say) while the client still uses it (bpo-39959). Segments a
    worker creates stay tracked, and are unlinked when it exits unless unlinked before."""
    from multiprocessing import resource_tracker, shared_memory

    original = shared_memory.SharedMemory.__init__
    if getattr(original, "_gilbridge_untracked", False):
        return

    def __init__(self: Any, name: str | None = None, create: bool = False, size: int = 0) -> None:
        original(self, name, create, size)
        if not create:
            resource_tracker.unregister(self._name, "shared_memory")

    __init__._gilbridge_untracked = True  # type: ignore[attr-defined]
    shared_memory.SharedMemory.__init__ = __init__  # type: ignore[method-assign]


def assign(initializer: bytes, name: str) -> None:
    """Joins the pool once :func:`prepare` has run: names the process and runs the pool
    initializer (``cloudpickle.dumps((f, args))`` or empty). Exceptions propagate: the
    worker reports them and exits (the host replaces it)."""
    import multiprocessing

    if name:
        multiprocessing.current_process().name = name
    if initializer:
        function, args = pickle.loads(initializer)
        function(*args)
    _worker.flush()


def release() -> None:
    """Leaves the pool, staying alive for the session's next one: delivers what the
    pool's tasks left buffered (queue puts, acknowledgements, output), as a stdlib
    worker's exit would. Module state, imports and the initializer's effects stay, as in
    a reused loky worker; the next pool runs its own initializer."""
    from ._connection import current_connection

    conn = current_connection()
    if conn is not None and not conn.closed:
        conn.flush_buffers()
    _worker.flush()


def flush_output() -> None:
    """Flushes the forwarded ``sys.stdout``/``sys.stderr`` buffers."""
    _worker.flush()


def at_exit() -> None:
    """What a spawned child does at a clean exit: runs the ``atexit`` handlers (among
    them multiprocessing's finalizers and gilbridge's own, which flush buffered queue
    puts and end the session), then flushes the forwarded streams. Exceptions in
    handlers are printed by ``atexit`` itself, as at interpreter exit."""
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        _worker.flush()


def _qualified_name(exc_type: type[BaseException]) -> str:
    module = exc_type.__module__
    name = exc_type.__qualname__
    return name if module == "builtins" else f"{module}.{name}"


def _fill_error(error: Any, exc: BaseException) -> None:
    """Fills a ``TaskError`` from ``exc`` (its traceback without this module's frame)."""
    error.type = _qualified_name(type(exc))
    error.message = str(exc)
    tb = exc.__traceback__
    # Skip this module's frames (run_chunk, and a CALL chunk's comprehension): the user's
    # traceback starts at their own function, as in a stdlib pool's remote traceback.
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    error.traceback = "".join(traceback.format_exception(type(exc), exc, tb))
    try:
        error.pickled = pickle.dumps(exc, protocol=5)
    except Exception:  # noqa: BLE001 - any failure to pickle just means "not pickled"
        error.pickled = b""


def _encoding_error(exc: Exception, outcomes: list[Any]) -> BaseException:
    """The stdlib pool's error for a result that cannot be sent back: a
    ``MaybeEncodingError`` with the reprs of the error and of the value (the chunk's
    list of values when it ran several calls)."""
    from multiprocessing.pool import MaybeEncodingError

    return MaybeEncodingError(_codec.pickling_error(exc), outcomes[0] if len(outcomes) == 1 else outcomes)


def run_chunk(data: bytes | bytearray | memoryview) -> bytes:
    """Runs one serialized ``TaskChunk``; returns the serialized ``TaskResult``.

    Calls run in order; the first exception stops the chunk and becomes the result's
    ``error`` (``values`` is then empty): as in the stdlib, a chunk fails as a whole.
    """
    chunk = _pb.TaskChunk.FromString(data)
    result = _pb.TaskResult(task_id=chunk.task_id, worker_pid=_worker.pid)
    values = result.values
    encode = _worker.encode
    style = chunk.style
    try:
        if chunk.function.WhichOneof("kind") != "python":
            raise TypeError("this chunk's function is not a Python callable")
        function = _worker.functions.get(chunk.function.python)
        packed = chunk.packed_items
        arguments: Iterable[Any]
        if packed:
            arguments = _codec.decode(packed)
            if type(arguments) is not list:
                raise TypeError(f"packed_items must be a MessagePack array, not {type(arguments).__qualname__}")
        else:
            items = chunk.items
            decoded = _decode_all(items)
            arguments = decoded if decoded is not None else map(_codec.decode, items)
        # map/starmap loop in C, as the stdlib's mapstar/starmapstar do: a starmap of
        # 12,500 trivial calls took 0.36 ms as a list comprehension, 0.26 ms this way.
        if style == _MAP:
            outcomes = list(map(function, arguments))
        elif style == _STARMAP:
            outcomes = list(itertools.starmap(function, arguments))
        elif style == _CALL:
            outcomes = [function(*args, **kwargs) for args, kwargs in arguments]
        else:
            raise ValueError(
                f"call style {style} is not run by run_chunk (RUN_PROCESS needs a process-mode worker)"
            )
        try:
            if packed:
                result.packed_values = encode(outcomes)
            else:
                values.extend([encode(outcome) for outcome in outcomes])
        except Exception as exc:  # noqa: BLE001 - whatever pickling a result raised
            raise _encoding_error(exc, outcomes) from None
    except BaseException as exc:  # noqa: BLE001 - as concurrent.futures: SystemExit in a task is the task's error
        del values[:]
        result.packed_values = b""
        _fill_error(result.error, exc)
    finally:
        _worker.flush()
    return result.SerializeToString()


def run_process(data: bytes | bytearray | memoryview) -> int:
    """Runs the ``multiprocessing`` Process pickled in a ``RUN_PROCESS`` chunk as the
    stdlib's spawned child would, and returns its exit code.

    ``BaseProcess._bootstrap`` makes it ``current_process()``, runs ``run()``, maps
    ``SystemExit`` to the exit code and prints any other exception's traceback to stderr
    (exit code 1). Afterwards the ``atexit`` handlers run, as at a spawned child's exit.
    """
    import atexit
    import multiprocessing.process

    chunk = _pb.TaskChunk.FromString(data)
    if chunk.style != _RUN_PROCESS or len(chunk.items) != 1:
        raise ValueError(
            f"a process-mode chunk must be RUN_PROCESS with one item (got style {chunk.style}, "
            f"{len(chunk.items)} items)"
        )
    process = _codec.decode(chunk.items[0])
    if not isinstance(process, multiprocessing.process.BaseProcess):
        raise TypeError(f"expected a multiprocessing Process object, got {type(process).__qualname__}")
    from .multiprocessing.process import apply_logging_state

    apply_logging_state(process.__dict__.pop("_parent_logging", None))
    if getattr(process, "_start_method", None) == "fork":
        # A ForkProcess would make its own children fork this .NET process.
        process._start_method = "spawn"  # type: ignore[attr-defined]
    try:
        exitcode = process._bootstrap(parent_sentinel=None)  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    finally:
        _worker.flush()
    return int(exitcode)


# ---------------------------------------------------------------------------- serving

# PythonCall (src/Bridge.Worker/Python/PythonMainThread.cs).
_PREPARE: Final = 1
_ASSIGN: Final = 2
_RUN_CHUNK_CALL: Final = 3
_RUN_PROCESS_CALL: Final = 4
_RELEASE: Final = 5
_AT_EXIT: Final = 6
_FLUSH_OUTPUT: Final = 7


class NativeWorker(Protocol):
    """The worker's .NET side as bridge_worker.py exposes it."""

    def next(self) -> tuple[int, bytes]: ...

    def complete(self, status: int, answer: bytes) -> None: ...

    def output(self, stream: int, text: str) -> None: ...


def _failure(exc: BaseException) -> bytes:
    """A failure answer: qualified type, message and traceback, NUL-separated UTF-8."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{_qualified_name(type(exc))}\0{exc}\0{text}".encode("utf-8", "backslashreplace")


def serve(native: NativeWorker, prepare_payload: bytes) -> None:
    """The main thread's loop for the rest of the process (the worker ends it with
    ``_exit``): answers ``prepare_payload`` (the first call, already taken by
    bridge_worker.py), then every call .NET makes, one at a time. Blocks forever."""
    import json

    def prepare_json(payload: bytes) -> bytes:
        env = json.loads(payload)
        prepare(env["sys_path"], env["working_directory"], env["environment"], env["main_path"],
                env["argv"], native.output)
        return b""

    def assign_bytes(payload: bytes) -> bytes:
        assignment = _pb.Assignment.FromString(payload)
        assign(assignment.initializer, assignment.name)
        return b""

    def no_payload(action: Callable[[], None]) -> Callable[[bytes], bytes]:
        def call(_: bytes) -> bytes:
            action()
            return b""

        return call

    handlers: dict[int, Callable[[bytes], bytes]] = {
        _PREPARE: prepare_json,
        _ASSIGN: assign_bytes,
        _RUN_CHUNK_CALL: run_chunk,
        _RUN_PROCESS_CALL: lambda payload: str(run_process(payload)).encode(),
        _RELEASE: no_payload(release),
        _AT_EXIT: no_payload(at_exit),
        _FLUSH_OUTPUT: no_payload(flush_output),
    }
    kind, payload = _PREPARE, prepare_payload
    while True:
        try:
            handler = handlers.get(kind)
            if handler is None:
                raise ValueError(f"unknown worker call {kind}")
            answer = handler(payload)
        except BaseException as exc:  # noqa: BLE001 - answered; the worker decides what follows
            native.complete(1, _failure(exc))
        else:
            native.complete(0, answer)
        payload = b""  # a chunk's bytes are not kept alive while waiting for the next call
        kind, payload = native.next()

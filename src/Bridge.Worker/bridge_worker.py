"""Starts a Bridge worker inside this Python interpreter.

The host runs ``<client's sys.executable> bridge_worker.py --dotnet-root DIR <worker
options>`` (``DIR`` is ignored when the worker was published self-contained: its own
runtime beside it is used). This script (standard library only: it runs before the client's ``sys.path``
is known) loads the .NET runtime into this process through hostfxr's native-hosting API
and calls ``Bridge.Worker.NativeEntry.Start``: the worker's Work stream and C# kernels
run on .NET threads, while this, the interpreter's main thread, serves the worker's
Python calls at the interpreter's own speed::

    main thread: Next() ──(blocks in .NET, GIL released)──► call kind + payload bytes
                 handle it in Python (gilbridge._worker)  ─► Complete(status, answer bytes)
    sys.stdout / sys.stderr writes ─────────────────────────► Output(stream, bytes)

While it waits for its first call, a warm worker imports what every task needs: the
standard library's share, and gilbridge with its dependencies when this interpreter finds
them by itself (an installed gilbridge). The first call applies the client's environment
(JSON: its ``sys.path`` among it); what was imported early stays only if the client's
``sys.path`` finds the very same files, else (pure-Python packages such as gilbridge) it is
imported again from the client's ``sys.path``. ``gilbridge._worker.serve``
handles that call and every later one. The worker ends the process itself (``_exit``).

Exit codes: 2 bad command line, 3 no usable .NET runtime (the message names what is
missing).
"""

from __future__ import annotations

import ctypes
import os
import sys

_APP = "Bridge.Worker.dll"
# Beside the app only when it was published self-contained.
_SELF_CONTAINED_HOSTFXR = "libhostfxr.so"
_NO_DEBUGGER = "DOTNET_EnableDiagnostics_Debugger"
_NO_WXORX = "DOTNET_EnableWriteXorExecute"
_ENTRY_TYPE = b"Bridge.Worker.NativeEntry, Bridge.Worker"
# hostfxr_delegate_type.hdt_get_function_pointer (.NET 5+): methods of the app's own
# (default) load context.
_HDT_GET_FUNCTION_POINTER = 6
# UNMANAGEDCALLERSONLY_METHOD: the target is [UnmanagedCallersOnly], no delegate type.
_UNMANAGED_CALLERS_ONLY = ctypes.c_void_p(-1)

EXIT_USAGE = 2
EXIT_NO_RUNTIME = 3

# PythonCall.Prepare (src/Bridge.Worker/Python/PythonMainThread.cs).
_PREPARE = 1
# Warm-up while waiting for the first call: what every assignment needs from the
# interpreter's own standard library.
# (gilbridge._worker.prepare patches shared_memory: ~6-10 ms of imports, hashlib's among them.)
_STDLIB = ("typing", "pickle", "traceback", "codecs", "runpy", "json", "multiprocessing", "multiprocessing.spawn",
           "multiprocessing.resource_tracker", "multiprocessing.shared_memory")
# Then, if this interpreter finds them on its own sys.path: the worker's Python half and
# the client-side package a pickled Process or task refers to (~0.1 s of imports a
# Process would otherwise wait for). Not grpc: ~0.15 s and ~15 MB more per worker, for
# tasks that use Bridge objects only.
_PRELOAD = ("gilbridge._worker", "gilbridge.multiprocessing")


class _InitializeParameters(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("host_path", ctypes.c_char_p), ("dotnet_root", ctypes.c_char_p)]


def _version_key(name: str) -> tuple[int, ...]:
    parts = []
    for part in name.split("-")[0].split("."):
        parts.append(int(part) if part.isdigit() else -1)
    return tuple(parts)


def find_hostfxr(dotnet_root: str) -> str:
    """``<dotnet_root>/libhostfxr.so`` (a self-contained app's folder), else
    ``<dotnet_root>/host/fxr/<newest version>/libhostfxr.so``; FileNotFoundError when absent."""
    app_local = os.path.join(dotnet_root, _SELF_CONTAINED_HOSTFXR)
    if os.path.isfile(app_local):
        return app_local
    fxr = os.path.join(dotnet_root, "host", "fxr")
    try:
        versions = sorted(os.listdir(fxr), key=_version_key)
    except OSError:
        versions = []
    for version in reversed(versions):
        path = os.path.join(fxr, version, "libhostfxr.so")
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"no .NET host (libhostfxr.so) under {fxr}: install the .NET 10 runtime")


class Native:
    """The worker's functions in .NET, as ctypes calls (each releases the GIL)."""

    def __init__(self, dotnet_root: str, app: str) -> None:
        get_function = _function_loader(dotnet_root, app)
        byte_p = ctypes.POINTER(ctypes.c_ubyte)
        self._start = get_function(b"Start", ctypes.c_int32, ctypes.c_char_p, ctypes.c_int32,
                                   ctypes.POINTER(ctypes.c_void_p))
        self._next = get_function(b"Next", ctypes.c_int32, ctypes.c_void_p, ctypes.POINTER(byte_p),
                                  ctypes.POINTER(ctypes.c_int32))
        self._complete = get_function(b"Complete", None, ctypes.c_void_p, ctypes.c_int32, ctypes.c_char_p,
                                      ctypes.c_int32)
        self._output = get_function(b"Output", None, ctypes.c_void_p, ctypes.c_int32, ctypes.c_char_p,
                                    ctypes.c_int32)
        self._context = ctypes.c_void_p()
        self._data = byte_p()
        self._length = ctypes.c_int32()

    def start(self, options: list[str]) -> int:
        """Starts the worker (its session runs on .NET threads); 0, or 2 for a bad command line."""
        arguments = "\0".join(options).encode()
        return int(self._start(arguments, len(arguments), ctypes.byref(self._context)))

    def next(self) -> tuple[int, bytes]:
        """Blocks (without the GIL) for the next call: its kind and payload."""
        kind = self._next(self._context, ctypes.byref(self._data), ctypes.byref(self._length))
        return int(kind), ctypes.string_at(self._data, self._length.value)

    def complete(self, status: int, answer: bytes) -> None:
        """Answers the call :meth:`next` returned (status 0: success, else a failure)."""
        self._complete(self._context, status, answer, len(answer))

    def output(self, stream: int, text: str) -> None:
        """Forwards text written to stdout (1) or stderr (2); safe from any thread."""
        data = text.encode("utf-8", "backslashreplace")
        self._output(self._context, stream, data, len(data))


def _function_loader(dotnet_root: str, app: str):  # type: ignore[no-untyped-def]
    """Loads the .NET runtime for ``app`` (its runtimeconfig and deps) and returns
    ``get(method, restype, *argtypes)``: a ``NativeEntry`` method as a ctypes function."""
    hostfxr = ctypes.CDLL(find_hostfxr(dotnet_root))
    handle = ctypes.c_void_p()
    argv = (ctypes.c_char_p * 1)(os.fsencode(app))
    params = _InitializeParameters(ctypes.sizeof(_InitializeParameters), None, os.fsencode(dotnet_root))
    initialize = hostfxr.hostfxr_initialize_for_dotnet_command_line
    initialize.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(_InitializeParameters),
                           ctypes.POINTER(ctypes.c_void_p)]
    initialize.restype = ctypes.c_int32
    rc = initialize(1, argv, ctypes.byref(params), ctypes.byref(handle))
    if rc != 0 or not handle:
        raise OSError(f"hostfxr_initialize_for_dotnet_command_line({app}) failed: 0x{rc & 0xFFFFFFFF:08x}")
    get_delegate = hostfxr.hostfxr_get_runtime_delegate
    get_delegate.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
    get_delegate.restype = ctypes.c_int32
    get_function_pointer = ctypes.c_void_p()
    rc = get_delegate(handle, _HDT_GET_FUNCTION_POINTER, ctypes.byref(get_function_pointer))
    if rc != 0:
        raise OSError(f"hostfxr_get_runtime_delegate failed: 0x{rc & 0xFFFFFFFF:08x}")
    get_function_pointer_fn = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                                               ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))(
        get_function_pointer.value)

    def get(method: bytes, restype, *argtypes):  # type: ignore[no-untyped-def]
        pointer = ctypes.c_void_p()
        rc = get_function_pointer_fn(_ENTRY_TYPE, method, _UNMANAGED_CALLERS_ONLY, None, None, ctypes.byref(pointer))
        if rc != 0:
            raise OSError(f"no entry point {_ENTRY_TYPE.decode()}.{method.decode()}: 0x{rc & 0xFFFFFFFF:08x}")
        return ctypes.CFUNCTYPE(restype, *argtypes)(pointer.value)

    return get


def _failure(exc: BaseException) -> bytes:
    import traceback

    text = "".join(traceback.format_exception(exc))
    return f"{type(exc).__qualname__}\0{exc}\0{text}".encode("utf-8", "backslashreplace")


def _preload() -> tuple[frozenset[str], float]:
    """Imports _PRELOAD from this interpreter's default ``sys.path`` (stopping at the
    first that fails: nothing is required here). Returns the names of the modules it
    added that are not the standard library's, and when it started."""
    import importlib
    import time

    started = time.time()
    before = set(sys.modules)
    try:
        for name in _PRELOAD:
            importlib.import_module(name)
    except Exception:  # noqa: BLE001 - not installed here: the client's sys.path decides
        pass
    return frozenset(
        name for name in set(sys.modules) - before if name.partition(".")[0] not in sys.stdlib_module_names
    ), started


def _is_extension(module: object) -> bool:
    import importlib.machinery

    return str(getattr(module, "__file__", None) or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def _changed_since(module: object, when: float) -> bool:
    try:
        return os.stat(getattr(module, "__file__", None) or "").st_mtime > when
    except (OSError, ValueError):
        return False


def _registered_file_of(path: str) -> bytes | None:
    """The serialized file descriptor a protobuf-generated module at ``path`` registers
    (the bytes its ``AddSerializedFile`` call is given); None when there is no such
    file or call."""
    import ast

    try:
        with open(path, "rb") as source:
            tree = ast.parse(source.read())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "AddSerializedFile" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, bytes)):
            return node.args[0].value
    return None


def _defines_other_messages(names: list[str], found: object) -> list[str]:
    """The protobuf-generated modules among the preloaded ``names`` whose file at the
    package's new location (``found``, its spec) registers another definition than the
    one loaded: protobuf keeps one definition per file name in a process, so importing
    the new one would fail ("A file with this name is already in the pool")."""
    locations = list(getattr(found, "submodule_search_locations", None) or ())
    differing = []
    for name in names:
        module = sys.modules.get(name)
        loaded = getattr(getattr(module, "DESCRIPTOR", None), "serialized_pb", None)
        if not name.endswith("_pb2") or not isinstance(loaded, bytes):
            continue
        relative = os.path.join(*name.split(".")[1:]) + ".py"
        new = next((data for data in (_registered_file_of(os.path.join(location, relative))
                                      for location in locations) if data is not None), None)
        if new != loaded:
            differing.append(name)
    return differing


def _forget_moved_packages(preloaded: frozenset[str], preloaded_at: float) -> None:
    """Once the client's ``sys.path`` is in place: a preloaded pure-Python package that
    it finds at other files (a gilbridge checkout on ``PYTHONPATH``, say), or whose files
    changed since (an upgrade while the host ran), is forgotten, so the client's own
    copy is imported instead. A package with extension modules
    (protobuf, msgpack) stays as loaded: a loaded extension cannot be swapped in a
    running interpreter, and the worker runs the client's own interpreter anyway. So
    does one whose new copy defines other protocol messages than the loaded one
    (protobuf cannot hold both): the worker keeps the copy it loaded, consistent with
    itself, and says so on its stderr (the host's log)."""
    import importlib.machinery

    packages: dict[str, list[str]] = {}
    for name in preloaded:
        packages.setdefault(name.partition(".")[0], []).append(name)
    for top, names in packages.items():
        loaded = getattr(sys.modules.get(top), "__spec__", None)
        if loaded is None or (loaded.origin in (None, "namespace") and not loaded.submodule_search_locations):
            continue  # not imported from a path (a __main__ alias, Cython's runtime)
        if any(_is_extension(sys.modules.get(name)) for name in names):
            continue
        found = importlib.machinery.PathFinder.find_spec(top, sys.path)
        same = found is not None and (
            loaded.origin == found.origin
            if loaded.origin not in (None, "namespace")
            else list(loaded.submodule_search_locations) == list(found.submodule_search_locations or ())
        )
        if not same or any(_changed_since(sys.modules.get(name), preloaded_at) for name in names):
            differing = _defines_other_messages(names, found)
            if differing:
                print(f"bridge_worker: keeping the {top} loaded from {loaded.origin}: the copy the client's "
                      f"sys.path finds defines other protocol messages ({', '.join(sorted(differing))}), "
                      f"which cannot be loaded beside these; a host started after the change serves it",
                      file=sys.stderr)
                continue
            for name in names:
                del sys.modules[name]


def serve(native: Native) -> None:
    """The main thread's loop until the worker ends the process. The first call is always
    Prepare; once it has put the client's ``sys.path`` in place, gilbridge._worker takes
    over (an import failure answers every call with itself: the worker reports it)."""
    import importlib
    import json

    for name in _STDLIB:
        importlib.import_module(name)
    preloaded, preloaded_at = _preload()
    kind, payload = native.next()
    try:
        if kind != _PREPARE:
            raise RuntimeError(f"the worker's first call must be Prepare, got {kind}")
        sys.path[:] = json.loads(payload)["sys_path"]
        _forget_moved_packages(preloaded, preloaded_at)
        worker = importlib.import_module("gilbridge._worker")
    except BaseException as exc:  # noqa: BLE001 - reported to the client by the worker
        failure = _failure(exc)
        native.complete(1, failure)
        while True:
            native.next()
            native.complete(1, failure)
    worker.serve(native, payload)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "--dotnet-root":
        print("usage: bridge_worker.py --dotnet-root <dir> <Bridge.Worker options>", file=sys.stderr)
        return EXIT_USAGE
    dotnet_root, options = argv[1], argv[2:]
    here = os.path.dirname(os.path.abspath(__file__))
    app = os.path.join(here, _APP)
    if os.path.isfile(os.path.join(here, _SELF_CONTAINED_HOSTFXR)):
        # A self-contained publish (scripts/setup.sh): the runtime is the app's own, its
        # composite ReadyToRun image compiled together with the framework.
        dotnet_root = here
    # Runtime settings for the runtime's start, unless the environment already has them;
    # unset again once the runtime has read them, so the tasks' own child processes do
    # not inherit them.
    # - The runtime's debugger transport keeps a thread blocked in open() on a FIFO for
    #   the process's life, and Linux reserves the descriptor number of an open() in
    #   progress: a task's dup2() onto that number fails with EBUSY (CPython's
    #   test_large_fd_transfer fills every free descriptor below 256). A worker is not
    #   debugged with a managed debugger; the diagnostics port (dotnet-counters,
    #   dotnet-trace) stays.
    # - W^X double-maps every page of JIT-compiled code (a shared-memory file per worker,
    #   and CPU at start); a worker runs its owner's own code anyway.
    added = [name for name in (_NO_DEBUGGER, _NO_WXORX) if name not in os.environ]
    for name in added:
        os.environ[name] = "0"
    try:
        native = Native(dotnet_root, app)
    except (OSError, AttributeError) as exc:
        print(f"bridge_worker: cannot load .NET into {sys.executable}: {exc}", file=sys.stderr)
        return EXIT_NO_RUNTIME
    finally:
        for name in added:
            del os.environ[name]
        # W^X's setting is for this process's runtime, whether set here or handed down by
        # a host that gilbridge launched: the tasks' own child processes get .NET's default.
        os.environ.pop(_NO_WXORX, None)
    rc = native.start(options)
    if rc != 0:
        return rc
    serve(native)
    return 0


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))

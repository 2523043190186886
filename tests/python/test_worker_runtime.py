"""gilbridge._worker, the Python half of Bridge.Worker, run in-process (no .NET, no host).

The worker process side (the interpreter loading .NET, the calls between them,
assignment, output forwarding to the host, process mode) is tested through a real worker
process in tests/Bridge.Worker.Tests and in test_worker_reuse.py.
"""

from __future__ import annotations

import collections
import os
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from typing import Any

import cloudpickle
import msgpack
import pytest

from gilbridge import _codec, _worker
from gilbridge._proto.bridge.v1 import execution_pb2 as pb

Point = collections.namedtuple("Point", "x y")


class WorkerTestError(Exception):
    """A user exception type that lives in an importable module."""


class Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("no pickling")


UNPICKLED = []


class CountingCallable:
    """Counts how often it is unpickled (to see the function cache work)."""

    def __init__(self) -> None:
        self.increment = 1

    def __setstate__(self, state: dict[str, Any]) -> None:
        UNPICKLED.append(1)
        self.__dict__.update(state)

    def __call__(self, x: int) -> int:
        return x + self.increment


SEEN: list[int] = []


def record(x: int) -> int:
    """Pickled by reference (a module-level function), so its calls are visible here."""
    SEEN.append(x)
    return x


def run(function: Any, style: int, items: Iterable[bytes], task_id: int = 1) -> pb.TaskResult:
    chunk = pb.TaskChunk(
        task_id=task_id,
        function=pb.Callable(python=cloudpickle.dumps(function)),
        style=style,
        items=list(items),
    )
    return pb.TaskResult.FromString(_worker.run_chunk(chunk.SerializeToString()))


def encoded(*values: Any) -> list[bytes]:
    return [_codec.encode(v) for v in values]


def decoded(result: pb.TaskResult) -> list[Any]:
    assert not result.HasField("error"), result.error.traceback
    return [_codec.decode(v) for v in result.values]


def test_map_starmap_and_call_styles() -> None:
    k = 10
    assert decoded(run(lambda x: x + k, pb.MAP, encoded(1, 2, 3))) == [11, 12, 13]
    assert decoded(run(pow, pb.STARMAP, encoded((2, 3), [3, 2]))) == [8, 9]

    def combine(a: int, b: int = 0, *, scale: int = 1) -> tuple[int, str]:
        return ((a + b) * scale, f"{a}+{b}")

    items = encoded(((1,), {"b": 2, "scale": 3}), ([5], {}))
    assert decoded(run(combine, pb.CALL, items)) == [(9, "1+2"), (5, "5+0")]


def test_result_has_task_id_and_pid() -> None:
    result = run(abs, pb.MAP, encoded(-1), task_id=42)
    assert result.task_id == 42
    assert result.worker_pid == os.getpid()


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        -5,
        2**64 - 1,
        2**70,
        1.5,
        "text",
        b"bytes",
        [1, [2, (3, 4)], {"k": (5,)}],
        (1, "a", None),
        [bytearray(b"x"), {"b": bytearray(b"y")}],
        Point(1, 2),
        {1, 2},
        collections.OrderedDict(a=1),
    ],
)
def test_values_are_encoded_exactly_as_the_codec_does(value: Any) -> None:
    result = run(lambda _: value, pb.MAP, encoded(None))
    assert list(result.values) == [_codec.encode(value)]


def test_items_decode_exactly_as_the_codec_does() -> None:
    values = [None, 7, -(2**63), 2**64 - 1, 1.25, "s", b"b", (1, (2,)), [Point(1, 2)], {"a": [1]}, {1, 2}]
    result = run(lambda x: x, pb.MAP, encoded(*values))
    assert list(result.values) == encoded(*values)
    assert decoded(result) == values


def test_a_malformed_item_fails_its_own_call_after_the_earlier_ones_ran() -> None:
    SEEN.clear()
    # A truncated array: a streaming decoder would swallow the next item into it.
    bad = b"\x92\x01"
    result = run(record, pb.MAP, [*encoded(1, 2), bad, *encoded(3)])
    assert result.error.type == "ValueError", result.error.traceback
    assert "incomplete input" in result.error.message
    assert list(result.values) == []
    assert SEEN == [1, 2]


def test_two_documents_in_one_item_are_an_error_not_a_shift() -> None:
    result = run(lambda x: x, pb.MAP, [*encoded(1), _codec.encode(2) + _codec.encode(3), *encoded(4)])
    assert result.HasField("error")
    assert "ExtraData" in result.error.type


def test_builtin_exception_reports_type_message_traceback_and_pickle() -> None:
    result = run(lambda x: 10 // x, pb.MAP, encoded(5, 0, 1))
    assert list(result.values) == []
    error = result.error
    assert error.type == "ZeroDivisionError"
    assert error.message == "integer division or modulo by zero"
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "_worker.py" not in error.traceback
    assert error.traceback.rstrip().endswith("ZeroDivisionError: integer division or modulo by zero")
    restored = pickle.loads(error.pickled)
    assert isinstance(restored, ZeroDivisionError)
    assert not error.worker_died


def test_user_exception_is_qualified_by_module_and_unpicklable_ones_still_report() -> None:
    def fail(_: Any) -> None:
        raise WorkerTestError("boom")

    error = run(fail, pb.MAP, encoded(1)).error
    assert error.type == f"{WorkerTestError.__module__}.WorkerTestError"
    assert isinstance(pickle.loads(error.pickled), WorkerTestError)

    def fail_unpicklable(_: Any) -> None:
        raise Unpicklable("cannot travel")

    error = run(fail_unpicklable, pb.MAP, encoded(1)).error
    assert error.type.endswith("Unpicklable")
    assert error.message == "cannot travel"
    assert error.pickled == b""


def test_system_exit_in_a_task_is_the_tasks_error() -> None:
    error = run(lambda _: sys.exit(4), pb.MAP, encoded(1)).error
    assert error.type == "SystemExit"
    assert error.message == "4"


def test_an_unencodable_result_is_the_stdlibs_maybe_encoding_error() -> None:
    import threading
    from multiprocessing.pool import MaybeEncodingError

    result = run(lambda _: threading.Lock(), pb.MAP, encoded(1, 2))
    error = result.error
    assert error.type == "multiprocessing.pool.MaybeEncodingError"
    assert "lock" in error.message.lower()
    assert not result.values  # a chunk fails as a whole
    assert isinstance(pickle.loads(error.pickled), MaybeEncodingError)


def test_wrong_style_or_callable_kind_is_reported() -> None:
    chunk = pb.TaskChunk(task_id=1, function=pb.Callable(python=cloudpickle.dumps(abs)), style=pb.RUN_PROCESS)
    result = pb.TaskResult.FromString(_worker.run_chunk(chunk.SerializeToString()))
    assert result.error.type == "ValueError"

    chunk = pb.TaskChunk(task_id=2, function=pb.Callable(kernel="Bridge.Kernels.Primes.Count"), style=pb.MAP)
    result = pb.TaskResult.FromString(_worker.run_chunk(chunk.SerializeToString()))
    assert result.error.type == "TypeError"

    chunk = pb.TaskChunk(task_id=3, function=pb.Callable(python=pickle.dumps(42)), style=pb.MAP, items=encoded(1))
    result = pb.TaskResult.FromString(_worker.run_chunk(chunk.SerializeToString()))
    assert result.error.type == "TypeError"


def test_a_maps_chunks_unpickle_the_function_once() -> None:
    UNPICKLED.clear()
    function = pickle.dumps(CountingCallable())
    for task_id in range(3):
        chunk = pb.TaskChunk(task_id=task_id, function=pb.Callable(python=function), style=pb.MAP, items=encoded(1, 2))
        result = pb.TaskResult.FromString(_worker.run_chunk(bytearray(chunk.SerializeToString())))
        assert decoded(result) == [2, 3]
    assert UNPICKLED == [1]


def test_forwarded_streams_are_line_buffered_and_keep_split_characters() -> None:
    sent: list[tuple[int, str]] = []
    stream = _worker._forwarding_stream(1, lambda s, text: sent.append((s, text)))
    stream.write("a")
    stream.write("b\nc")
    assert sent == [(1, "ab\nc")]
    stream.write("d")
    assert sent == [(1, "ab\nc")]
    stream.flush()
    assert sent == [(1, "ab\nc"), (1, "d")]

    sent.clear()
    data = "é€".encode()
    stream.flush()
    for i in range(len(data)):
        stream.buffer.write(data[i : i + 1])
        stream.buffer.flush()
    assert "".join(text for _, text in sent) == "é€"
    assert stream.encoding == "utf-8"
    assert stream.fileno() == 1


def test_run_process_in_a_child_returns_the_exit_code_and_names_the_process() -> None:
    # run_process touches interpreter-wide state (current_process, stdin, threading
    # shutdown) as the stdlib's spawned child does, so it runs in its own interpreter.
    script = textwrap.dedent(
        """
        import multiprocessing, multiprocessing.context, os, sys
        import cloudpickle, msgpack
        from gilbridge import _worker, _codec
        from gilbridge._proto.bridge.v1 import execution_pb2 as pb

        class P(multiprocessing.Process):
            def run(self):
                print("in", multiprocessing.current_process().name, os.getpid() == PID, flush=True)
                raise SystemExit(3)

        PID = os.getpid()
        multiprocessing.context.set_spawning_popen(object())
        body = cloudpickle.dumps(P(name="child-9"))
        multiprocessing.context.set_spawning_popen(None)
        item = msgpack.packb(msgpack.ExtType(_codec.EXT_PICKLE, body))
        chunk = pb.TaskChunk(task_id=1, style=pb.RUN_PROCESS, items=[item])
        code = _worker.run_process(chunk.SerializeToString())
        print("exit", code, flush=True)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["in child-9 True", "exit 3"]


def test_a_map_of_abs_over_many_chunks() -> None:
    function = cloudpickle.dumps(abs)
    chunks = [
        pb.TaskChunk(
            task_id=c,
            function=pb.Callable(python=function),
            style=pb.MAP,
            items=[msgpack.packb(-i) for i in range(c * 1000, c * 1000 + 1000)],
        ).SerializeToString()
        for c in range(100)
    ]
    started = time.perf_counter()
    results = [_worker.run_chunk(chunk) for chunk in chunks]
    elapsed = time.perf_counter() - started
    total = sum(sum(msgpack.unpackb(v) for v in pb.TaskResult.FromString(r).values) for r in results)
    assert total == sum(range(100_000))
    print(f"run_chunk: map(abs) over 100,000 items in chunks of 1000: {elapsed * 1e3:.0f} ms")


def test_a_packed_chunk_comes_back_packed_in_order() -> None:
    chunk = pb.TaskChunk(task_id=7, function=pb.Callable(python=cloudpickle.dumps(divmod)), style=pb.STARMAP,
                         packed_items=msgpack.packb([[7, 2], [9, 4], [-3, 2]]))
    result = pb.TaskResult.FromString(_worker.run_chunk(chunk.SerializeToString()))
    assert not result.HasField("error") and len(result.values) == 0
    assert msgpack.unpackb(result.packed_values, ext_hook=_codec._ext_hook) == [(3, 1), (2, 1), (-2, 1)]


def test_packed_items_that_are_not_an_array_fail_the_chunk() -> None:
    chunk = pb.TaskChunk(task_id=8, function=pb.Callable(python=cloudpickle.dumps(abs)), style=pb.MAP,
                         packed_items=msgpack.packb({"a": 1}))
    result = pb.TaskResult.FromString(_worker.run_chunk(chunk.SerializeToString()))
    assert result.error.type == "TypeError" and "array" in result.error.message
    assert not result.packed_values

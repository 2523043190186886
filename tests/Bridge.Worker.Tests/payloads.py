"""Payloads for the worker tests, made by the client's real libraries (cloudpickle and
gilbridge._codec) so the worker is fed exactly what a client sends.

Prints one JSON object: the interpreter facts (executable, sys.path) and, per name, the
base64 of a cloudpickled callable or of MessagePack items.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import multiprocessing.context
import os
import pickle
import sys
import threading

import cloudpickle
import msgpack

from gilbridge import _codec


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def items(*values: object) -> list[str]:
    return [b64(_codec.encode(v)) for v in values]


def make_adder(k: int):
    def add(x: int) -> int:
        return x + k

    return add


def triple(x: int) -> int:  # pickled by reference: resolves through the worker's __mp_main__
    raise AssertionError("the worker must run the main file's triple, not this one")


class MyError(Exception):
    pass


def fail_custom(x: int) -> int:
    if x == 2:
        raise MyError(f"custom failure at {x}")
    return x


def printer(x: int) -> int:
    print(f"hello from task {x}")
    print(f"warning {x}", file=sys.stderr)
    print("no newline", end="")
    return x


def register_goodbye(_: object) -> None:
    import atexit

    atexit.register(print, "atexit ran at shutdown")


def context(_: object) -> list[object]:
    return [
        os.getcwd(),
        os.environ.get("GB_TEST_VAR"),
        os.environ.get("GB_INITIALIZED"),
        multiprocessing.current_process().name,
        multiprocessing.get_start_method(),
        sys.executable,
        os.getpid(),
        threading.current_thread() is threading.main_thread(),
    ]


def initialize(value: str) -> None:
    os.environ["GB_INITIALIZED"] = value
    print(f"initializer ran with {value}")


def failing_initializer() -> None:
    raise RuntimeError("initializer exploded")


def spin(seconds: float) -> float:
    """Holds the GIL (pure Python) for about ``seconds``."""
    import time

    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return seconds


def combine(a: int, b: int = 0, *, scale: int = 1) -> tuple[int, str]:
    return ((a + b) * scale, f"{a}+{b}")


class Exiter(multiprocessing.Process):
    def run(self) -> None:
        print(f"process {multiprocessing.current_process().name} pid {os.getpid()}", flush=True)
        sys.exit(3)


def pickled_process() -> bytes:
    process = Exiter(name="exiter-7")
    # A Process refuses to pickle its authkey outside spawning; a client does the same.
    multiprocessing.context.set_spawning_popen(object())
    try:
        return msgpack.packb(msgpack.ExtType(_codec.EXT_PICKLE, cloudpickle.dumps(process)))
    finally:
        multiprocessing.context.set_spawning_popen(None)


def main() -> None:
    out = {
        "executable": sys.executable,
        "sys_path": sys.path[1:],  # without this script's own folder
        "square": b64(cloudpickle.dumps(lambda x: x * x)),
        "adder": b64(cloudpickle.dumps(make_adder(10))),
        "power": b64(cloudpickle.dumps(lambda a, b: a**b)),
        "combine": b64(cloudpickle.dumps(combine)),
        "divide": b64(cloudpickle.dumps(lambda x: 10 // x)),
        "fail_custom": b64(cloudpickle.dumps(fail_custom)),
        "printer": b64(cloudpickle.dumps(printer)),
        "register_goodbye": b64(cloudpickle.dumps(register_goodbye)),
        "context": b64(cloudpickle.dumps(context)),
        "abs": b64(cloudpickle.dumps(abs)),
        "spin": b64(cloudpickle.dumps(spin)),
        "initializer": b64(cloudpickle.dumps((initialize, ("yes",)))),
        "failing_initializer": b64(cloudpickle.dumps((failing_initializer, ()))),
        "process": b64(pickled_process()),
        "items_0_5": items(0, 1, 2, 3, 4),
        "items_pairs": items((2, 3), (3, 2), (10, 0)),
        "items_call": items(((1,), {"b": 2, "scale": 3}), ((5,), {})),
        "items_divide": items(5, 2, 0, 1),
        "items_spin_long": items(60.0),
        "items_prime_ranges": items((0, 100), (0, 1000)),
    }
    # Plain pickle: a reference to __main__.triple, which only a worker that ran the main
    # file as __mp_main__ can resolve.
    out["triple_by_reference"] = b64(pickle.dumps(triple))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

"""``python -m gilbridge script.py``: unmodified multiprocessing scripts (the seed blog
examples among them) run on the Bridge."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import CHILD_TIMEOUT

pytestmark = pytest.mark.usefixtures("host")

# Seed blog example (a): two processes started, never joined.
SEED_A = """
import multiprocessing
import time

def sleepy_man():
    print('Starting to sleep')
    time.sleep(1)
    print('Done sleeping')

tic = time.time()
p1 = multiprocessing.Process(target=sleepy_man)
p2 = multiprocessing.Process(target=sleepy_man)
p1.start()
p2.start()
toc = time.time()

print('Program finished in {:.4f} seconds'.format(toc - tic))
"""

# Seed blog example (b): three processes started in a loop, then joined.
SEED_B = """
import multiprocessing
import os
import time

def sleepy_man(sec):
    print('Starting to sleep for {} s in process {}'.format(sec, os.getpid()))
    time.sleep(sec)
    print('Done sleeping in process {}'.format(os.getpid()))

tic = time.time()
process_list = []
for i in range(3):
    p = multiprocessing.Process(target=sleepy_man, args=[1])
    p.start()
    process_list.append(p)

for process in process_list:
    process.join()

toc = time.time()
print('Done in {:.4f} seconds'.format(toc - tic))
"""


def run_gilbridge(tmp_path: Path, code: str, *args: str, name: str = "script.py",
                  timeout: float = CHILD_TIMEOUT) -> tuple[int, str, str]:
    """``python -m gilbridge <script> args``; killed by pid if it outlives ``timeout``."""
    script = tmp_path / name
    script.write_text(textwrap.dedent(code))
    proc = subprocess.Popen([sys.executable, "-m", "gilbridge", *args[:1], str(script), *args[1:]]
                            if args[:1] == ("run",) else
                            [sys.executable, "-m", "gilbridge", str(script), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_seed_a_program_finishes_before_its_children(tmp_path: Path) -> None:
    rc, out, err = run_gilbridge(tmp_path, SEED_A)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Program finished"), out
    # start() returned at once: the parent printed before either child's output.
    assert lines[1:].count("Starting to sleep") == 2 and lines[1:].count("Done sleeping") == 2


def test_seed_b_three_processes_run_in_parallel(tmp_path: Path) -> None:
    rc, out, err = run_gilbridge(tmp_path, SEED_B)
    assert rc == 0, err
    started = re.findall(r"Starting to sleep for 1 s in process (\d+)", out)
    done = re.findall(r"Done sleeping in process (\d+)", out)
    assert len(set(started)) == 3 and sorted(started) == sorted(done), out
    assert str(os.getpid()) not in started
    # How long it takes is for `python -m gilbridge compare` (workload "seed") to report.
    assert re.search(r"Done in [\d.]+ seconds", out), out


def test_the_script_sees_the_bridge_modules_and_its_arguments(tmp_path: Path) -> None:
    rc, out, err = run_gilbridge(tmp_path, """
        import sys
        import multiprocessing
        import multiprocessing.pool
        import concurrent.futures
        from multiprocessing.pool import Pool, ThreadPool
        from multiprocessing import util, shared_memory

        print("mp", multiprocessing.__name__, multiprocessing.Process.__module__)
        print("pool", Pool is multiprocessing.pool.Pool, Pool.__module__)
        print("executor", concurrent.futures.ProcessPoolExecutor.__module__)
        print("argv", sys.argv[1:], sys.argv[0].endswith("script.py"))
        with ThreadPool(2) as tp:  # the stdlib's threads, still there
            print("threads", tp.map(abs, [-1, -2]))
        sys.exit(5)
    """, "--flag", "value")
    assert rc == 5, err
    assert "mp gilbridge.multiprocessing gilbridge.multiprocessing.process" in out
    assert "pool True gilbridge.multiprocessing.pool" in out
    assert "executor gilbridge.futures" in out
    assert "argv ['--flag', 'value'] True" in out
    assert "threads [1, 2]" in out


def test_the_runner_imports_the_stdlib_modules_a_script_uses_when_it_uses_them(tmp_path: Path) -> None:
    # Start-up cost: the swap imports neither concurrent.futures, the stdlib's
    # managers/shared_memory nor either pool or sharedctypes module up front; each comes
    # (as the stdlib's, or gilbridge's module or executor) when the script imports it, in
    # any of the ways a script can, gilbridge's pool also when gilbridge imports it itself.
    rc, out, err = run_gilbridge(tmp_path, """
        import sys
        import multiprocessing

        print("before", [name for name in ("concurrent.futures", "gilbridge.futures", "multiprocessing.managers",
                                           "multiprocessing.shared_memory", "multiprocessing.pool",
                                           "gilbridge.multiprocessing.pool", "multiprocessing.sharedctypes",
                                           "gilbridge.multiprocessing.sharedctypes") if name in sys.modules])
        pool_class = multiprocessing.Pool  # gilbridge imports its pool module itself
        from multiprocessing.pool import ThreadPool, Pool
        import multiprocessing.sharedctypes
        from multiprocessing import sharedctypes
        print("pool", sys.modules["multiprocessing.pool"].__name__, Pool.__module__, ThreadPool.__module__,
              multiprocessing.pool is sys.modules["gilbridge.multiprocessing.pool"])
        print("sharedctypes", sharedctypes.__name__, sharedctypes is multiprocessing.sharedctypes,
              sharedctypes.RawArray.__module__)
        print("package", sys.modules["multiprocessing"].__name__)
        from concurrent.futures import ProcessPoolExecutor
        import concurrent.futures.process as process_module
        from multiprocessing.managers import BaseManager
        from multiprocessing import shared_memory
        import multiprocessing.dummy.connection

        print("executor", ProcessPoolExecutor.__module__, process_module.ProcessPoolExecutor is ProcessPoolExecutor)
        print("managers", BaseManager.__module__, sys.modules["multiprocessing.managers"].__file__.endswith(
            "/multiprocessing/managers.py") and "gilbridge" not in sys.modules["multiprocessing.managers"].__file__)
        print("shared_memory", shared_memory.__name__, shared_memory.SharedMemory.__module__)
        print("dummy", multiprocessing.dummy.connection.Pipe.__module__)
        try:
            multiprocessing.no_such_module
        except AttributeError as exc:
            print("missing", exc)
    """)
    assert rc == 0, err
    assert "before []" in out, out
    assert "pool gilbridge.multiprocessing.pool gilbridge.multiprocessing.pool multiprocessing.pool True" in out, out
    assert "sharedctypes gilbridge.multiprocessing.sharedctypes True gilbridge.multiprocessing.sharedctypes" in out, out
    assert "package gilbridge.multiprocessing" in out, out
    assert "executor gilbridge.futures True" in out, out
    assert "managers multiprocessing.managers True" in out, out
    assert "shared_memory multiprocessing.shared_memory multiprocessing.shared_memory" in out, out
    assert "dummy multiprocessing.dummy.connection" in out, out
    assert "missing module 'multiprocessing' has no attribute 'no_such_module'" in out, out


GUARDED = """
import concurrent.futures
import multiprocessing
import os
from dataclasses import dataclass

@dataclass
class Result:
    value: int
    pid: int

def work(x):
    return Result(x * x, os.getpid())

class CustomError(Exception):
    pass

def fails(x):
    raise CustomError(f"bad {x}")

if __name__ == "__main__":
    print("main runs once", flush=True)
    with multiprocessing.Pool(2) as pool:
        results = pool.map(work, range(6))
        print("values", [r.value for r in results], type(results[0]).__name__)
        print("lambda", pool.map(lambda x: x + 1, [1, 2]))
        try:
            pool.apply(fails, (3,))
        except CustomError as exc:
            print("caught", type(exc).__name__, exc)
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        print("executor", list(ex.map(work, [2, 3]))[0].value)
"""


def test_a_guarded_script_pool_and_executor(tmp_path: Path) -> None:
    rc, out, err = run_gilbridge(tmp_path, GUARDED, "run")
    assert rc == 0, err
    assert out.count("main runs once") == 1
    assert "values [0, 1, 4, 9, 16, 25] Result" in out
    assert "lambda [2, 3]" in out
    assert "caught CustomError bad 3" in out
    assert "executor 4" in out


def test_an_unguarded_script_pool_map(tmp_path: Path) -> None:
    rc, out, err = run_gilbridge(tmp_path, """
        import multiprocessing, os

        def square(x):
            return x * x

        print("top level", os.getpid(), flush=True)
        pool = multiprocessing.Pool(2)
        print("squares", pool.map(square, range(5)))
        pool.close()
        pool.join()
    """)
    assert rc == 0, err
    assert out.count("top level") == 1
    assert "squares [0, 1, 4, 9, 16]" in out


def test_missing_script_and_script_errors(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "gilbridge", str(tmp_path / "nope.py")],
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert proc.returncode == 2 and "can't open file" in proc.stderr
    rc, out, err = run_gilbridge(tmp_path, "raise RuntimeError('script failed')\n")
    assert rc == 1 and "RuntimeError: script failed" in err and "Traceback" in err


MANAGER_POOL = """
import multiprocessing

if __name__ == "__main__":
    with multiprocessing.Manager() as manager:
        pool = manager.Pool(2)
        print("map", pool.map(abs, [-1, -2, -3]))
        print("starmap", pool.starmap(pow, [(2, 3), (3, 2)]))
        pool.close()
        pool.join()
"""


def test_a_managers_pool_works_under_the_runner(tmp_path: Path) -> None:
    # The stdlib pool inside a Manager pickles its helpers (mapstar, starmapstar) by
    # reference to multiprocessing.pool, which the runner points at gilbridge's module.
    rc, out, err = run_gilbridge(tmp_path, MANAGER_POOL)
    assert rc == 0, err
    assert "map [1, 2, 3]" in out and "starmap [8, 9]" in out, out + err


SHAREDCTYPES_ROUTED = """
import ctypes
import multiprocessing
import multiprocessing.sharedctypes as sharedctypes
from multiprocessing.sharedctypes import RawArray, Value, synchronized

class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]

def double(counter, point, raw, guarded):
    with counter.get_lock():
        counter.value *= 2
    point.x *= 2
    raw[0] *= 2
    guarded[1] *= 2

if __name__ == "__main__":
    print("module", sharedctypes.__name__)
    counter, point = Value("i", 21), Value(Point, 3, 1.5)
    raw = RawArray("d", [1.25, 2.0])
    guarded = synchronized(RawArray("i", [5, 6]))
    p = multiprocessing.Process(target=double, args=(counter, point, raw, guarded))
    p.start()
    p.join()
    print("after", p.exitcode, counter.value, point.x, raw[0], guarded[:])
"""


def test_sharedctypes_is_the_bridges_under_the_runner(tmp_path: Path) -> None:
    # A structure is the stdlib's own ctypes object (guarded by a Bridge lock): its pickle
    # names multiprocessing.sharedctypes' stdlib functions, where gilbridge's module stands.
    rc, out, err = run_gilbridge(tmp_path, SHAREDCTYPES_ROUTED)
    assert rc == 0, err
    assert "module gilbridge.multiprocessing.sharedctypes" in out, out
    assert "after 0 42 6 2.5 [5, 12]" in out, out + err


def test_the_stdlib_module_layout_is_importable_from_gilbridge() -> None:
    import multiprocessing
    import multiprocessing.connection
    import multiprocessing.dummy
    import multiprocessing.dummy.connection
    import multiprocessing.managers
    import multiprocessing.shared_memory

    import gilbridge.multiprocessing.connection as connection
    import gilbridge.multiprocessing.context as context
    import gilbridge.multiprocessing.dummy as dummy
    import gilbridge.multiprocessing.dummy.connection as dummy_connection
    import gilbridge.multiprocessing.heap as heap
    import gilbridge.multiprocessing.managers as managers
    import gilbridge.multiprocessing.reduction as reduction
    import gilbridge.multiprocessing.shared_memory as shared_memory
    import gilbridge.multiprocessing.sharedctypes as sharedctypes
    import gilbridge.multiprocessing.util as util

    assert connection.Listener is multiprocessing.connection.Listener
    assert connection.Connection is multiprocessing.connection.Connection  # beyond __all__
    assert managers.BaseManager is multiprocessing.managers.BaseManager
    assert issubclass(managers.SyncManager, multiprocessing.managers.SyncManager)  # Bridge's
    assert shared_memory.ShareableList is multiprocessing.shared_memory.ShareableList
    assert dummy.Pool is multiprocessing.dummy.Pool
    assert dummy_connection.Pipe is multiprocessing.dummy.connection.Pipe
    assert heap.BufferWrapper is multiprocessing.heap.BufferWrapper
    assert reduction.ForkingPickler is multiprocessing.reduction.ForkingPickler
    assert util.Finalize is multiprocessing.util.Finalize
    assert context.BaseContext is multiprocessing.context.BaseContext
    assert isinstance(gilbridge_context(), context.BridgeContext)
    assert sharedctypes.rebuild_ctype is multiprocessing.sharedctypes.rebuild_ctype
    assert sharedctypes.Value is not multiprocessing.sharedctypes.Value
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        connection.nothing_here  # noqa: B018


def gilbridge_context() -> object:
    import gilbridge.multiprocessing as mp

    return mp.get_context()

"""``progress=`` on Pool.map & co. and ProcessPoolExecutor.map, against real workers.

Bars are drawn on stderr, so most checks run a child script (conftest's ``children``)
and read its stderr: tqdm's bar, the built-in text bar (tqdm made unimportable), and the
built-in bar on a real pseudo-terminal. Counting, failing reporters and signatures are
checked in this process.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import json
import multiprocessing.pool as stdlib_pool
import os
import pty
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

import gilbridge.multiprocessing as mp
from gilbridge.futures import ProcessPoolExecutor
from gilbridge.multiprocessing.pool import Pool

import _exec_targets as t
from conftest import CHILD_TIMEOUT, Children, wait_for

pytestmark = [pytest.mark.usefixtures("host"), pytest.mark.timeout(90)]

# Functions defined in a ``-c`` script travel to the workers by value (cloudpickle).
PRELUDE = """
import json, sys
import gilbridge.multiprocessing as mp
from gilbridge.futures import ProcessPoolExecutor

def square(x):
    return x * x

def add(a, b):
    return a + b

def fail_on_7(x):
    if x == 7:
        raise ValueError("bad item 7")
    return x

def sleep_for(seconds):
    import time
    time.sleep(seconds)
    return seconds
"""

# tqdm made unimportable: the built-in text bar is used.
WITHOUT_TQDM = "import sys\nsys.modules['tqdm'] = None\n"


def text_bar_line(label: str | None, n: int, total: int) -> str:
    """The start of the built-in bar's line at ``n`` of ``total``: ``label: 90%|##…| 18/20 [``."""
    percent = n * 100 // total
    filled = "#" * (n * 20 // total)
    prefix = f"{label}: " if label else ""
    return f"{prefix}{percent:3d}%|{filled:<20}| {n}/{total} ["


def run_child(children: Children, body: str, *, without_tqdm: bool = False) -> tuple[str, str]:
    """Run PRELUDE + ``body`` in a child; assert it exits 0; return (stdout, stderr)."""
    code = (WITHOUT_TQDM if without_tqdm else "") + PRELUDE + textwrap.dedent(body)
    rc, out, err = children.start(code).wait(CHILD_TIMEOUT)
    assert rc == 0, f"child failed with {rc}\nstdout:\n{out}\nstderr:\n{err}"
    return out, err


@pytest.fixture(scope="module")
def pool(bridge_host: object) -> Iterator[Pool]:
    p = mp.Pool(2)
    yield p
    p.terminate()


# --------------------------------------------------------------------------- default


def test_default_draws_nothing_and_results_match_the_stdlib(children: Children) -> None:
    out, err = run_child(children, """
        with mp.Pool(2) as pool:
            results = {
                "map": pool.map(square, range(30)),
                "map_chunked": pool.map(square, range(30), 4),
                "starmap": pool.starmap(add, [(i, i) for i in range(10)]),
                "map_async": pool.map_async(square, range(10)).get(30),
                "starmap_async": pool.starmap_async(add, [(1, 2), (3, 4)]).get(30),
                "imap": list(pool.imap(square, iter(range(20)))),
                "imap_chunked": list(pool.imap(square, iter(range(20)), 3)),
                "imap_unordered": sorted(pool.imap_unordered(square, iter(range(20)), 3)),
            }
        with ProcessPoolExecutor(2) as ex:
            results["executor_map"] = list(ex.map(add, range(10), range(10), chunksize=3))
        print(json.dumps(results))
    """)
    assert err == ""
    with stdlib_pool.ThreadPool(2) as stdlib:
        expected = {
            "map": stdlib.map(t.square, range(30)),
            "map_chunked": stdlib.map(t.square, range(30), 4),
            "starmap": stdlib.starmap(t.add, [(i, i) for i in range(10)]),
            "map_async": stdlib.map_async(t.square, range(10)).get(30),
            "starmap_async": stdlib.starmap_async(t.add, [(1, 2), (3, 4)]).get(30),
            "imap": list(stdlib.imap(t.square, iter(range(20)))),
            "imap_chunked": list(stdlib.imap(t.square, iter(range(20)), 3)),
            "imap_unordered": sorted(stdlib.imap_unordered(t.square, iter(range(20)), 3)),
        }
    with concurrent.futures.ThreadPoolExecutor(2) as stdlib_ex:
        expected["executor_map"] = list(stdlib_ex.map(t.add, range(10), range(10)))
    assert json.loads(out) == expected


def test_positional_signatures_are_the_stdlibs() -> None:
    def without_progress(signature: inspect.Signature) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in signature.parameters.values() if p.name != "progress"]

    methods = ["map", "map_async", "imap", "imap_unordered", "starmap", "starmap_async"]
    pairs = [(getattr(Pool, m), getattr(stdlib_pool.Pool, m)) for m in methods]
    pairs.append((ProcessPoolExecutor.map, concurrent.futures.ProcessPoolExecutor.map))
    for ours, stdlib in pairs:
        signature = inspect.signature(ours)
        assert without_progress(signature) == without_progress(inspect.signature(stdlib)), ours
        extra = signature.parameters["progress"]
        assert (extra.kind, extra.default) == (inspect.Parameter.KEYWORD_ONLY, False), ours


# --------------------------------------------------------------------------- bars


def test_tqdm_bar_shows_the_final_count(children: Children) -> None:
    out, err = run_child(children, """
        with mp.Pool(2) as pool:
            plain = pool.map(square, range(100), progress=True)
            labelled = pool.starmap(add, [(i, 1) for i in range(100)], 7, progress="adding")
            print(json.dumps([plain == [x * x for x in range(100)],
                              labelled == [x + 1 for x in range(100)],
                              "tqdm" in sys.modules]))
    """)
    assert json.loads(out) == [True, True, True]
    final = [line.rsplit("\r", 1)[-1] for line in err.splitlines()]
    assert any(re.match(r"100%\|.*\| 100/100 \[", line) for line in final), err
    assert any(re.match(r"adding: 100%\|.*\| 100/100 \[", line) for line in final), err


def test_builtin_bar_without_tqdm_prints_the_final_count(children: Children) -> None:
    out, err = run_child(children, """
        with mp.Pool(2) as pool:
            ok = pool.map(square, range(100), progress=True) == [x * x for x in range(100)]
            ok &= pool.map_async(square, range(40), 3, progress="async").get(30) == [x * x for x in range(40)]
            ok &= pool.map(square, [], progress="empty") == []
            print(json.dumps([ok, "tqdm" in sys.modules and sys.modules["tqdm"] is not None]))
    """, without_tqdm=True)
    assert json.loads(out) == [True, False]
    lines = err.splitlines()
    # Off a terminal the bar writes a line per LINE_INTERVAL (10 s) and one at the end.
    assert [line for line in lines if line.startswith(text_bar_line(None, 100, 100))], err
    assert [line for line in lines if line.startswith(text_bar_line("async", 40, 40))], err
    assert [line for line in lines if line.startswith("empty: 0/0 [")], err
    assert "\r" not in err


def test_builtin_bar_redraws_in_place_on_a_terminal(bridge_host: object) -> None:
    code = WITHOUT_TQDM + PRELUDE + textwrap.dedent("""
        with mp.Pool(2) as pool:
            pool.map(sleep_for, [0.02] * 40, 1, progress="tty")
        print("done", flush=True)
    """)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, env=dict(os.environ))
    os.close(slave)
    output = b""
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end of the terminal
                break
            if not data:
                break
            output += data
        stdout = proc.communicate(timeout=CHILD_TIMEOUT)[0]
    finally:
        os.close(master)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 0 and stdout == b"done\n", (proc.returncode, stdout, output)
    text = output.decode()
    assert text.startswith("\rtty:   0%|" + " " * 20 + "| 0/40 ["), text
    final = re.escape(text_bar_line("tty", 40, 40))
    assert re.search("\r" + final + r"[^\r\n]*\]\x1b\[K\r?\n$", text), text


def test_imap_of_a_generator_reports_an_unknown_total(children: Children, pool: Pool) -> None:
    out, err = run_child(children, """
        with mp.Pool(2) as pool:
            ordered = list(pool.imap(square, (x for x in range(50)), progress="ordered"))
            unordered = sorted(pool.imap_unordered(square, (x for x in range(50)), 7, progress="any"))
            print(json.dumps([ordered == [x * x for x in range(50)], unordered == sorted(ordered)]))
    """)
    assert json.loads(out) == [True, True]
    final = [line.rsplit("\r", 1)[-1] for line in err.splitlines()]
    assert any(line.startswith("ordered: 50it [") for line in final), err
    assert any(line.startswith("any: 50it [") for line in final), err

    # A reporter callable sees each completed chunk's item count.
    counts: list[int] = []
    assert list(pool.imap(t.square, (x for x in range(50)), 7, progress=counts.append)) == \
        [x * x for x in range(50)]
    assert sorted(counts) == [1] + [7] * 7
    counts.clear()
    assert sorted(pool.imap_unordered(t.square, iter(range(9)), progress=counts.append)) == \
        [x * x for x in range(9)]
    assert counts == [1] * 9


def test_a_failing_task_raises_as_before_and_the_bar_is_closed(children: Children) -> None:
    out, err = run_child(children, """
        outcome = []
        with mp.Pool(2) as pool:
            try:
                pool.map(fail_on_7, range(20), 2, progress="map")
            except ValueError as exc:
                outcome.append(str(exc))
            print("after map", file=sys.stderr, flush=True)
            results = pool.imap(fail_on_7, range(20), progress="imap")
            try:
                for _ in results:
                    pass
            except ValueError as exc:
                outcome.append(str(exc))
            slow = pool.map_async(sleep_for, [5.0] * 6, 1, progress="terminated")
            pool.terminate()
            print("after terminate", file=sys.stderr, flush=True)
            outcome.append(type(slow.get(30)).__name__ if slow.successful() else "failed")
        with ProcessPoolExecutor(2) as ex:
            try:
                list(ex.map(fail_on_7, range(20), chunksize=3, progress="executor"))
            except ValueError as exc:
                outcome.append(str(exc))
        print(json.dumps(outcome))
    """, without_tqdm=True)
    assert json.loads(out) == ["bad item 7", "bad item 7", "failed", "bad item 7"]
    lines = err.splitlines()

    def closing_lines(label: str) -> list[int]:
        return [i for i, line in enumerate(lines) if line.startswith(f"{label}: ")]

    # Each bar wrote exactly one (final) line; the failed chunk is not counted.
    assert [lines[i][:len(text_bar_line("map", 18, 20))] for i in closing_lines("map")] == \
        [text_bar_line("map", 18, 20)], err
    assert closing_lines("map")[0] < lines.index("after map")
    # imap raised at item 7 with items 0-6 counted; the terminate below may close the
    # bar before the last items arrive.
    imap_closing = closing_lines("imap")
    assert len(imap_closing) == 1, err
    counted = re.match(r"imap: +\d+%\|[# ]{20}\| (\d+)/20 \[", lines[imap_closing[0]])
    assert counted is not None and 7 <= int(counted[1]) <= 19, err
    terminated = closing_lines("terminated")
    assert len(terminated) == 1 and terminated[0] < lines.index("after terminate"), err
    assert len(closing_lines("executor")) == 1, err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- reporters


def test_executor_map_with_progress(children: Children) -> None:
    out, err = run_child(children, """
        with ProcessPoolExecutor(2) as ex:
            print(json.dumps(list(ex.map(square, range(40), chunksize=3, progress="exec"))))
    """)
    assert json.loads(out) == [x * x for x in range(40)]
    final = [line.rsplit("\r", 1)[-1] for line in err.splitlines()]
    assert any(re.match(r"exec: 100%\|.*\| 40/40 \[", line) for line in final), err

    counts: list[int] = []
    with ProcessPoolExecutor(2) as ex:
        assert list(ex.map(t.add, range(10), range(10), chunksize=4, progress=counts.append)) == \
            [2 * x for x in range(10)]
    # Counted from the futures' done callbacks, all run once shutdown() returned.
    assert sorted(counts) == [2, 4, 4]


def test_caller_owned_reporters_are_updated_not_closed(pool: Pool) -> None:
    class Reporter:
        def __init__(self) -> None:
            self.n = 0
            self.closed = False

        def update(self, n: int) -> None:
            self.n += n

        def close(self) -> None:
            self.closed = True

    reporter = Reporter()
    assert pool.map(t.square, range(25), 4, progress=reporter) == [x * x for x in range(25)]
    assert pool.starmap_async(t.add, [(1, 2)] * 5, progress=reporter).get(30) == [3] * 5
    assert (reporter.n, reporter.closed) == (30, False)


def test_a_failing_reporter_does_not_break_the_map(pool: Pool, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[int] = []

    def broken(n: int) -> None:
        calls.append(n)
        raise RuntimeError("reporter broke")

    assert pool.map(t.square, range(20), 2, progress=broken) == [x * x for x in range(20)]
    assert sorted(pool.imap_unordered(t.square, range(6), progress=broken)) == [x * x for x in range(6)]
    err = capsys.readouterr().err
    # Disabled after its first failure, once per job, with one line each.
    assert len(calls) == 2
    assert err.count("gilbridge: progress reporting failed") == 2, err
    assert "reporter broke" in err


def test_a_value_of_another_kind_is_a_type_error(pool: Pool) -> None:
    with pytest.raises(TypeError, match="progress must be"):
        pool.map(t.square, range(3), progress=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress must be"):
        pool.imap(t.square, range(3), progress=object())  # type: ignore[arg-type]
    with ProcessPoolExecutor(1) as ex:
        with pytest.raises(TypeError, match="progress must be"):
            ex.map(t.square, range(3), progress=2.5)  # type: ignore[arg-type]
    # Nothing was left behind: the pool still maps, and no job is pending.
    assert pool.map(t.square, range(3)) == [0, 1, 4]
    assert wait_for(lambda: not pool._cache, timeout=10)

"""CPython's own multiprocessing tests, run against the stdlib and against gilbridge.

    .venv/bin/python tests/conformance/cpython_suite.py [--classes A,B | --quick]
        [--timeout SECONDS] [--json FILE]

Loads ``test._test_multiprocessing`` (Debian package ``libpython3.11-testsuite``) the way
CPython's ``test_multiprocessing_spawn`` does, and runs each selected test class twice,
each time in a fresh interpreter with a time limit: ``python driver`` (the stdlib) and
``python -m gilbridge driver`` (the module's ``import multiprocessing`` is gilbridge's).
Prints, per class, the tests passed beside the tests run for each, then the totals; a
class that outlives its time limit is killed by PID and counted as timed out.

``--quick`` runs a small set (CI); the default is every processes-type class and the
manager-type ones (what issue 9 tracks). Exit status: 0 when the run completed (whatever
the counts), 2 when the test suite is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

PROCESS_CLASSES: Final = (
    "Process", "SubclassingProcess", "Queue", "Lock", "Semaphore", "Condition", "Event",
    "Barrier", "Value", "Array", "Pool", "PoolWorkerErrors", "PoolWorkerLifetime",
    "Connection", "Listener", "ListenerClient", "Poll", "PollEintr", "PicklingConnections",
    "SharedCTypes", "SharedMemory", "Heap", "Finalize", "Logging",
)
MANAGER_CLASSES: Final = (
    "Containers", "MyManager", "RemoteManager", "ManagerRestart", "Queue", "Lock",
    "Semaphore", "Condition", "Event", "Barrier", "Pool",
)
# Classes gilbridge passes whole today: CI runs them (tests/python/test_cpython_suite.py).
QUICK: Final = ("WithProcessesTestLock", "WithProcessesTestSemaphore", "WithProcessesTestEvent",
                 "WithProcessesTestCondition", "WithProcessesTestQueue",
                 "WithProcessesTestPicklingConnections", "WithProcessesTestValue",
                 "WithProcessesTestSharedCTypes", "WithProcessesTestConnection",
                 "WithProcessesTestFinalize", "WithManagerTestEvent")
MARKER: Final = "CPYTHON-SUITE-RESULT "

# The test classes live in a real module (children unpickle their targets from it), built
# as CPython's test_multiprocessing_spawn builds its own.
SUITE_MODULE: Final = '''\
import test._test_multiprocessing

test._test_multiprocessing.install_tests_in_module_dict(globals(), "spawn")
'''

DRIVER: Final = '''\
import json, sys, unittest

def main(names):
    import cpython_mp_suite as module
    loader = unittest.TestLoader()
    tests = unittest.TestSuite(loader.loadTestsFromName(name, module) for name in names)
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=1).run(tests)
    bad = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print(%r + json.dumps({
        "run": result.testsRun, "skipped": len(result.skipped),
        "passed": max(result.testsRun - bad - len(result.skipped), 0),
        "failed": [test.id().rsplit(".", 1)[-1] for test, _ in result.failures + result.errors],
    }), flush=True)

if __name__ == "__main__":
    main(sys.argv[1:])
''' % MARKER


def all_classes() -> list[str]:
    return ([f"WithProcessesTest{name}" for name in PROCESS_CLASSES]
            + [f"WithManagerTest{name}" for name in MANAGER_CLASSES])


def run_class(driver: Path, name: str, bridge: bool, timeout: float) -> dict[str, Any]:
    """One class in a fresh interpreter (its own process group, killed by PID when it
    outlives ``timeout``)."""
    command = [sys.executable, *(["-m", "gilbridge"] if bridge else []), str(driver), name]
    start = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            cwd=driver.parent)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"timed_out": True, "seconds": timeout}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for line in out.splitlines():
        if line.startswith(MARKER):
            outcome: dict[str, Any] = json.loads(line[len(MARKER):])
            outcome["seconds"] = round(time.monotonic() - start, 1)
            return outcome
    return {"crashed": proc.returncode, "seconds": round(time.monotonic() - start, 1),
            "stderr": err.strip().splitlines()[-5:]}


def cell(outcome: dict[str, Any]) -> str:
    if outcome.get("timed_out"):
        return f"timed out ({outcome['seconds']:.0f} s)"
    if "crashed" in outcome:
        return f"crashed ({outcome['crashed']})"
    if outcome["run"] == 0 and outcome["failed"]:
        return outcome["failed"][0].split(" ")[0] + " failed"
    return f"{outcome['passed']}/{outcome['run'] - outcome['skipped']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", help="comma-separated class names (WithProcessesTestLock, ...)")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--timeout", type=float, default=300.0, help="per class and contender (300 s)")
    parser.add_argument("--json", type=Path, help="also write every outcome here")
    args = parser.parse_args(argv)
    try:
        import test._test_multiprocessing  # noqa: F401
    except ImportError:
        print("cpython_suite: test._test_multiprocessing is missing: apt-get install libpython3.11-testsuite",
              file=sys.stderr)
        return 2
    names = args.classes.split(",") if args.classes else list(QUICK) if args.quick else all_classes()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cpython-suite-") as directory:
        driver = Path(directory) / "driver.py"
        driver.write_text(DRIVER, encoding="utf-8")
        (Path(directory) / "cpython_mp_suite.py").write_text(SUITE_MODULE, encoding="utf-8")
        print(f"{'class':<40} {'stdlib':>18} {'gilbridge':>18}")
        for name in names:
            stdlib = run_class(driver, name, bridge=False, timeout=args.timeout)
            bridge = run_class(driver, name, bridge=True, timeout=args.timeout)
            rows.append({"class": name, "stdlib": stdlib, "gilbridge": bridge})
            print(f"{name:<40} {cell(stdlib):>18} {cell(bridge):>18}", flush=True)

    def total(key: str) -> tuple[int, int]:
        done = [row[key] for row in rows if "passed" in row[key]]
        return sum(o["passed"] for o in done), sum(o["run"] - o["skipped"] for o in done)

    (sp, sr), (bp, br) = total("stdlib"), total("gilbridge")
    print(f"{'total (passed/run, not skipped)':<40} {f'{sp}/{sr}':>18} {f'{bp}/{br}':>18}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

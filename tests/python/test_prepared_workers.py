"""Warm workers prepared with a session's environment (its sys.path, cwd, variables and
main module), so that the session's later pools and Processes start without running the
main module again: each worker runs it exactly once (also when it serves several pools
in turn), what it prints reaches the parent, and no prepared worker outlives its session."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import CHILD_TIMEOUT, run_script, wait_for

pytestmark = pytest.mark.usefixtures("host")

SCRIPT = """
    import os, sys, time
    import gilbridge.multiprocessing as mp

    print(f"top-level {os.getpid()} {__name__}", flush=True)
    if __name__ == "__mp_main__":
        # Every worker that runs this module leaves its pid behind.
        open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()

    def whoami():
        return os.getpid()

    if __name__ == "__main__":
        pool_pids = []
        for _ in range(4):
            with mp.Pool(1) as pool:
                pool_pids.append(pool.apply(whoami))
            time.sleep(1.0)  # the host prepares replacements meanwhile
        for _ in range(3):
            p = mp.Process(target=whoami)
            p.start()
            p.join()
            assert p.exitcode == 0, p.exitcode
            time.sleep(0.5)
        print("pool pids", *pool_pids, flush=True)
"""


def _alive(pid: int) -> bool:
    from gilbridge._host import pid_alive

    return pid_alive(pid)


def test_each_worker_runs_the_main_module_once_and_none_outlives_the_session(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    rc, out, err = run_script(tmp_path, SCRIPT, str(marks), timeout=CHILD_TIMEOUT * 2)
    assert rc == 0, err
    lines = out.splitlines()
    pool_pids = [int(p) for p in lines[-1].split()[2:]]
    # Pools reuse the session's workers (a released worker serves the next pool).
    assert len(pool_pids) == 4 and len(set(pool_pids)) < 4, lines[-1]
    for pid in set(pool_pids):
        # Ran the main module once (prepared ahead or at assignment, never both), and
        # what it printed then reached this parent's stdout.
        assert lines.count(f"top-level {pid} __mp_main__") == 1, out
    # Workers that ran the main module (some prepared and never used) are gone once the
    # session has ended.
    ran_main = [int(p.name) for p in marks.iterdir()]
    assert set(pool_pids) <= set(ran_main)
    assert wait_for(lambda: not any(_alive(pid) for pid in ran_main), timeout=15), \
        [pid for pid in ran_main if _alive(pid)]


QUICK_EXIT = """
    import os, sys, time
    import gilbridge.multiprocessing as mp

    if __name__ == "__mp_main__":
        open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()

    def whoami():
        return os.getpid()

    if __name__ == "__main__":
        for _ in range(2):  # two bursts: the second asks the host to prepare workers
            with mp.Pool(1) as pool:
                pool.apply(whoami)
            time.sleep(1.2)
        with mp.Pool(1) as pool:
            pool.apply(whoami)
        # Exit at once: the host's top-up of prepared workers is still pending.
"""


def test_a_top_up_pending_when_the_session_ends_prepares_nothing(tmp_path: Path) -> None:
    import time

    marks = tmp_path / "marks"
    marks.mkdir()
    rc, _, err = run_script(tmp_path, QUICK_EXIT, str(marks))
    assert rc == 0, err
    time.sleep(3)  # a worker launched by a late top-up would have prepared (and marked) by now
    ran_main = [int(p.name) for p in marks.iterdir()]
    assert wait_for(lambda: not any(_alive(pid) for pid in ran_main), timeout=15), \
        [pid for pid in ran_main if _alive(pid)]

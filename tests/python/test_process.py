"""Process on real Bridge workers: exit codes, signals, pids, the child's view of itself,
output forwarding, exit-time behaviour, C# kernels as targets, start methods."""

from __future__ import annotations

import multiprocessing.connection
import os
import signal
import time
from pathlib import Path

import pytest

import gilbridge
import gilbridge.multiprocessing as mp

import _exec_targets as t
from conftest import CHILD_TIMEOUT, run_script, wait_for

pytestmark = pytest.mark.usefixtures("host")


def _alive(pid: int) -> bool:
    from gilbridge._host import pid_alive

    return pid_alive(pid)


# --------------------------------------------------------------------------- exit codes


def test_exit_codes_and_traceback_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    ok = mp.Process(target=t.square, args=(3,))
    assert ok.exitcode is None and ok.pid is None
    ok.start()
    ok.join(30)
    assert ok.exitcode == 0

    three = mp.Process(target=t.exit_with, args=(3,))
    three.start()
    three.join(30)
    assert three.exitcode == 3

    failing = mp.Process(target=t.raise_runtime, name="Failing-1")
    failing.start()
    failing.join(30)
    assert failing.exitcode == 1
    # The child's stderr arrives before its exit (one ordered event stream).
    err = capfd.readouterr().err
    assert "Process Failing-1:" in err and "RuntimeError: child failed on purpose" in err


def test_terminate_and_kill_exit_codes_and_real_pids() -> None:
    p = mp.Process(target=time.sleep, args=(60,))
    p.start()
    assert p.pid != os.getpid() and p.pid == p.ident
    os.kill(p.pid, 0)  # a real process of this machine
    assert p.is_alive() and p.exitcode is None
    p.join(0.1)
    assert p.exitcode is None
    with pytest.raises(ValueError, match="still running"):
        p.close()
    p.terminate()
    p.join(30)
    assert p.exitcode == -signal.SIGTERM
    assert not p.is_alive()
    assert wait_for(lambda: not _alive(p.pid), timeout=10)
    assert "exitcode=-SIGTERM" in repr(p)  # the stdlib's format
    p.close()
    with pytest.raises(ValueError, match="closed"):
        p.exitcode

    k = mp.Process(target=time.sleep, args=(60,))
    k.start()
    k.kill()
    k.join(30)
    assert k.exitcode == -signal.SIGKILL


def test_start_returns_before_a_cold_worker_runs_and_terminate_reaches_it() -> None:
    # More Processes at once than warm workers: some start() calls return while their
    # worker is still starting, as the stdlib's returns once the child is spawned.
    # terminate() then reaches the starting worker too, and join() sees -SIGTERM.
    processes = [mp.Process(target=time.sleep, args=(60,)) for _ in range(6)]
    for p in processes:
        p.start()
        assert p.pid > 0 and p.exitcode is None
    for p in processes:
        p.terminate()
    for p in processes:
        p.join(30)
    assert [p.exitcode for p in processes] == [-signal.SIGTERM] * 6
    assert wait_for(lambda: not any(_alive(p.pid) for p in processes), timeout=10)


def test_sentinel_and_active_children() -> None:
    p = mp.Process(target=time.sleep, args=(0.5,))
    with pytest.raises(ValueError, match="not started"):
        p.sentinel
    p.start()
    assert p in mp.active_children()
    assert multiprocessing.connection.wait([p.sentinel], timeout=0) == []
    ready = multiprocessing.connection.wait([p.sentinel], timeout=30)
    assert ready == [p.sentinel]
    assert p.exitcode == 0
    assert p not in mp.active_children()  # finished children are forgotten
    with pytest.raises(AssertionError, match="twice"):
        p.start()


def test_child_sees_itself_and_its_parent() -> None:
    q = mp.Queue()
    p = mp.Process(target=t.child_report, args=(q,), name="Reporter")
    p.start()
    p.join(30)
    name, pid_attr, getpid, parent_pid, parent_name = q.get(timeout=10)
    assert p.exitcode == 0
    assert name == "Reporter" and pid_attr == getpid == p.pid
    assert parent_pid == os.getpid() and parent_name == mp.current_process().name


def test_subclass_overriding_run_and_lambda_targets() -> None:
    q = mp.Queue()
    # (in _exec_targets: importing a test module in a worker would run conftest there)
    p = t.Squarer(q, 7)
    p.start()
    p.join(30)
    assert p.exitcode == 0 and q.get(timeout=10) == 49
    x = 5
    lam = mp.Process(target=lambda: q.put(x + 1))
    lam.start()
    lam.join(30)
    assert q.get(timeout=10) == 6


def test_kernel_as_process_target() -> None:
    p = mp.Process(target=gilbridge.dotnet("Bridge.Kernels.Primes.Count"), args=(0, 10_000))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    bad = mp.Process(target=gilbridge.dotnet("Bridge.Kernels.Timing.Sleep"), args=(-1.0,))
    bad.start()
    bad.join(60)
    assert bad.exitcode == 1  # DotnetError raised in the child


def test_start_methods_are_recorded() -> None:
    assert mp.get_all_start_methods() == ["fork", "spawn", "forkserver"]
    ctx = mp.get_context("spawn")
    assert ctx.get_start_method() == "spawn"
    with pytest.raises(ValueError):
        mp.get_context("threads")
    with pytest.raises(ValueError):
        ctx.set_start_method("fork")
    q = ctx.Queue()
    p = ctx.Process(target=t.put_items, args=(q, 1, 1))
    p.start()
    p.join(30)
    assert p.exitcode == 0 and q.get(timeout=10) == (1, 0)
    assert isinstance(p, mp.Process)


# --------------------------------------------------------------------------- as a script


def test_child_output_and_traceback_reach_the_parent_streams(tmp_path: Path) -> None:
    rc, out, err = run_script(tmp_path, """
        import sys
        import gilbridge.multiprocessing as mp

        def talk():
            print("hello from the child", mp.current_process().name)
            print("warning from the child", file=sys.stderr)

        def fail():
            raise KeyError("boom in child")

        if __name__ == "__main__":
            p = mp.Process(target=talk, name="Talker")
            p.start(); p.join()
            q = mp.Process(target=fail)
            q.start(); q.join()
            print("exitcodes", p.exitcode, q.exitcode)
    """)
    assert rc == 0, err
    assert "hello from the child Talker" in out
    assert "warning from the child" in err
    assert "exitcodes 0 1" in out
    assert "Traceback" in err and "KeyError: 'boom in child'" in err and "in fail" in err


def test_non_daemon_children_are_joined_and_daemons_terminated_at_exit(tmp_path: Path) -> None:
    rc, out, err = run_script(tmp_path, """
        import time
        import gilbridge.multiprocessing as mp

        def late():
            time.sleep(1.0)
            print("non-daemon child finished", flush=True)

        if __name__ == "__main__":
            d = mp.Process(target=time.sleep, args=(60,), daemon=True)
            d.start()
            p = mp.Process(target=late)
            p.start()
            print("DAEMON", d.pid, flush=True)
            print("main done", flush=True)
    """)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines.index("main done") < lines.index("non-daemon child finished")
    daemon_pid = int(next(line for line in lines if line.startswith("DAEMON")).split()[1])
    assert wait_for(lambda: not _alive(daemon_pid), timeout=10)


def test_ctrl_c_while_joining_terminates_the_child(tmp_path: Path) -> None:
    started = time.monotonic()
    rc, out, err = run_script(tmp_path, """
        import time
        import gilbridge.multiprocessing as mp

        if __name__ == "__main__":
            p = mp.Process(target=time.sleep, args=(60,))
            p.start()
            print("CHILD", p.pid, flush=True)
            p.join()
    """, signal_after=("CHILD", signal.SIGINT), timeout=20)
    assert rc != 0 and "KeyboardInterrupt" in err
    assert time.monotonic() - started < 15
    pid = int(out.split()[1])
    assert wait_for(lambda: not _alive(pid), timeout=10)


def test_main_functions_and_unguarded_scripts(tmp_path: Path) -> None:
    # No __main__ guard (fine with fork): workers must not re-run the script.
    rc, out, err = run_script(tmp_path, """
        import os
        import gilbridge.multiprocessing as mp

        print("script top level", os.getpid(), flush=True)

        def child(q):
            q.put(os.getpid())

        q = mp.Queue()
        p = mp.Process(target=child, args=(q,))
        p.start(); p.join()
        print("child ran", q.get(timeout=10) == p.pid, p.exitcode)
    """)
    assert rc == 0, err
    assert out.count("script top level") == 1
    assert "child ran True 0" in out


def test_releasing_a_finished_process_closes_only_its_own_descriptors() -> None:
    # The write end of the sentinel pipe is closed when the child exits; its number is
    # then free for the next pipe. Collecting the Process must not close that one too.
    p = mp.Process(target=t.pid_of)
    p.start()
    p.join(timeout=CHILD_TIMEOUT)
    assert p.exitcode == 0
    read_fd, write_fd = os.pipe()
    try:
        p._popen._fd_finalizer()  # what garbage collection of the Process runs
        os.write(write_fd, b"x")
        assert os.read(read_fd, 1) == b"x"
    finally:
        os.close(read_fd)
        os.close(write_fd)


def _write_shared(target: object, data: bytes) -> None:
    from multiprocessing import shared_memory

    shm = target if isinstance(target, shared_memory.SharedMemory) else shared_memory.SharedMemory(target)
    shm.buf[:len(data)] = data
    shm.close()


def test_a_shared_memory_segment_outlives_the_processes_that_attach_to_it() -> None:
    # Each Process's worker exits after it; attaching must not hand the client's
    # segment to that worker's resource tracker, which would unlink it (bpo-39959).
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(create=True, size=64)
    try:
        for target, data in ((shm.name, b"howdy"), (shm, b"HELLO"), (shm.name, b"third")):
            p = mp.Process(target=_write_shared, args=(target, data))
            p.start()
            p.join(CHILD_TIMEOUT)
            assert p.exitcode == 0
            assert bytes(shm.buf[:5]) == data
    finally:
        shm.close()
        shm.unlink()


def test_a_child_gets_the_multiprocessing_loggers_level_as_with_spawn() -> None:
    import logging
    from multiprocessing import util

    logger = util.get_logger()
    saved = logger.level
    try:
        for level in (32, 17):
            logger.setLevel(level)
            reader, writer = multiprocessing.Pipe(duplex=False)
            p = mp.Process(target=t.send_log_level, args=(writer,))
            p.start()
            writer.close()
            assert reader.poll(CHILD_TIMEOUT)
            assert reader.recv() == level
            p.join(CHILD_TIMEOUT)
            assert p.exitcode == 0
    finally:
        logger.setLevel(saved or logging.NOTSET)

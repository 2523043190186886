"""Workers are the client's own interpreter with .NET loaded into it, and pools reuse them.

A worker process is this interpreter's executable (no libpython of its own) running
Python tasks and C# kernels side by side; a closed (or idly terminated) pool's workers
serve the session's next pool; maxtasksperchild, a crash and terminate() during a task
mean fresh processes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import gilbridge
import gilbridge.multiprocessing as mp

from conftest import CHILD_TIMEOUT, run_script, wait_for

pytestmark = pytest.mark.usefixtures("host")

PRIMES = gilbridge.dotnet("Bridge.Kernels.Primes.Count")


def _alive(pid: int) -> bool:
    from gilbridge._host import pid_alive

    return pid_alive(pid)


def _mapped(pid: int) -> str:
    with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
        return maps.read()


def test_a_worker_is_this_interpreter_with_dotnet_and_no_libpython_of_its_own() -> None:
    with mp.Pool(1) as pool:
        pid = pool.apply(os.getpid)
        # Python tasks and C# kernels in the same pool, on the same worker.
        assert pool.apply(PRIMES, (0, 100)) == 25
        assert pool.apply(os.getpid) == pid
        assert os.readlink(f"/proc/{pid}/exe") == os.path.realpath(sys.executable)
        worker_maps = _mapped(pid)
        assert "libcoreclr.so" in worker_maps
        own = {line.split()[-1] for line in _mapped(os.getpid()).splitlines() if "libpython" in line}
        extra = {line.split()[-1] for line in worker_maps.splitlines() if "libpython" in line} - own
        assert not extra, extra
        # Tasks run on the interpreter's main thread, as in a spawned child.
        assert pool.apply(_on_main_thread) is True


def _on_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


REUSE = """
    import os, sys, time
    import gilbridge
    import gilbridge.multiprocessing as mp

    def pid(_=None):
        return os.getpid()

    def crash(_=None):
        os._exit(3)

    if __name__ == "__main__":
        p = mp.Pool(2)
        first = sorted(p.worker_pids)
        assert set(p.map(pid, range(8), chunksize=1)) <= set(first)
        p.close()
        p.join()
        for x in first:
            os.kill(x, 0)  # raises if the worker is gone
        print("alive after join", flush=True)
        with mp.Pool(2) as q:  # __exit__ terminates: its idle workers leave alive
            second = sorted(q.worker_pids)
            q.map(pid, range(4))
        # No pause: the next pool waits for the releases __exit__ left in flight rather
        # than take other workers (and have the host launch replacements).
        cycles = set()
        for _ in range(5):
            with mp.Pool(2) as r:
                third = sorted(r.worker_pids)
                r.map(pid, range(4))
            cycles.add(tuple(third))
        print("pids", first, second, third, flush=True)
        print("cycles", len(cycles), flush=True)

        s = mp.Pool(1)
        busy = s.apply(pid)
        s.apply_async(time.sleep, (30,))
        time.sleep(0.5)
        s.terminate()  # kills the worker running the sleep

        m = mp.Pool(1, maxtasksperchild=1)
        retired = m.apply(pid)
        m.close()
        m.join()

        k = mp.Pool(1)
        crashed = k.apply(pid)
        try:
            k.apply(crash)
        except gilbridge.BrokenProcessPool:
            pass
        k.terminate()
        # Checked while this session lives (a returned worker would live until it ends).
        deadline = time.monotonic() + 15
        for x in (busy, retired, crashed):
            while time.monotonic() < deadline:
                try:
                    os.kill(x, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                print("still running", x, flush=True)
        print("ended", busy, retired, crashed, flush=True)
"""


def test_pools_reuse_workers_except_after_terminate_mid_task_maxtasksperchild_or_a_crash(tmp_path: Path) -> None:
    rc, out, err = run_script(tmp_path, REUSE, timeout=CHILD_TIMEOUT * 2)
    assert rc == 0, err
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line}
    assert "alive" in lines, out
    pids = " ".join(lines["pids"]).replace("[", "").replace("]", "").replace(",", "").split()
    first, second, third = pids[0:2], pids[2:4], pids[4:6]
    assert first == second == third, out
    assert lines["cycles"] == ["1"], out
    # Each of those workers was gone while the session still lived: not reused.
    assert "still" not in lines, out
    assert len(set(lines["ended"])) == 3, out
    # The session's workers end with it.
    assert wait_for(lambda: not any(_alive(int(pid)) for pid in first), timeout=15), first


CYCLES = """
    import os
    import gilbridge.multiprocessing as mp

    def pid(_=None):
        return os.getpid()

    if __name__ == "__main__":
        for _ in range(8):
            with mp.Pool(2) as pool:  # __exit__ terminates: releases still in flight
                print("pids", *sorted(pool.worker_pids), *sorted(set(pool.map(pid, range(4)))), flush=True)
"""


def test_pools_made_back_to_back_get_the_workers_the_last_one_released(tmp_path: Path) -> None:
    """A script's next `with Pool(2)` comes while the last one's releases are in flight:
    the host waits for them instead of taking other workers (an unprepared one applies
    the environment on the pool's time; the host then launches replacements). Before,
    such a loop rotated over five worker processes."""
    rc, out, err = run_script(tmp_path, CYCLES)
    assert rc == 0, err
    cycles = [tuple(line.split()[1:3]) for line in out.splitlines() if line.startswith("pids")]
    assert len(cycles) == 8, out
    # The first pool may take whatever warm workers there are; from then on the same two.
    assert len(set(cycles[1:])) == 1, out


def test_an_idle_pools_terminate_unanswered_is_named_in_the_next_create_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaving `with Pool(n)` with nothing running sends TerminatePool without waiting
    for the answer; the process's next CreatePool names that pool while its answer is
    outstanding (ends_pools), so the host ends it first and the new pool gets its
    workers (the back-to-back test above checks the pids, in a session of its own)
    without the caller waiting here."""
    import threading

    from gilbridge import _execution, _poolcore

    with mp.Pool(2) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]
    pending = _execution.runtime().pending_terminations
    assert len(pending) == 1  # sent, its answer not waited for
    pool_id, future, answered = pending[0]
    assert future.result(timeout=10) is not None  # the host answers it
    # As if the answer were still on its way: the next pool names it.
    still_waiting = threading.Event()
    pending[0] = (pool_id, future, still_waiting)
    named: list[list[str]] = []
    create_pool = _poolcore.create_pool

    def recording(conn: object, request: object) -> object:
        info = create_pool(conn, request)
        named.append(list(request.ends_pools))  # type: ignore[attr-defined]
        return info

    monkeypatch.setattr(_poolcore, "create_pool", recording)
    with mp.Pool(2) as pool:
        assert named == [[pool_id]]
        assert pool.map(abs, [-3]) == [3]
    still_waiting.set()
    # Answered ones are not named again.
    with mp.Pool(2) as pool:
        assert pool_id not in named[-1]


ORDER = """
    import gilbridge.multiprocessing as mp

    def shout(i):
        print(f"inside {i}", flush=True)
        return i

    if __name__ == "__main__":
        with mp.Pool(2) as pool:
            for i in range(20):
                print(f"result {pool.apply(shout, (i,))}", flush=True)
"""


def test_a_tasks_output_arrives_before_its_result(tmp_path: Path) -> None:
    """A direct pool's worker sends what a task prints on the same socket as its result,
    before it: the caller's terminal shows them in the order a task produced them."""
    rc, out, err = run_script(tmp_path, ORDER)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines == [line for i in range(20) for line in (f"inside {i}", f"result {i}")], out


def test_close_then_join_right_after_submitting_delivers_every_result() -> None:
    """close() and join() right after a map of many one-item chunks, pool after pool:
    every result arrives (the workers' last results travel on their data sockets while the
    pool's end is reported by the host). The pool is closed at the host only once its
    chunks are answered, so a release cannot overtake a chunk still in a worker's socket;
    that race was not seen here without the wait (the socket wins), so this checks the
    outcome, not the race."""
    import _exec_targets as t

    for _ in range(15):
        pool = mp.Pool(2)
        result = pool.map_async(t.square, range(120), chunksize=1)
        pool.close()
        pool.join()
        assert result.get(timeout=10) == [x * x for x in range(120)]


OWN_COPY = """
import sys
sys.path.insert(0, sys.argv[1])
import gilbridge
import gilbridge.multiprocessing as mp


def where():
    import gilbridge
    return gilbridge.__file__, getattr(gilbridge, "COPY_MARKER", None)


if __name__ == "__main__":
    assert gilbridge.COPY_MARKER == "copy", gilbridge.__file__
    with mp.Pool(2) as pool:
        print("POOL", *pool.apply(where))
    p = mp.Process(target=print, args=("PROCESS", where()[1]))
    p.start()
    p.join()
    print("EXIT", p.exitcode)
"""


def _marked_copy_of_gilbridge(tmp_path: Path) -> Path:
    """A copy of this gilbridge under tmp_path/copy, whose package sets COPY_MARKER."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(Path(gilbridge.__file__).parent, copy / "gilbridge",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "gilbridge" / "__init__.py", "a", encoding="utf-8") as init:
        init.write('\nCOPY_MARKER = "copy"\n')
    return copy


def test_workers_import_gilbridge_from_the_clients_sys_path_not_their_own(tmp_path: Path) -> None:
    # Warm workers import gilbridge early from the interpreter's own sys.path; a client
    # whose sys.path finds another copy (a checkout on PYTHONPATH) must get that copy.
    copy = _marked_copy_of_gilbridge(tmp_path)
    rc, out, err = run_script(tmp_path, OWN_COPY, str(copy))
    assert rc == 0, err
    assert f"POOL {copy / 'gilbridge' / '__init__.py'} copy" in out, out
    assert "PROCESS copy" in out, out
    assert "EXIT 0" in out, out


def test_a_copy_with_other_protocol_messages_leaves_the_workers_gilbridge_loaded(tmp_path: Path) -> None:
    # The same, but the copy's generated messages differ from the ones the warm workers
    # registered (a newer checkout, an upgrade while the host runs): protobuf keeps one
    # definition per file in a process, so a worker keeps the gilbridge it loaded
    # instead of failing its preparation with "already in the pool" (which, before,
    # reached the script's stderr and stopped the host preparing workers for it).
    from google.protobuf import descriptor_pb2

    from gilbridge._proto.bridge.v1 import execution_pb2

    copy = _marked_copy_of_gilbridge(tmp_path)
    generated = copy / "gilbridge" / "_proto" / "bridge" / "v1" / "execution_pb2.py"
    original = execution_pb2.DESCRIPTOR.serialized_pb
    file_proto = descriptor_pb2.FileDescriptorProto.FromString(original)
    file_proto.message_type.add(name="AddedInTheCopy")
    lines = generated.read_text(encoding="utf-8").splitlines(keepends=True)
    registering = [i for i, line in enumerate(lines) if "AddSerializedFile(" in line]
    assert len(registering) == 1, registering
    lines[registering[0]] = (f"DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
                             f"{file_proto.SerializeToString()!r})\n")
    generated.write_text("".join(lines), encoding="utf-8")

    rc, out, err = run_script(tmp_path, OWN_COPY.replace('assert gilbridge.COPY_MARKER == "copy", gilbridge.__file__', ""),
                              str(copy))
    assert rc == 0, err
    assert "already in the pool" not in err, err
    worker_copy = str(Path(gilbridge.__file__))
    assert f"POOL {worker_copy} None" in out, out
    assert "PROCESS copy" in out, out  # the client's own value, printed by the Process
    assert "EXIT 0" in out, out


def _worker_children(host_pid: int) -> list[int]:
    """The host's child processes that are Python workers (bridge_worker.py)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == host_pid and b"bridge_worker.py" in command:
            pids.append(int(entry))
    return pids


def test_warm_workers_grow_to_a_burst_and_shrink_back_when_idle(tmp_path_factory: pytest.TempPathFactory,
                                                                children) -> None:
    from conftest import start_host, stop_host

    host = start_host(Path(tmp_path_factory.mktemp("shrink")), "--Bridge:IdleWorkerSeconds=6",
                      f"--Bridge:PrewarmPythonExecutable={sys.executable}")
    try:
        assert wait_for(lambda: len(_worker_children(host.pid)) == 2, timeout=30)
        # Four Processes at once: the interpreter's warm workers grow to four.
        out = children.run(
            """
            import time
            import gilbridge.multiprocessing as mp
            if __name__ == "__main__":
                ps = [mp.Process(target=time.sleep, args=(0.2,)) for _ in range(4)]
                for p in ps:
                    p.start()
                for p in ps:
                    p.join(60)
                assert [p.exitcode for p in ps] == [0] * 4
                print(*[p.pid for p in ps])
            """,
            env={"GILBRIDGE_ADDRESS": host.address},
        )
        process_workers = {int(pid) for pid in out.split()}
        assert wait_for(lambda: not process_workers & set(_worker_children(host.pid)), timeout=30)
        assert wait_for(lambda: len(_worker_children(host.pid)) == 4, timeout=30), _worker_children(host.pid)
        # Unused for IdleWorkerSeconds: back to WarmWorkers (2).
        assert wait_for(lambda: len(_worker_children(host.pid)) == 2, timeout=45), _worker_children(host.pid)
        host.assert_alive()
    finally:
        stop_host(host)

"""Proxies pickle: stdlib spawn/fork children and unrelated programs attach to the same
host objects; the last proxy collected in a process detaches."""

from __future__ import annotations

import gc
import multiprocessing as stdlib_mp
import os
import pickle
import time

import pytest

import gilbridge.multiprocessing as mp

import _children
from conftest import REAP_FORKED_CHILD, wait_for

pytestmark = pytest.mark.usefixtures("host")


def make_objects() -> dict[str, object]:
    return {
        "lock": mp.Lock(),
        "rlock": mp.RLock(),
        "sem": mp.Semaphore(1),
        "event": mp.Event(),
        "cond": mp.Condition(),
        "barrier": mp.Barrier(2),
        "queue": mp.Queue(),
        "jq": mp.JoinableQueue(),
        "results": mp.SimpleQueue(),
        "counter": mp.Value("i", 0),
        "array": mp.Array("i", 3),
    }


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_stdlib_children_use_pickled_proxies(method: str) -> None:
    objs = make_objects()
    objs["jq"].put("task")  # type: ignore[attr-defined]
    blob = pickle.dumps(objs)
    ctx = stdlib_mp.get_context(method)
    proc = ctx.Process(target=_children.use_everything, args=(objs, blob))
    proc.start()
    try:
        assert objs["barrier"].wait(60) in (0, 1)  # type: ignore[attr-defined]
        assert objs["event"].wait(30)  # type: ignore[attr-defined]
        proc.join(30)
        assert proc.exitcode == 0
        q = objs["queue"]
        # Two proxies in the child, each with its own feeder (as two unpickled stdlib
        # Queues have): both items arrive, in no promised order.
        got = sorted([q.get(timeout=10), q.get(timeout=10)])  # type: ignore[attr-defined]
        assert got == [("again", proc.pid), ("hello", proc.pid)]
        assert objs["results"].get() == ("jq item", "task")  # type: ignore[attr-defined]
        objs["jq"].join()  # type: ignore[attr-defined]
        assert objs["counter"].value == 1  # type: ignore[attr-defined]
        assert objs["array"][:] == [42, 43, 0]  # type: ignore[attr-defined]
        # The child's session ended (its Goodbye; on a starved machine, where that call
        # can outlast its 5 s limit, the 5 s lease): the host gave back the semaphore
        # unit it still held (sessions.proto), so the value is 1 again.
        assert wait_for(lambda: objs["sem"].get_value() == 1, timeout=15)  # type: ignore[attr-defined]
        assert objs["lock"].acquire(timeout=5)  # type: ignore[attr-defined]
    finally:
        if proc.is_alive():
            os.kill(proc.pid, 9)
            proc.join(10)


def test_os_fork_child_gets_its_own_session(children) -> None:
    """A raw os.fork() child must not use the parent's channel: it opens its own
    connection (a new session), and its buffered puts are flushed by atexit."""
    out = children.run(
        """
        import os, sys
        import gilbridge.multiprocessing as mp
        from gilbridge._connection import get_connection
        q = mp.Queue()
        q.put("before fork")  # buffered in the parent, maybe not yet sent
        parent_session = get_connection().session_id
        pid = os.fork()
        if pid == 0:
            q.put(("child", get_connection().session_id))
            sys.exit(0)  # atexit: flush the feeder, Goodbye
        _, status = os.waitpid(pid, 0)
        items = [q.get(timeout=10), q.get(timeout=10)]  # no order between two processes
        print(os.waitstatus_to_exitcode(status), "before fork" in items)
        (child_item,) = [i for i in items if i != "before fork"]
        print(child_item[0], child_item[1] != parent_session, bool(child_item[1]), q.empty())
        """
    )
    assert out.splitlines() == ["0 True", "child True True True"]


def test_repeated_forks_while_feeder_and_keepalive_are_busy(children) -> None:
    """grpc's fork support hangs the child if one of our threads is inside grpc or
    waiting for the GIL at fork time (measured: ~1 fork in 6 hung when a queue's first
    put started its feeder thread right before fork); the fork hooks must prevent that."""
    out = children.run(
        REAP_FORKED_CHILD + """
        import sys
        import gilbridge.multiprocessing as mp

        ok = 0
        queues = []
        for i in range(25):
            q = mp.Queue()
            queues.append(q)
            q.put(("parent", i))  # starts the feeder thread right before the fork
            pid = os.fork()
            if pid == 0:
                q.put(("child", i))
                sys.exit(0)  # atexit: flush, Goodbye
            ok += reap(pid) == 0
        got = sorted(x for q in queues for x in (q.get(timeout=20), q.get(timeout=20)))
        print(ok, got == sorted([("parent", i) for i in range(25)] + [("child", i) for i in range(25)]))
        """,
        timeout=100,
    )
    assert out.split() == ["25", "True"]


def test_unpickled_in_unrelated_program(children) -> None:
    objs = {"lock": mp.Lock(), "ev": mp.Event(), "v": mp.Value("d", 0.5), "q": mp.Queue()}
    out = children.run(
        """
        import pickle, sys
        objs = pickle.loads(bytes.fromhex(sys.argv[1]))
        print(sorted((k, o.name) for k, o in objs.items()))
        objs["v"].value = 1.5
        objs["q"].put([1, (2, 3)])
        objs["lock"].acquire()
        objs["ev"].set()
        objs["lock"].release()
        """,
        pickle.dumps(objs).hex(),
    )
    assert out.strip() == str(sorted((k, o.name) for k, o in objs.items()))
    assert objs["ev"].is_set() and objs["v"].value == 1.5
    assert objs["q"].get(timeout=5) == [1, (2, 3)]


def test_last_proxy_collected_detaches_and_frees_anonymous_object() -> None:
    lock = mp.Lock()
    name = lock.name
    twin = pickle.loads(pickle.dumps(lock))  # a second proxy in this process
    del lock
    gc.collect()
    time.sleep(0.3)
    assert twin.acquire(False)  # still alive: one proxy left
    twin.release()
    del twin
    gc.collect()

    def freed() -> bool:
        try:
            mp.Lock(name=name, create=False)
        except FileNotFoundError:
            return True
        return False

    assert wait_for(freed, timeout=10)


def test_named_object_survives_while_another_process_uses_it(children) -> None:
    child = children.start(
        """
        import time, gilbridge.multiprocessing as mp
        ev = mp.Event(name="tests.pickling.held")
        print("created", flush=True)
        ev.wait(30)
        """
    )
    child.wait_line("created")
    ev = mp.Event(name="tests.pickling.held", create=False)
    del ev
    gc.collect()
    time.sleep(0.3)
    again = mp.Event(name="tests.pickling.held", create=False)  # the child still holds it
    again.set()
    child.wait_ok()


def test_forks_beside_a_thread_that_never_blocks(children) -> None:
    """A thread that keeps wanting the GIL posts a drop request every switch interval;
    one pending at fork time hung the child inside grpc 1.51's pthread_atfork child
    handler (gdb: ``drop_gil`` waiting for a thread that no longer exists; 2 forks in 20
    hung here). _grpc_fork runs that handler's work after the GIL is re-created."""
    out = children.run(
        REAP_FORKED_CHILD + """
        import threading
        import gilbridge.multiprocessing as mp

        def spin():
            while True:
                sum(range(1000))

        threading.Thread(target=spin, daemon=True).start()
        q = mp.Queue()
        outcomes = []
        for i in range(30):
            q.put(("parent", i))
            pid = os.fork()
            if pid == 0:
                q.put(("child", i))
                q.close()
                q.join_thread()
                os._exit(0)
            outcomes.append(reap(pid))
        print(outcomes, flush=True)
        got = sorted(q.get(timeout=20) for _ in range(60))
        print(outcomes.count(0), got == sorted([(s, i) for s in ("parent", "child") for i in range(30)]))
        """,
        timeout=200,
    )
    assert out.splitlines()[-1].split() == ["30", "True"]


def test_grpc_fork_child_handler_is_taken_over_where_grpc_has_the_flaw(children) -> None:
    """grpc before 1.55 runs its fork-child handler before the GIL is re-created; once a
    connection exists, _grpc_fork must have taken that handler over (else the two tests
    above only pass by luck), and a fork child must still get a working connection."""
    out = children.run(
        REAP_FORKED_CHILD + """
        import gilbridge.multiprocessing as mp
        from gilbridge import _grpc_fork
        q = mp.Queue()
        q.put("parent")
        import grpc  # imported by the connection, with fork support on
        flawed = tuple(int(p) for p in grpc.__version__.split(".")[:2]) < (1, 55)
        print(not flawed or _grpc_fork._cygrpc is not None)
        pid = os.fork()
        if pid == 0:
            q.put("child")
            q.close()
            q.join_thread()
            os._exit(0)
        print(reap(pid), sorted([q.get(timeout=10), q.get(timeout=10)]))
        """
    )
    assert out.splitlines() == ["True", "0 ['child', 'parent']"]


def test_what_plain_pickle_sends_right_skips_cloudpickle_and_the_rest_does_not(children) -> None:
    # dumps tries the stdlib's pickler first (cloudpickle's import was ~8 ms of a script's
    # first start()); objects only cloudpickle sends right (a lambda, a __main__ function
    # the workers do not re-run, a class made at run time) go to cloudpickle, and an
    # object carrying a descriptor is shared once, not once per pass.
    out = children.run(
        """
        import os, pickle, sys
        from multiprocessing import Pipe
        from gilbridge import _fdshare
        from gilbridge._pickling import dumps

        plain = dumps((os.path.join, [1, 2.5, "x"], {"k": b"v"}, ValueError("e")))
        print("plain", "cloudpickle" in sys.modules, pickle.loads(plain)[0] is os.path.join)

        def in_main(x):
            return x + 1

        for name, obj in (("lambda", lambda x: x * 2), ("main", in_main),
                          ("dynamic", type("Made", (), {"twice": lambda self, x: 2 * x}))):
            data = dumps(obj)
            print(name, "cloudpickle" in sys.modules, b"cloudpickle" in data)
        print("values", pickle.loads(dumps(lambda x: x * 2))(4), pickle.loads(dumps(in_main))(4))

        reader, writer = Pipe(duplex=False)
        assert _fdshare._sharer is None  # nothing shared yet
        dumps((writer, lambda: None))  # the first pass stops at the descriptor, not later
        print("shared", len(_fdshare._sharer._fds))
        """
    )
    assert out.splitlines() == [
        "plain False True",
        "lambda True True",
        "main True True",
        "dynamic True True",
        "values 8 5",
        "shared 1",
    ], out

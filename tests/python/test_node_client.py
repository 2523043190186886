"""Any gRPC client: the Node.js example (examples/node, @grpc/grpc-js loading protos/ as
they are) shares a named queue and a lock with this Python process, through the test
host. The node process is stopped by its PID whatever happens."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator

import pytest

import gilbridge.multiprocessing as mp

from conftest import REPO

pytestmark = pytest.mark.usefixtures("host")

EXAMPLE = REPO / "examples" / "node"


@pytest.fixture()
def node_example(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    node = shutil.which("node")
    if node is None or not (EXAMPLE / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("node and examples/node/node_modules are needed: run scripts/setup.sh", pytrace=False)
    # GILBRIDGE_ADDRESS (the test host) is inherited, as a Python child would.
    proc = subprocess.Popen([node, str(EXAMPLE / "queue-and-lock.mjs"), *request.param],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


NAMES = ("node.jobs", "node.results", "node.lock")


@pytest.mark.parametrize("node_example", [NAMES], indirect=True)
def test_a_node_client_shares_a_named_queue_and_lock_with_python(node_example: subprocess.Popen[str]) -> None:
    jobs = mp.Queue(name=NAMES[0])
    results = mp.Queue(name=NAMES[1])
    lock = mp.Lock(name=NAMES[2])
    assert results.get(timeout=60) == "locked"
    assert lock.acquire(False) is False  # node holds it
    for n in (1, 2, 3):
        jobs.put({"n": n})
    answers = [results.get(timeout=30) for _ in range(3)]
    assert answers == [{"n": n, "square": n * n, "from": "node"} for n in (1, 2, 3)]
    jobs.put("release")
    assert results.get(timeout=30) == "released"
    assert lock.acquire(timeout=10)
    lock.release()
    assert node_example.wait(timeout=30) == 0, node_example.stderr.read() if node_example.stderr else ""

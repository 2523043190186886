"""The C# client: the example project (examples/csharp, built by scripts/setup.sh against
the packed Bridge.Client package, not the source) shares a named queue and a lock with this
Python process through the test host, then runs a C# kernel and a Python function on two
workers. The command comes from the README's "Using it from C#" section, run as written;
the section's code must be the example's. The dotnet process is stopped by its PID
whatever happens."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator

import pytest

import gilbridge.multiprocessing as mp

from conftest import REPO

pytestmark = pytest.mark.usefixtures("host")

EXAMPLE = REPO / "examples" / "csharp"


def _readme_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Using it from C#")
    return text[start:text.index("\n## ", start + 1)]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_the_readme_shows_the_example_as_it_is_and_setup_runs_its_commands() -> None:
    section = _readme_section()
    assert _blocks(section, "csharp") == [(EXAMPLE / "Program.cs").read_text()]
    assert _blocks(section, "xml") == [(EXAMPLE / "QueueAndLock.csproj").read_text()]
    pack, build, _run = _blocks(section, "bash")[0].splitlines()
    setup = (REPO / "scripts" / "setup.sh").read_text().splitlines()
    assert f"  {pack}" in setup and f"  {build}" in setup


@pytest.fixture()
def csharp_example() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    command = shlex.split(_blocks(_readme_section(), "bash")[0].splitlines()[2])
    if not (REPO / command[1]).is_file():
        pytest.fail("examples/csharp is not built: run scripts/setup.sh", pytrace=False)
    # GILBRIDGE_ADDRESS (the test host) is inherited, as a Python child would.
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc, command[2:5]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def test_a_csharp_client_shares_a_named_queue_and_lock_with_python_and_runs_a_pool(
        csharp_example: tuple[subprocess.Popen[str], list[str]]) -> None:
    proc, names = csharp_example
    jobs = mp.Queue(name=names[0])
    results = mp.Queue(name=names[1])
    lock = mp.Lock(name=names[2])
    assert results.get(timeout=60) == "locked"
    assert lock.acquire(False) is False  # C# holds it
    for n in (1, 2, 3):
        jobs.put({"n": n})
    answers = [results.get(timeout=30) for _ in range(3)]
    assert answers == [{"n": n, "square": n * n, "from": "csharp"} for n in (1, 2, 3)]
    jobs.put(None)
    assert results.get(timeout=30) == "released"
    assert lock.acquire(timeout=10)
    lock.release()
    assert results.get(timeout=60) == {"primes": 9592, "factorials": [120, 3628800]}
    assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""

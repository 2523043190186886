"""The seed demo runs against the host (python -m gilbridge.examples.seed_demo)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.usefixtures("host")


def test_seed_demo_runs() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gilbridge.examples.seed_demo", "--items", "200", "--sleep", "0.001",
         "--lock-rounds", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 0, err
    assert re.search(r"\[bridge\] Lock acquire\+release: median [\d.]+ us", out), out
    assert "[bridge] Queue: 200 items, FIFO order kept: True" in out, out

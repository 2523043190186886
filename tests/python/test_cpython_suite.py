"""CPython's own multiprocessing tests (tests/conformance/cpython_suite.py), the classes
gilbridge passes whole, run in CI: each must pass every test the stdlib passes here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CHILD_TIMEOUT

pytestmark = pytest.mark.usefixtures("host")

RUNNER = Path(__file__).resolve().parents[1] / "conformance" / "cpython_suite.py"


def quick_classes() -> list[str]:
    """The runner's QUICK list (importing the runner only builds its test classes)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cpython_suite", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.QUICK)


def test_the_quick_classes_pass_as_they_do_on_the_stdlib(tmp_path: Path) -> None:
    import importlib.util

    assert importlib.util.find_spec("test._test_multiprocessing"), \
        "libpython3.11-testsuite is missing (scripts/setup.sh installs it)"
    report = tmp_path / "suite.json"
    proc = subprocess.run([sys.executable, str(RUNNER), "--quick", "--timeout", "120", "--json", str(report)],
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT * 4)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(report.read_text(encoding="utf-8"))
    assert [row["class"] for row in rows] == quick_classes(), proc.stdout
    for row in rows:
        stdlib, bridge = row["stdlib"], row["gilbridge"]
        assert stdlib.get("run", 0) > 0, row
        assert bridge.get("passed") == stdlib["passed"], (row["class"], bridge)

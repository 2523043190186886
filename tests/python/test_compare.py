"""``python -m gilbridge compare``: real runs (--quick, one repetition) against the test
host, checked for what they report, never for how fast anything was."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from conftest import HOST_EXE, HostProcess

COMPARE_TIMEOUT = 420.0

CONTENDERS = {
    "seed": {"stdlib default", "bridge"},
    "process": {"stdlib spawn", "stdlib fork", "bridge"},
    "pool-start": {"stdlib spawn", "stdlib fork", "bridge"},
    "cycle": {"stdlib fork", "stdlib spawn", "bridge"},
    "map": {"stdlib fork", "stdlib spawn", "bridge"},
    "cpu": {"stdlib fork", "bridge", "bridge C# kernel"},
    "map-cycle": {"stdlib fork", "stdlib spawn", "bridge"},
    "cpu-cycle": {"stdlib fork", "bridge", "bridge C# kernel"},
    "queue": {"stdlib Queue", "bridge Queue"},
    "lock": {"stdlib Lock", "stdlib Manager().Lock", "bridge Lock"},
    "apply": {"stdlib fork", "bridge"},
    "cold": {"stdlib spawn", "bridge"},
}
PRIMES_BELOW_200_000 = 17_984  # the --quick size of the cpu workload


def compare(*args: str, env: dict[str, str] | None = None,
            timeout: float = COMPARE_TIMEOUT) -> tuple[int, str, str]:
    """Run the command to its end (killed by PID on timeout); (status, stdout, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gilbridge", "compare", *args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"compare did not finish within {timeout} s\n{out}\n{err[-3000:]}") from None
    return proc.returncode, out, err


def load(output_dir: Path) -> dict[str, Any]:
    return json.loads((output_dir / "compare.json").read_text(encoding="utf-8"))


def positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def assert_measured(document: dict[str, Any], key: str, repeats: int) -> dict[str, Any]:
    workload = document["workloads"][key]
    assert set(workload["contenders"]) == CONTENDERS[key]
    assert workload["baseline"] in CONTENDERS[key]
    assert workload["errors"] == [] and workload["failed"] is False
    for name, figures in workload["contenders"].items():
        assert figures["error"] is None, (key, name, figures["error_details"])
        assert len(figures["samples"]) == repeats and all(positive(s) for s in figures["samples"])
        assert positive(figures["median"]), (key, name, figures)
        assert figures["min"] <= figures["median"] <= figures["max"]
        assert positive(figures["warmup"]["value"])
        assert positive(workload["ratios"][name]), (key, name, workload["ratios"])
    assert workload["ratios"][workload["baseline"]] == 1.0
    for target in workload["targets"]:
        assert target["contender"] in CONTENDERS[key]
        assert positive(target["observed"]) and isinstance(target["met"], bool), target
    return workload


@pytest.mark.timeout(COMPARE_TIMEOUT + 60)
def test_every_workload_but_cold_is_measured_and_reported(host: HostProcess, tmp_path: Path) -> None:
    keys = [k for k in CONTENDERS if k != "cold"]
    status, out, err = compare("--quick", "--repeats", "1", "--workloads", ",".join(keys),
                               "--output-dir", str(tmp_path))
    assert status == 0, f"stdout:\n{out}\nstderr:\n{err[-3000:]}"
    document = load(tmp_path)
    assert document["settings"]["workloads"] == keys
    assert document["settings"]["quick"] is True and document["settings"]["repeats"] == 1
    assert document["failed"] == []
    for key in keys:
        assert_measured(document, key, repeats=1)
    # The C# kernel and the Python function counted the same primes, every round.
    for key in ("cpu", "cpu-cycle"):
        cpu = document["workloads"][key]
        assert cpu["checks"]["primes_equal_every_repetition"] is True
        assert cpu["checks"]["primes"] == PRIMES_BELOW_200_000
        rounds = [cpu["contenders"][name]["extras"][0]["primes"] for name in CONTENDERS[key]]
        assert rounds == [PRIMES_BELOW_200_000] * 3
        assert {t["contender"] for t in cpu["targets"]} == {"bridge", "bridge C# kernel"}
    assert document["workloads"]["lock"]["extra_ratios"][0]["reference"] == "stdlib Lock"
    machine = document["machine"]
    assert machine["cpu_count"] == os.cpu_count() and machine["python"] and machine["date"]
    assert "compare" in machine["command"] and "--quick" in machine["command"]
    assert machine["host"]["address"] == host.address and machine["host"]["pid"] == host.pid
    assert machine["git_commit"] is None or len(machine["git_commit"]) == 40

    lines = out.splitlines()
    assert any(line.split()[:3] == ["workload", "contender", "median"] for line in lines if line)
    for key in keys:
        rows = [line for line in lines if line.startswith(key + " ")]
        assert rows, f"no table row for {key}:\n{out}"
    for name in ("stdlib Manager().Lock", "bridge C# kernel", "stdlib Queue"):
        assert name in out
    png = tmp_path / "compare.png"
    if find_spec("matplotlib") is None:
        assert "no chart" in out and not png.exists()
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(COMPARE_TIMEOUT + 60)
def test_cold_starts_a_private_host_and_stops_it(host: HostProcess, tmp_path: Path) -> None:
    from gilbridge._host import pid_alive

    env = dict(os.environ, GILBRIDGE_HOST_PATH=str(HOST_EXE))
    status, out, err = compare("--quick", "--repeats", "1", "--workloads", "cold", "--no-chart",
                               "--output-dir", str(tmp_path), env=env)
    assert status == 0, f"stdout:\n{out}\nstderr:\n{err[-3000:]}"
    document = load(tmp_path)
    cold = assert_measured(document, "cold", repeats=1)
    assert not (tmp_path / "compare.png").exists()
    bridge = cold["contenders"]["bridge"]
    runs = [bridge["warmup"]["extra"], *bridge["extras"]]
    pids = [run["host_pid"] for run in runs]
    assert len(set(pids)) == 2 and host.pid not in pids, pids  # a new host each time
    for run in runs:
        assert not pid_alive(run["host_pid"]), f"cold host {run['host_pid']} still running"
        assert not Path(run["runtime_dir"]).exists()
        # Nor any of its workers (they name the host's socket on their command line).
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    cmdline = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                assert run["runtime_dir"].encode() not in cmdline, f"pid {proc.name} outlived its cold host"
    host.assert_alive()


@pytest.mark.timeout(COMPARE_TIMEOUT + 60)
def test_a_failing_workload_is_reported_and_the_others_still_run(host: HostProcess, tmp_path: Path) -> None:
    # conftest points GILBRIDGE_HOST_PATH at a missing file: cold's Bridge side cannot start a host.
    assert not Path(os.environ["GILBRIDGE_HOST_PATH"]).exists()
    status, out, err = compare("--quick", "--repeats", "1", "--workloads", "cold,lock", "--no-chart",
                               "--output-dir", str(tmp_path))
    assert status == 1, f"stdout:\n{out}\nstderr:\n{err[-3000:]}"
    document = load(tmp_path)
    assert document["failed"] == ["cold"]
    cold = document["workloads"]["cold"]
    assert cold["failed"] is True
    assert "cannot start the Bridge host" in cold["contenders"]["bridge"]["error"]
    assert positive(cold["contenders"]["stdlib spawn"]["median"])
    assert_measured(document, "lock", repeats=1)
    assert any(line.split()[:3] == ["bridge", "ERROR", "RuntimeError:"] for line in out.splitlines()), out


@pytest.mark.timeout(90)
def test_unknown_workload_exits_2(tmp_path: Path) -> None:
    status, out, err = compare("--workloads", "lock,no-such-thing", "--output-dir", str(tmp_path), timeout=60)
    assert status == 2
    assert "unknown workload 'no-such-thing'" in err
    assert not (tmp_path / "compare.json").exists()


@pytest.mark.timeout(90)
def test_the_package_and_the_command_line_import_no_chart_or_progress_library() -> None:
    code = ("import sys, gilbridge, gilbridge.multiprocessing, gilbridge.__main__ as m; "
            "m.build_parser(); "
            "print(sorted(n for n in sys.modules if n.split('.')[0] in ('matplotlib', 'tqdm', 'grpc')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"

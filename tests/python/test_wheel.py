"""The wheel: built offline from this checkout, installed into a fresh venv outside it,
used by a script in another folder (a pool, a built-in C# kernel, an inline one, a
queue) with no setting pointing back at the checkout.

The build works on a copy of the package's inputs (so nothing is written into the
checkout) with ``artifacts/`` linked in: ``scripts/setup.sh`` has published the host and
worker there. Every host the test starts is stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, run_command, stop_host_in

pytestmark = pytest.mark.timeout(600)

JOB = """
import gilbridge, gilbridge.multiprocessing as mp

if __name__ == "__main__":
    print("package", gilbridge.__file__)
    with mp.Pool(2) as pool:
        print("squares", *pool.map(lambda x: x * x, range(5)))
        count = gilbridge.dotnet("Bridge.Kernels.Primes.Count")
        print("primes", sum(pool.starmap(count, [(0, 500_000), (500_000, 1_000_000)])))
        cube = gilbridge.csharp("public static long Cube(long x) => x * x * x;")
        print("cubes", *pool.map(cube, [2, 3]))
    queue = mp.Queue()
    queue.put({"n": 1})
    print("queue", queue.get(timeout=10)["n"])
"""


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """A fresh venv (seeing Debian's grpcio, protobuf, msgpack and cloudpickle, as pip
    would have installed them) with the wheel installed; yields its bin directory."""
    if not (REPO / "artifacts/host/Bridge.Host").is_file():
        pytest.fail("artifacts/ is not published: run scripts/setup.sh first")
    work = Path(tempfile.mkdtemp(prefix="gb-wheel-"))
    try:
        source = work / "src"
        shutil.copytree(REPO / "python", source / "python", ignore=shutil.ignore_patterns(
            "__pycache__", "*.egg-info", "_bin"))
        for name in ("pyproject.toml", "setup.py", "README.md"):
            shutil.copy2(REPO / name, source / name)
        (source / "artifacts").symlink_to(REPO / "artifacts")
        built = run_command([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                      "--no-index", "-w", str(work / "dist")], timeout=300, cwd=work)
        assert built.returncode == 0, built.stdout + built.stderr
        (wheel,) = (work / "dist").glob("gilbridge-*.whl")
        assert wheel.name.endswith("-py3-none-linux_x86_64.whl"), wheel.name
        with zipfile.ZipFile(wheel) as archive:
            modes = {Path(info.filename).name: info.external_attr >> 16 for info in archive.infolist()}
        assert modes["Bridge.Host"] & 0o111 and modes["Bridge.Worker"] & 0o111, "executables lost their mode"
        venv = work / "venv"
        made = run_command([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], timeout=120)
        assert made.returncode == 0, made.stderr
        pip = run_command([str(venv / "bin/python"), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                   timeout=300)
        assert pip.returncode == 0, pip.stdout + pip.stderr
        yield venv / "bin"
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture()
def clean_env() -> Iterator[tuple[dict[str, str], Path]]:
    """No GILBRIDGE_* setting (the host must come from inside the package) and a private
    runtime directory; the host started there is stopped by its PID."""
    runtime = Path(tempfile.mkdtemp(prefix="gb-wrt-")) / "rt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GILBRIDGE_") and k != "XDG_RUNTIME_DIR"}
    env.update(GILBRIDGE_RUNTIME_DIR=str(runtime), GILBRIDGE_IDLE_TIMEOUT="60",
               GILBRIDGE_CSHARP_CACHE=str(runtime.parent / "csharp"))
    try:
        yield env, runtime
    finally:
        stop_host_in(runtime)
        shutil.rmtree(runtime.parent, ignore_errors=True)


def test_a_script_elsewhere_runs_a_pool_kernels_and_a_queue_from_the_installed_wheel(
        installed: Path, clean_env: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, runtime = clean_env
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "job.py").write_text(JOB, encoding="utf-8")
    done = run_command([str(installed / "python"), "job.py"], timeout=120, cwd=elsewhere, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line}
    assert lines["package"][0].startswith(str(installed.parent / "lib")), done.stdout
    assert lines["squares"] == ["0", "1", "4", "9", "16"]
    assert lines["primes"] == ["78498"]
    assert lines["cubes"] == ["8", "27"]
    assert lines["queue"] == ["1"]
    # The host it started is the package's own.
    status = run_command([str(installed / "gilbridge"), "host", "status"], timeout=60, cwd=elsewhere, env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    pid = int(next(line.split()[1] for line in status.stdout.splitlines() if line.startswith("pid:")))
    exe = os.readlink(f"/proc/{pid}/exe")
    assert exe.startswith(str(installed.parent / "lib")) and exe.endswith("/gilbridge/_bin/host/Bridge.Host"), exe


def test_the_console_command_answers_help(installed: Path, clean_env: tuple[dict[str, str], Path]) -> None:
    env, _ = clean_env
    done = run_command([str(installed / "gilbridge"), "--help"], timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: gilbridge "), done.stdout
    for command in ("host", "run", "compare"):
        assert command in done.stdout


def test_a_missing_dotnet_runtime_is_named(installed: Path, clean_env: tuple[dict[str, str], Path],
                                           tmp_path: Path) -> None:
    env, runtime = clean_env
    nowhere = tmp_path / "no-dotnet"
    nowhere.mkdir()
    env = dict(env, DOTNET_ROOT=str(nowhere))
    done = run_command([str(installed / "gilbridge"), "host", "start"], timeout=60, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Microsoft.AspNetCore.App 10" in done.stderr and "DOTNET_ROOT" in done.stderr, done.stderr
    assert not (runtime / "host.sock").exists()

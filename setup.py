"""The wheel's build step: gilbridge with the .NET host and worker inside.

``python -m pip wheel . --no-deps --no-build-isolation -w dist`` (offline) builds a
platform wheel whose ``gilbridge/_bin/host`` and ``gilbridge/_bin/worker`` are this
checkout's ``artifacts/host`` and ``artifacts/worker``, published first by
``scripts/publish.sh`` when missing. The host is framework-dependent (it needs the .NET
10 runtime with ASP.NET Core); the worker carries its own runtime. An editable install
(``scripts/install-package.sh``) copies nothing: it runs the checkout's ``artifacts/``.
Metadata is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from wheel.bdist_wheel import bdist_wheel

ROOT = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "artifacts"
PARTS = ("host", "worker")


class BuildPyWithDotnet(build_py):
    """build_py, then the published host and worker into ``gilbridge/_bin``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not all((ARTIFACTS / part / f"Bridge.{part.title()}.dll").is_file() for part in PARTS):
            subprocess.run(["bash", str(ROOT / "scripts" / "publish.sh"), str(ARTIFACTS)], check=True)
        target = Path(self.build_lib) / "gilbridge" / "_bin"
        shutil.rmtree(target, ignore_errors=True)
        for part in PARTS:
            # copy2 keeps the executables' mode bits; the wheel stores them.
            shutil.copytree(ARTIFACTS / part, target / part, symlinks=True,
                            ignore=shutil.ignore_patterns("*.pdb"))


class PlatformWheel(bdist_wheel):
    """A ``py3-none-<platform>`` wheel: no Python extension, but native executables."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(cmdclass={"build_py": BuildPyWithDotnet, "bdist_wheel": PlatformWheel})

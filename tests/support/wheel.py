"""hubkeeper as a release: the wheel built from this tree, and versioned installs made from
it with host/install.py the way docs/install.md tells an operator to."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"


def build_wheel(directory: Path) -> Path:
    """`pip wheel --no-deps .` of this tree into `directory`; the wheel's path."""
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--disable-pip-version-check", "--wheel-dir", str(directory), str(ROOT)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    wheels = sorted(directory.glob("hubkeeper-*-py3-none-any.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}


def from_wheel(wheel: Path, *args: str, timeout: float = 900,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`PYTHONPATH=<wheel> python3 -m hubkeeper.host.install ARGS` with Debian's python,
    run from / so that nothing of this clone is importable (docs/install.md)."""
    return subprocess.run(
        [SYSTEM_PYTHON, "-m", "hubkeeper.host.install", *args],
        capture_output=True, text=True, timeout=timeout, cwd="/",
        env={**clean_env(), "PYTHONPATH": str(wheel), **(env or {})})


def clean_env() -> dict[str, str]:
    """The environment without this venv's traces (a hub from an install must not find the
    clone's packages through them)."""
    return {key: value for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}

"""Versioned installs of this tree with real JupyterHub versions from PyPI, for the upgrade
tests: the wheel of this tree plus `jupyterhub==X`, built with host/install.py under a prefix
in /tmp (pip's downloads cached in /tmp/<prefix>-pipcache across runs), and a hub run by an
install's own `hubkeeper up`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base import procs
from hubkeeper.host import install as installs
from hubkeeper.host.running import running_hub
from hubkeeper.state.statedir import StatePaths
from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.wheel import ROOT, build_wheel, clean_env

OLD_JUPYTERHUB = "5.5.4"  # the last 5.x: the hub the issue upgrades from
NEW_JUPYTERHUB = "6.1.1"
PIP_CACHE = Path(f"/tmp/{TEST_ACCOUNT_PREFIX}-pipcache")


def use_pip_cache() -> None:
    """pip (also the one `upgrade` runs) reads PIP_CACHE_DIR: wheels downloaded once."""
    PIP_CACHE.mkdir(mode=0o700, exist_ok=True)
    os.environ["PIP_CACHE_DIR"] = str(PIP_CACHE)


def build_install(prefix: Path, name: str, wheel: Path, jupyterhub: str) -> Path:
    installs.build(prefix, name, [str(wheel), f"jupyterhub=={jupyterhub}"])
    return prefix / name


def broken_wheel(directory: Path, breakage: dict[str, str]) -> Path:
    """The wheel of a copy of this tree with files replaced (a release that is broken the
    way a real one can be): `breakage` maps a path in src/hubkeeper to its new text."""
    tree = directory / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        ".venv", ".git", "test-artifacts", "node_modules", "__pycache__", "*.egg-info"))
    for relative, text in breakage.items():
        (tree / "src" / "hubkeeper" / relative).parent.mkdir(parents=True, exist_ok=True)
        (tree / "src" / "hubkeeper" / relative).write_text(text)
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--disable-pip-version-check", "--wheel-dir", str(directory / "wheel"), str(tree)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return next((directory / "wheel").glob("hubkeeper-*.whl"))


def hk(executable: Path, config: Path, *args: str,
       timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(executable), "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=config.parent,
                          env=clean_env(), stdin=subprocess.DEVNULL)


@dataclass
class HubOfInstall:
    """A hub run by `<install>/bin/hubkeeper up` (the test starts and stops it)."""

    config: Path
    paths: StatePaths
    url: str

    def start(self, install: Path, deadline: float = 120.0) -> int:
        log = self.config.parent / "up.log"
        with open(log, "ab") as sink:
            proc = subprocess.Popen([str(install / "bin" / "hubkeeper"), "--config",
                                     str(self.config), "up"], stdout=sink,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=clean_env(), start_new_session=True,
                                    cwd=self.config.parent)
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            assert proc.poll() is None, log.read_text()[-3000:]
            if running_hub(self.paths) and self.answers():
                return proc.pid
            time.sleep(0.3)
        raise AssertionError(f"hub not up within {deadline} s: {log.read_text()[-3000:]}")

    def answers(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + "hub/api/", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def version(self) -> str:
        import json
        import urllib.request

        with urllib.request.urlopen(self.url + "hub/api/", timeout=5) as response:
            return json.loads(response.read())["version"]

    def pid(self) -> int | None:
        return running_hub(self.paths)

    def stop(self) -> None:
        """Stop whichever `up` holds the hub lock (the test's, or one `upgrade` started)."""
        pid = running_hub(self.paths)
        if pid:
            procs.send(pid, signal.SIGTERM)
            if not procs.wait_until(lambda: running_hub(self.paths) is None, 30):
                procs.send(pid, signal.SIGKILL)
                procs.wait_until(lambda: running_hub(self.paths) is None, 10)


__all__ = ["NEW_JUPYTERHUB", "OLD_JUPYTERHUB", "HubOfInstall", "broken_wheel",
           "build_install", "build_wheel", "hk", "use_pip_cache"]

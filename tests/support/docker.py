"""The Docker engine for the container backend's tests, and a base image built here.

No image registry is reachable from the test machines, so the base image is made from
Debian itself (`debootstrap --variant=minbase bookworm`, then `docker import`), once per
engine: later runs find it by its tag. `./run test` starts dockerd when none answers.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import require

# Debian's client, the same version as Debian's dockerd (another client may be first on PATH).
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker")
                                                                        or "docker")
BASE_IMAGE = "hubkeeper-test-base:bookworm"
MIRROR = "http://deb.debian.org/debian"
LOCK = Path("/var/tmp/hubkeeper-test-base.lock")


def docker(*args: str, timeout: float = 120, check: bool = True,
           input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([DOCKER, *args], capture_output=True, timeout=timeout,
                            input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}: "
                             f"{result.stderr.decode(errors='replace')[-2000:]}")
    return result


def engine_answers() -> bool:
    try:
        return docker("version", timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_engine() -> None:
    require(engine_answers(), "a Docker engine that answers (./run test starts dockerd as "
            "root; docker.io must be installed)")


def base_image() -> str:
    """The tag of the minimal Debian image, built now if this engine does not have it."""
    require_engine()
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs must not both build it
        if docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
            return BASE_IMAGE
        require(shutil.which("debootstrap") is not None, "debootstrap (to build the base "
                "image without a registry)")
        with tempfile.TemporaryDirectory(prefix="hkbase-", dir="/var/tmp") as work:
            root = Path(work) / "rootfs"
            built = subprocess.run(
                ["debootstrap", "--variant=minbase", "bookworm", str(root), MIRROR],
                capture_output=True, timeout=900)
            if built.returncode != 0:
                raise AssertionError("debootstrap failed:\n"
                                     + built.stdout.decode(errors="replace")[-3000:])
            tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True,
                                 timeout=300, check=True)
            docker("import", "-", BASE_IMAGE, input=tar.stdout, timeout=300)
        return BASE_IMAGE


def notebook_context(directory: Path, *extra: str) -> Path:
    """A build directory for a notebook image on the base image: Debian's Python, a venv with
    this hub's jupyterhub and jupyterlab versions (jupyterhub-singleuser on PATH), then the
    `extra` Dockerfile lines. The common part is the same text everywhere, so the engine's
    layer cache builds it once per engine (about a minute) and later builds take seconds."""
    from importlib.metadata import version

    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        f"FROM {base_image()}",
        "RUN apt-get update && apt-get install -y --no-install-recommends python3-venv "
        "&& rm -rf /var/lib/apt/lists/*",
        "RUN python3 -m venv /opt/env && /opt/env/bin/pip install --no-cache-dir "
        f"--progress-bar off jupyterhub=={version('jupyterhub')} "
        f"jupyterlab=={version('jupyterlab')}",
        "ENV PATH=/opt/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        *extra,
    ]
    (directory / "Dockerfile").write_text("\n".join(lines) + "\n")
    return directory

"""hubkeeper installed as a release, outside the clone (docs/install.md): the wheel built
from this tree, installed with host/install.py by Debian's python3 into a fresh prefix under
/tmp, runs a system-mode hub where a student logs in and runs code; `service install` from
it names `<prefix>/current`; a build killed with SIGKILL leaves an install that is never
activated and is replaced by the next build of that name."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hubkeeper.config import load
from tests.conftest import SESSION_WORKDIRS, TEST_ACCOUNT_PREFIX, require_root
from tests.support.hubproc import write_config
from tests.support.procs import server_pids
from tests.support.simuser import run_once
from tests.support.wheel import SYSTEM_PYTHON, build_wheel, clean_env, from_wheel

pytestmark = [pytest.mark.component, pytest.mark.root]

PASSWORD = "Correct-Horse-7"
STUDENT = f"{TEST_ACCOUNT_PREFIX}1"


@dataclass(frozen=True)
class Release:
    wheel: Path
    prefix: Path  # <prefix>/<version>/ is the venv, <prefix>/current links to it
    link: Path  # stands for /usr/local/bin/hubkeeper
    version: str

    @property
    def hubkeeper(self) -> str:
        return str(self.link)


@pytest.fixture(scope="session")
def release() -> Iterator[Release]:
    """The wheel of this tree and one complete install of it, built once per session (a
    full install takes about a minute with pip's cache) and removed at the end."""
    require_root()  # the hub runs in system mode; the install under /tmp is root's
    base = Path(tempfile.mkdtemp(prefix=f"{TEST_ACCOUNT_PREFIX}-release-"))
    SESSION_WORKDIRS.append(base)
    os.chmod(base, 0o755)  # students execute the venv's python
    try:
        wheel = build_wheel(base / "wheel")
        prefix, link = base / "opt", base / "bin" / "hubkeeper"
        done = from_wheel(wheel, "install", "--prefix", str(prefix), "--link", str(link),
                          str(wheel))
        assert done.returncode == 0, done.stdout + done.stderr
        version = wheel.name.split("-")[1]
        assert done.stdout.splitlines() == [
            f"built {prefix / version} ({version})",
            f"{prefix / 'current'} -> {version}",
            f"{link} -> {prefix / 'current' / 'bin' / 'hubkeeper'}"]
        yield Release(wheel, prefix, link, version)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def hk(release: Release, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([release.hubkeeper, "--config", str(config), *args],
                          capture_output=True, text=True, timeout=300, cwd=config.parent)


def test_the_install_is_complete_and_readable_by_every_account(release: Release) -> None:
    venv = release.prefix / release.version
    assert os.readlink(release.prefix / "current") == release.version
    assert os.readlink(release.link) == str(release.prefix / "current" / "bin" / "hubkeeper")
    assert not (venv / ".incomplete").exists()
    # hubkeeper comes from the install, not from this clone
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import hubkeeper; print(hubkeeper.__file__)"],
                           capture_output=True, text=True, cwd="/", check=True).stdout.strip()
    assert where.startswith(f"{venv}/lib/")
    listed = from_wheel(release.wheel, "list", "--prefix", str(release.prefix))
    assert listed.stdout.startswith(f"* {release.version}  built ")
    assert f"hubkeeper {release.version}, jupyterhub 6." in listed.stdout
    closed = [str(path) for path in [venv, *venv.rglob("*")]
              if not path.is_symlink() and path.stat().st_mode & 0o004 == 0]
    assert closed == []


def test_a_student_runs_code_on_a_hub_run_by_the_wheels_install(
        release: Release, workdir: Path, hubs, clean_accounts) -> None:
    config = write_config(workdir, name=f"{TEST_ACCOUNT_PREFIX}-rel", mode="system",
                          auth="pam", admins=(), allowed=(STUDENT,),
                          extra=f"service:\n  unit_dir: {workdir / 'units'}\n")
    applied = hk(release, config, "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    subprocess.run(["chpasswd"], input=f"{STUDENT}:{PASSWORD}\n", text=True, check=True)

    hub = hubs.start(config, executable=release.hubkeeper, cwd=workdir)
    result = asyncio.run(run_once(hub.url, STUDENT, PASSWORD, "1+1"))
    assert result == "2"
    api_port = load(config).spec.hub.api_port
    servers = server_pids(api_port)
    assert list(servers.values()) == [STUDENT]
    for pid in servers:  # the server is the install's python, run as the student
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert argv0.startswith(f"{release.prefix}/{release.version}/bin/python")
        assert Path(f"/proc/{pid}").stat().st_uid == pwd.getpwnam(STUDENT).pw_uid
    hub.stop()
    assert hub.proc.returncode == 0, hub.log()[-5000:]

    # The unit names <prefix>/current, so that activating another install needs only a
    # restart; not the versioned path hubkeeper runs from.
    installed = hk(release, config, "service", "install")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    unit = (workdir / "units" / f"hubkeeper-{TEST_ACCOUNT_PREFIX}-rel.service").read_text()
    current_bin = release.prefix / "current" / "bin"
    assert f"\nExecStart={current_bin}/hubkeeper up -c {config}\n" in unit
    assert f"\nEnvironment=PATH={current_bin}:/usr/local/sbin:" in unit
    assert f"/{release.version}/" not in unit


def _processes_of(pgid: int) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ProcessLookupError):
            continue
    return found


def _kill_when(proc: subprocess.Popen[str], needle: str, deadline: float = 300.0) -> None:
    """SIGKILL the build's whole process group once one of its processes runs `needle`."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"the build ended ({proc.returncode}) before {needle!r} ran:"
                                 f"\n{proc.communicate()[0]}")
        if any(needle in command for command in _processes_of(proc.pid)):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"{needle!r} did not run within {deadline} s")


@pytest.mark.parametrize("moment", ["venv", "pip"])
def test_a_build_killed_mid_install_is_never_activated_and_is_rebuilt(
        release: Release, workdir: Path, moment: str) -> None:
    prefix = workdir / "opt"
    # --no-deps: the venv and the wheel alone; the kill and the resume are the same as with
    # every dependency, only quicker
    build = ["build", "--prefix", str(prefix), "--pip-arg=--no-deps", str(release.wheel)]
    first = from_wheel(release.wheel, *build[:3], "--name", "old", *build[3:])
    assert first.returncode == 0, first.stderr
    assert from_wheel(release.wheel, "activate", "--prefix", str(prefix),
                      "--name", "old").returncode == 0

    killed = subprocess.Popen(
        [SYSTEM_PYTHON, "-m", "hubkeeper.host.install", *build[:3], "--name", "new",
         *build[3:]], env={**clean_env(), "PYTHONPATH": str(release.wheel)}, cwd="/",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    new = prefix / "new"
    needle = f"-m venv {new}" if moment == "venv" else f"{new}/bin/python -m pip install"
    _kill_when(killed, needle)
    assert (new / ".incomplete").exists()
    assert not (new / "hubkeeper-install.json").exists()

    refused = from_wheel(release.wheel, "activate", "--prefix", str(prefix), "--name", "new")
    assert refused.returncode == 1
    assert f"error: {new} is an incomplete install" in refused.stderr
    assert os.readlink(prefix / "current") == "old"
    listed = from_wheel(release.wheel, "list", "--prefix", str(prefix)).stdout.splitlines()
    assert [line.split()[:2] for line in listed] == [["*", "old"], ["!", "new"]]

    again = from_wheel(release.wheel, *build[:3], "--name", "new", *build[3:])
    assert again.returncode == 0, again.stdout + again.stderr
    assert not (new / ".incomplete").exists()
    assert (new / "hubkeeper-install.json").is_file()
    imported = subprocess.run([str(new / "bin" / "python"), "-c",
                               "import hubkeeper; print(hubkeeper.__version__)"],
                              capture_output=True, text=True, cwd="/")
    assert imported.stdout.strip() == release.version, imported.stderr
    switched = from_wheel(release.wheel, "activate", "--prefix", str(prefix), "--name", "new")
    assert switched.stdout.strip() == f"{prefix / 'current'} -> new (was old)"
    twice = from_wheel(release.wheel, *build[:3], "--name", "new", *build[3:])
    assert twice.returncode == 1 and "already a complete install" in twice.stderr


def test_a_requirement_pip_cannot_install_fails_the_build_and_changes_nothing(
        release: Release, workdir: Path) -> None:
    prefix = workdir / "opt"
    missing = workdir / "hubkeeper-9.9.9-py3-none-any.whl"
    failed = from_wheel(release.wheel, "install", "--prefix", str(prefix), "--link",
                        str(workdir / "bin" / "hubkeeper"), str(missing))
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"error: pip install {missing} into {prefix / '9.9.9'} "
                                    "failed (exit 1):\n"), failed.stderr
    assert str(missing) in failed.stderr  # pip's own words, its last lines
    assert "hint: nothing was activated" in failed.stderr
    assert (prefix / "9.9.9" / ".incomplete").exists()
    assert not (prefix / "current").is_symlink()
    assert not (workdir / "bin").exists()

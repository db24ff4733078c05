"""The attack tier: each test replays an attack by a real unprivileged account (a student
with a shell) against real hubkeeper code running as root, and asserts that it fails.

`students` makes such accounts (named with the test prefix, removed afterwards by prefix) and
runs code as them through `runuser`, exactly as a JupyterLab terminal would: their own uid,
gid and groups, no capabilities. Every process an attacker leaves running is killed at
teardown.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX, remove_test_accounts, require_root

RUNUSER = "/usr/sbin/runuser"
PYTHON = "/usr/bin/python3"  # Debian's: every account can run it


@dataclass
class Student:
    """A real Linux account with a home, acting as an attacker."""

    name: str
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def entry(self) -> pwd.struct_passwd:
        return pwd.getpwnam(self.name)

    @property
    def uid(self) -> int:
        return self.entry.pw_uid

    @property
    def home(self) -> Path:
        return Path(self.entry.pw_dir)

    def _argv(self, argv: Sequence[str]) -> list[str]:
        return [RUNUSER, "-u", self.name, "--", *argv]

    def run(self, *argv: str, timeout: float = 60, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command as the student, from their home; output captured."""
        done = subprocess.run(self._argv(argv), capture_output=True, text=True, cwd=self.home,
                              timeout=timeout, input=input, env=self._env())
        if check and done.returncode != 0:
            raise AssertionError(f"{self.name}: {argv} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def python(self, code: str, *args: str, timeout: float = 60,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run Python code (dedented) as the student; `args` become sys.argv[1:]."""
        return self.run(PYTHON, "-c", textwrap.dedent(code), *args, timeout=timeout,
                        check=check)

    def start(self, code: str, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        """Python code as the student in the background (a loop, a listener): killed at
        teardown with everything else the account runs."""
        sink = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(self._argv([PYTHON, "-c", textwrap.dedent(code), *args]),
                                stdout=sink, stderr=subprocess.STDOUT, cwd=self.home,
                                env=self._env(), start_new_session=True)
        if log:
            sink.close()
        self.background.append(proc)
        return proc

    def _env(self) -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home),
                "USER": self.name, "LANG": "C.UTF-8"}

    def stop_all(self) -> None:
        for proc in self.background:
            if proc.poll() is None:
                proc.kill()
        subprocess.run(["pkill", "-KILL", "-u", self.name], capture_output=True)
        for proc in self.background:
            proc.wait()


class Students:
    def __init__(self) -> None:
        self.made: list[Student] = []

    def make(self, suffix: str, *, password: str | None = None) -> Student:
        """An account `<prefix><suffix>` with a 0700 home (as hubkeeper's apply makes them)."""
        name = f"{TEST_ACCOUNT_PREFIX}{suffix}"
        subprocess.run(["useradd", "--shell", "/bin/bash", "--create-home", name],
                       check=True, capture_output=True)
        if password:
            subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        student = Student(name)
        os.chmod(student.home, 0o700)
        self.made.append(student)
        return student


@pytest.fixture
def students() -> Iterator[Students]:
    """Real unprivileged accounts to attack with; removed (and their processes killed)
    afterwards, as are leftovers of a killed run."""
    require_root()
    remove_test_accounts()
    made = Students()
    yield made
    for student in made.made:
        student.stop_all()
    remove_test_accounts()

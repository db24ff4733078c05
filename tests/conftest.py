"""Shared fixtures. Policy: under CI=true missing infrastructure FAILS a test; it never skips."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def require(condition: bool, what: str) -> None:
    """Skip locally when `what` is missing; fail in CI, where the suite must install it."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {what}: the test command must provide it", pytrace=False)
    pytest.skip(what)


def require_root() -> None:
    require(os.geteuid() == 0, "needs root (real Linux accounts)")


# Every workdir this session made: at its end, whatever still runs in one is a leak.
SESSION_WORKDIRS: list[Path] = []


@pytest.fixture
def workdir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A temporary directory that any local account can traverse (servers run as users).

    Kept, with its logs, when the test fails: the path is printed in the failure report.
    """
    path = Path(tempfile.mkdtemp(prefix=f"{TEST_ACCOUNT_PREFIX}-"))  # this run's own
    SESSION_WORKDIRS.append(path)
    os.chmod(path, 0o755)
    yield path
    if _failed(request):
        print(f"\nkept for diagnosis: {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:  # noqa: ARG001
    """Kill and name what this session's tests left running (a proxy that outlived a hub
    killed by a test, a server, a hub): its working directory or an argument lies in one of
    this session's workdirs. Only this session's: other runs on the machine use
    /tmp/hktest-* too."""
    import signal

    from tests.support.procs import running_under

    left = running_under(SESSION_WORKDIRS)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for pid, command in sorted(left.items()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        line = f"killed a process left running by the tests: {pid} {command}"
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(line, red=True)
        else:
            print(line)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ARG001
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(getattr(request.node, f"rep_{when}", None) is not None
               and getattr(request.node, f"rep_{when}").failed for when in ("setup", "call"))


@pytest.fixture
def hubs(request: pytest.FixtureRequest):
    """Start hubs with `hubs.start(config)`; all are stopped at teardown, and their logs are
    printed only if the test failed."""
    from tests.support.hubproc import RunningHub, start_hub

    started: list[RunningHub] = []

    class Hubs:
        def start(self, config: Path, **kwargs) -> RunningHub:
            hub = start_hub(config, **kwargs)
            started.append(hub)
            return hub

    yield Hubs()
    for hub in started:
        with contextlib.suppress(AssertionError):
            hub.stop()
    if _failed(request):
        for hub in started:
            print(f"\n===== hubkeeper up log: {hub.output}\n{hub.log()[-20000:]}")


# Test accounts and groups are named with this prefix and removed by it. Two developers'
# partial runs on one machine may each set their own (HK_TEST_PREFIX=hkta), so that one run
# does not remove the other's accounts; the whole suite and CI use the default.
TEST_ACCOUNT_PREFIX = os.environ.get("HK_TEST_PREFIX", "hktest")


def _test_accounts() -> list[str]:
    import pwd

    return [entry.pw_name for entry in pwd.getpwall()
            if entry.pw_name.startswith(TEST_ACCOUNT_PREFIX)]


def remove_test_accounts() -> None:
    """Every hktest* account (with its home) and hktest* group on this machine."""
    import grp
    import subprocess

    for name in _test_accounts():
        _remove_account(name)
    for group in grp.getgrall():
        if group.gr_name.startswith(TEST_ACCOUNT_PREFIX):
            subprocess.run(["groupdel", group.gr_name], capture_output=True)


def _remove_account(name: str) -> None:
    import subprocess

    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    subprocess.run(["userdel", "--remove", name], capture_output=True)
    subprocess.run(["rm", "-rf", f"/home/{name}"], capture_output=True)


@pytest.fixture
def clean_accounts():
    """Root, and no hktest* account or group before and after (for tests that let hubkeeper
    create them)."""
    require_root()
    remove_test_accounts()
    yield
    remove_test_accounts()


@pytest.fixture
def accounts():
    """Create real Linux accounts named hktest*; every one is removed afterwards (by prefix,
    also leftovers of an earlier run that was killed)."""
    import subprocess

    require_root()
    remove_test_accounts()

    def create(name: str, *, home: bool = False, password: str | None = None) -> str:
        assert name.startswith(TEST_ACCOUNT_PREFIX)
        args = ["useradd", "--shell", "/bin/bash"]
        args += ["--create-home"] if home else ["--no-create-home"]
        subprocess.run([*args, name], check=True, capture_output=True)
        if password:
            subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        return name

    yield create
    remove_test_accounts()

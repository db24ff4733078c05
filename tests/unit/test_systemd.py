"""The systemd unit (pure render, golden-tested) and the systemctl calls of `service`.

No systemd runs as PID 1 on the test machines, so systemctl cannot be run here: the calls are
checked with a fake runner that records each command line (and whether the unit file existed
when it ran) and answers is-active / is-enabled like systemd would. How systemd itself reads
the unit, and a real hub started from it, are in tests/component/test_service.py.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.locks import HubLock
from hubkeeper.config import parse
from hubkeeper.context.hub import Hub
from hubkeeper.host.systemd import SystemdHost, in_unit_cgroup, systemctl
from hubkeeper.ops import unit
from hubkeeper.render.systemd import HARDENING, render_unit
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import StatePaths, ensure_layout
from hubkeeper.verbs import service

GOLDEN = Path(__file__).parent / "golden"
CONFIG = Path("/etc/hubkeeper/hub.yaml")
EXECUTABLE = Path("/opt/hubkeeper/.venv/bin/hubkeeper")
COURSE = """
hub: {name: phys101, ip: 127.0.0.1, port: 8000}
auth: {kind: pam}
users: {admins: [prof], allowed: [ann, bo]}
"""
GOLDEN_CASES = {
    "plain": COURSE,
    "on-failure": COURSE + "service: {on_failure: notify-admin@%n.service}\n",
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden(name: str) -> None:
    text = render_unit(parse(GOLDEN_CASES[name]), CONFIG, EXECUTABLE)
    golden = GOLDEN / f"systemd-{name}.service"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_on_failure_only_when_set() -> None:
    plain = render_unit(parse(COURSE), CONFIG, EXECUTABLE)
    hooked = render_unit(parse(GOLDEN_CASES["on-failure"]), CONFIG, EXECUTABLE)
    assert "OnFailure=" not in plain
    assert "\nOnFailure=notify-admin@%n.service\n" in hooked  # %n stays systemd's specifier


def test_each_hardening_setting_has_its_reason_above_it() -> None:
    lines = render_unit(parse(COURSE), CONFIG, EXECUTABLE).splitlines()
    for setting, why in HARDENING:
        at = lines.index(setting)
        assert lines[at - 1] == f"# {why}"
    for absent in ("NoNewPrivileges=", "ProtectHome=", "ProtectSystem=",
                   "ProtectControlGroups=", "PrivateDevices=", "ProtectClock=",
                   "RestrictSUIDSGID="):
        assert not any(line.startswith(absent) for line in lines)


def test_paths_are_quoted_for_systemd() -> None:
    text = render_unit(parse(COURSE), Path("/srv/my hub 100%/hub.yaml"),
                       Path('/opt/a$b "x"/bin/hubkeeper'))
    assert ('ExecStart="/opt/a$$b \\"x\\"/bin/hubkeeper" up -c "/srv/my hub 100%%/hub.yaml"'
            in text.splitlines())
    assert "WorkingDirectory=/srv/my hub 100%%" in text.splitlines()
    assert ('Environment="PATH=/opt/a$b \\"x\\"/bin:/usr/local/sbin:/usr/local/bin:'
            '/usr/sbin:/usr/bin:/sbin:/bin"') in text.splitlines()


def test_a_newline_in_a_path_is_refused() -> None:
    with pytest.raises(ValueError, match="control character"):
        render_unit(parse(COURSE), Path("/srv/a\nExecStartPre=/bin/evil/hub.yaml"), EXECUTABLE)


def test_in_unit_cgroup() -> None:
    unit = "hubkeeper-phys101.service"
    assert in_unit_cgroup(f"0::/system.slice/{unit}\n", unit)
    assert in_unit_cgroup(f"0::/system.slice/{unit}/hub\n", unit)  # a delegated sub-cgroup
    assert in_unit_cgroup(f"12:pids:/\n1:name=systemd:/system.slice/{unit}\n", unit)
    assert not in_unit_cgroup("0::/user.slice/user-0.slice/session-3.scope\n", unit)
    assert not in_unit_cgroup(f"0::/system.slice/x{unit}\n", unit)
    assert not in_unit_cgroup("0::/\n", unit)


class FakeSystemctl:
    """systemctl as systemd would answer it (systemd cannot run here, see the docstring)."""

    def __init__(self, unit_dir: Path, fail: str | None = None) -> None:
        self.unit_dir = unit_dir
        self.fail = fail  # a verb that fails, as systemctl does
        self.calls: list[tuple[list[str], bool]] = []  # command, did the unit file exist
        self.active: set[str] = set()
        self.enabled: set[str] = set()

    def __call__(self, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        command = list(command)
        verb, units = command[1], [word for word in command[2:] if not word.startswith("-")]
        exists = bool(units) and (self.unit_dir / units[0]).exists()
        self.calls.append((command, exists))

        def answer(out: str = "", code: int = 0, err: str = ""):
            return subprocess.CompletedProcess(command, code, out, err)

        if verb == self.fail:
            return answer(code=1, err=f"Failed to {verb} unit: Access denied")
        if verb == "is-active":
            return answer("active\n") if units[0] in self.active else answer("inactive\n", 3)
        if verb == "is-enabled":
            if not exists:
                return answer(code=1, err=f"Failed to get unit file state for {units[0]}")
            return answer("enabled\n") if units[0] in self.enabled else answer("disabled\n", 1)
        if verb == "enable":
            self.enabled.add(units[0])
            self.active.add(units[0])
        if verb == "disable":
            self.enabled.discard(units[0])
            self.active.discard(units[0])
        return answer()

    def commands(self) -> list[list[str]]:
        return [command for command, _ in self.calls]

    def changes(self) -> list[tuple[list[str], bool]]:
        return [(command, exists) for command, exists in self.calls
                if command[1] not in ("is-active", "is-enabled")]


def write_hub(directory: Path, extra: str = "") -> Path:
    config = directory / "hub.yaml"
    config.write_text(
        "hub: {name: hkunit, mode: personal, state_dir: state}\n"
        "users: {allowed: [ann]}\n"
        f"service:\n  unit_dir: {directory / 'units'}\n{extra}")
    return config


def test_install_enables_and_starts_once(tmp_path: Path) -> None:
    config = write_hub(tmp_path)
    fake = FakeSystemctl(tmp_path / "units")
    host = SystemdHost(booted=True, pid1="systemd", runner=fake)
    unit = "hubkeeper-hkunit.service"

    first = service.install(Hub.open(config), host)
    assert first.written and first.active == "active" and first.enabled == "enabled"
    assert fake.changes() == [(["systemctl", "daemon-reload"], False),
                              (["systemctl", "enable", "--now", unit], True)]
    assert first.commands == ("systemctl daemon-reload", f"systemctl enable --now {unit}")
    assert not first.restart_needed

    fake.calls.clear()
    second = service.install(Hub.open(config), host)
    assert not second.written and second.commands == ()
    assert fake.changes() == []  # only is-active / is-enabled were asked

    # Someone stopped it by hand: install starts it again, without a daemon-reload.
    fake.active.discard(unit)
    fake.calls.clear()
    third = service.install(Hub.open(config), host)
    assert fake.changes() == [(["systemctl", "enable", "--now", unit], True)]
    assert third.active == "active"

    # hub.yaml changed under the running hub: the unit is rewritten; the hub keeps running.
    write_hub(tmp_path, "  on_failure: notify-admin@%n.service\n")
    fake.calls.clear()
    fourth = service.install(Hub.open(config), host)
    assert fourth.written and fourth.restart_needed
    assert [command for command, _ in fake.changes()] == [
        ["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", unit]]


def test_uninstall_disables_then_removes_then_reloads(tmp_path: Path) -> None:
    config = write_hub(tmp_path)
    fake = FakeSystemctl(tmp_path / "units")
    host = SystemdHost(booted=True, pid1="systemd", runner=fake)
    service.install(Hub.open(config), host)
    fake.calls.clear()
    unit = "hubkeeper-hkunit.service"

    result = service.uninstall(Hub.open(config), host)
    # disable --now while the file is there; daemon-reload once it is gone
    assert fake.changes() == [(["systemctl", "disable", "--now", unit], True),
                              (["systemctl", "daemon-reload"], False)]
    assert result.removed == (str(tmp_path / "units" / unit),)
    assert Journal.load(tmp_path / "state" / "journal.json").files == {}
    assert unit not in fake.active


def test_uninstall_of_a_hand_edited_unit_changes_nothing(tmp_path: Path) -> None:
    config = write_hub(tmp_path)
    fake = FakeSystemctl(tmp_path / "units")
    host = SystemdHost(booted=True, pid1="systemd", runner=fake)
    service.install(Hub.open(config), host)
    path = tmp_path / "units" / "hubkeeper-hkunit.service"
    with path.open("a") as unit:
        unit.write("Nice=5\n")
    fake.calls.clear()
    with pytest.raises(HubkeeperError, match="changed by hand") as refused:
        service.uninstall(Hub.open(config), host)
    assert "systemctl disable --now hubkeeper-hkunit.service" in (refused.value.hint or "")
    assert fake.calls == []  # not even stopped
    assert path.read_text().endswith("Nice=5\n")
    assert str(path) in Journal.load(tmp_path / "state" / "journal.json").files


def test_a_hub_running_outside_systemd_is_not_started_twice(tmp_path: Path) -> None:
    config = write_hub(tmp_path)
    paths = StatePaths(tmp_path / "state")
    ensure_layout(paths)
    fake = FakeSystemctl(tmp_path / "units")
    # This test process holds the hub lock: it plays a `hubkeeper up` run by hand.
    with HubLock(paths), pytest.raises(HubkeeperError,
                                       match="already runs outside systemd") as refused:
        service.install(Hub.open(config), SystemdHost(booted=True, pid1="systemd", runner=fake))
    assert f"(pid {os.getpid()}," in refused.value.message
    assert f"kill -TERM {os.getpid()}" in (refused.value.hint or "")
    assert fake.calls == []
    assert not (tmp_path / "units").exists()


def test_the_hub_systemd_runs_is_no_obstacle(tmp_path: Path) -> None:
    """The lock holder is in the unit's cgroup (read through the host's /proc seam)."""
    config = write_hub(tmp_path)
    paths = StatePaths(tmp_path / "state")
    ensure_layout(paths)
    proc = tmp_path / "proc"
    (proc / str(os.getpid())).mkdir(parents=True)
    (proc / str(os.getpid()) / "cgroup").write_text(
        "0::/system.slice/hubkeeper-hkunit.service\n")
    fake = FakeSystemctl(tmp_path / "units")
    with HubLock(paths):
        result = service.install(
            Hub.open(config), SystemdHost(booted=True, pid1="systemd", runner=fake, proc=proc))
    assert result.written


def test_a_failing_systemctl_is_an_error_that_says_what_failed(tmp_path: Path) -> None:
    config = write_hub(tmp_path)
    fake = FakeSystemctl(tmp_path / "units", fail="enable")
    with pytest.raises(HubkeeperError) as failed:
        service.install(Hub.open(config), SystemdHost(booted=True, pid1="systemd", runner=fake))
    assert failed.value.message == ("`systemctl enable --now hubkeeper-hkunit.service` failed "
                                    "(exit 1): Failed to enable unit: Access denied")


def test_systemctl_command_line() -> None:
    seen: list[list[str]] = []

    def runner(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        seen.append(list(command))
        return subprocess.CompletedProcess(command, 0, "", "")

    systemctl(runner, "daemon-reload")
    assert seen == [["systemctl", "daemon-reload"]]


def test_status_without_systemd_asks_no_systemctl(tmp_path: Path) -> None:
    config = write_hub(tmp_path)
    fake = FakeSystemctl(tmp_path / "units")
    host = SystemdHost(booted=False, pid1="process_api", runner=fake)
    assert service.status(Hub.open(config), host).file == "absent"
    written = service.install(Hub.open(config), host)
    assert written.written and written.commands == () and written.active is None
    hub = Hub.open(config)
    state = unit.service_state(hub.loaded, hub.paths, host)
    assert (state.file, state.systemd, state.pid1, state.active) == (
        "installed", False, "process_api", None)
    assert fake.calls == []

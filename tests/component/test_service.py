"""The hub as a systemd service: the unit as systemd reads it, a real hub started from it, and
`hubkeeper service install | uninstall | status` through the CLI.

systemd is NOT PID 1 on these machines (nor on CI), so no test here pretends it is:
- `systemd-analyze verify` checks the unit offline with systemd's own parser, and its debug
  dump says how systemd reads each setting;
- the hub is started from the unit's ExecStart, WorkingDirectory and Environment the way
  systemd starts a service (its own session, only the unit's environment, a cgroup of its own
  that holds everything it starts) and stopped the way KillMode=mixed stops it (SIGTERM to
  the main process only; SIGKILL for whatever is left);
- `systemctl` is never run; its command lines are tested with a fake runner in
  tests/unit/test_systemd.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hubkeeper.base.locks import HubLock
from hubkeeper.config import load
from hubkeeper.render.systemd import render_unit
from hubkeeper.state.statedir import StatePaths, ensure_layout
from tests.conftest import TEST_ACCOUNT_PREFIX, require
from tests.support.hubproc import HUBKEEPER, write_config
from tests.support.procs import alive, proxy_pids, server_pids, wait_gone
from tests.support.simuser import SimUser

pytestmark = pytest.mark.component

HUB_NAME = f"{TEST_ACCOUNT_PREFIX}-svc"
UNIT = f"hubkeeper-{HUB_NAME}.service"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUBKEEPER, *args], capture_output=True, text=True, timeout=120)


def pid1() -> str:
    return Path("/proc/1/comm").read_text().strip()


def no_systemd() -> None:
    """These tests stand in for systemd; where it is PID 1 they would not be needed."""
    assert not Path("/run/systemd/system").is_dir(), "systemd runs here: use systemctl"


def write_unit(directory: Path, config: Path, extra_lines: str = "") -> Path:
    """The unit `service install` would write for config, as a file systemd-analyze reads."""
    spec = load(config).spec
    path = directory / f"hubkeeper-{spec.hub.name}.service"
    path.write_text(render_unit(spec, config, Path(HUBKEEPER)) + extra_lines)
    return path


def analyze(unit: Path, debug: bool = False) -> subprocess.CompletedProcess[str]:
    analyzer = shutil.which("systemd-analyze")
    require(analyzer is not None, "systemd-analyze is missing (Debian package systemd)")
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "debug"} if debug else None
    return subprocess.run([analyzer, "verify", str(unit)], capture_output=True, text=True,
                          timeout=120, env=env)


def systemd_reading(unit: Path) -> dict[str, list[str]]:
    """How systemd reads the unit: the dump `systemd-analyze verify` prints at debug level
    (settings after parsing and unescaping; ExecStart's command line as 'ExecStart')."""
    done = analyze(unit, debug=True)
    assert done.returncode == 0, done.stderr[-3000:]
    reading: dict[str, list[str]] = {}
    inside = False
    for line in done.stdout.splitlines():
        if line.strip() == f"-> Unit {unit.name}:":
            inside = True
            continue
        if inside and not line.startswith("\t"):
            break
        if inside and ":" in line:
            key, value = line.strip().split(":", 1)
            value = value.strip()
            reading.setdefault("ExecStart" if key == "Command Line" else key, []).append(value)
    assert reading, f"systemd-analyze printed no dump of {unit.name}:\n{done.stdout[-3000:]}"
    return reading


def unit_setting(unit_text: str, key: str) -> str | None:
    for line in unit_text.splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    return None


def would_restart(unit_text: str, returncode: int) -> bool:
    """systemd.service(5) for Restart=on-failure: a clean exit (code 0, SuccessExitStatus=,
    or death by SIGHUP, SIGINT, SIGTERM or SIGPIPE) is not restarted, nor an exit code in
    RestartPreventExitStatus=; any other exit code or signal is."""
    assert unit_setting(unit_text, "Restart") == "on-failure"
    success = (unit_setting(unit_text, "SuccessExitStatus") or "").split()
    prevent = (unit_setting(unit_text, "RestartPreventExitStatus") or "").split()
    if returncode < 0:
        return -returncode not in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM,
                                   signal.SIGPIPE)
    return returncode != 0 and str(returncode) not in success + prevent


def seconds(value: str) -> float:
    """A systemd time span as the dump prints it ('30s', '1min 30s')."""
    total = 0.0
    for part in value.split():
        number = part.rstrip("minsh")
        unit = part[len(number):]
        total += float(number) * {"s": 1, "min": 60, "h": 3600, "ms": 0.001}[unit]
    return total


# --- the unit as systemd reads it ---------------------------------------------------------


def test_systemd_analyze_verify_accepts_the_unit(workdir: Path) -> None:
    """Offline: systemd-analyze verify needs no systemd as PID 1 (ExecStart must exist)."""
    for extra in ("", "service:\n  on_failure: notify-admin@%n.service\n"):
        config = write_config(workdir, name=HUB_NAME, extra=extra)
        unit = write_unit(workdir, config)
        done = analyze(unit)
        assert done.returncode == 0, done.stderr
        ours = [line for line in done.stderr.splitlines() if unit.name in line]
        assert ours == [], "\n".join(ours)

    # The check can fail: a misspelt setting is reported, a missing ExecStart refused.
    typo = write_unit(workdir, config, "KillMod=mixed\n")
    assert f"{typo}:" in analyze(typo).stderr and "Unknown key" in analyze(typo).stderr
    missing = workdir / "missing" / "hubkeeper-x.service"
    missing.parent.mkdir()
    missing.write_text(render_unit(load(config).spec, config, workdir / "no-such-hubkeeper"))
    assert analyze(missing).returncode != 0


def test_systemd_reads_the_unit_as_intended(workdir: Path) -> None:
    config = write_config(workdir, name=HUB_NAME,
                          extra="service:\n  on_failure: notify-admin@%n.service\n")
    reading = systemd_reading(write_unit(workdir, config))
    one = {key: values[0] for key, values in reading.items()}
    assert one["ExecStart"] == f"{HUBKEEPER} up -c {config}"
    assert one["WorkingDirectory"] == str(workdir)
    assert one["Environment"].startswith(f"PATH={Path(HUBKEEPER).parent}:")
    assert (one["KillMode"], one["KillSignal"], one["FinalKillSignal"]) == (
        "mixed", "SIGTERM", "SIGKILL")
    assert seconds(one["TimeoutStopSec"]) > 10  # `hubkeeper up` gives the hub 10 s
    assert (one["Restart"], one["OOMPolicy"]) == ("on-failure", "continue")
    assert one["OnFailure"].startswith(f"notify-admin@{UNIT}.service")
    for setting in ("PrivateTmp", "ProtectKernelTunables", "ProtectKernelModules",
                    "ProtectKernelLogs", "ProtectHostname", "RestrictRealtime",
                    "LockPersonality"):
        assert one[setting] == "yes", setting
    for setting in ("ProtectHome", "ProtectSystem", "ProtectControlGroups", "PrivateDevices",
                    "ProtectClock", "RestrictSUIDSGID"):
        assert one[setting] == "no", setting
    # What the hub needs of root stays: switching to users, PAM, homes; CAP_SYS_ADMIN also
    # keeps the seccomp-based settings from implying NoNewPrivileges (setuid passwd works).
    capabilities = one["CapabilityBoundingSet"].split()
    for needed in ("cap_setuid", "cap_setgid", "cap_chown", "cap_dac_override", "cap_fowner",
                   "cap_kill", "cap_sys_admin", "cap_audit_write"):
        assert needed in capabilities, needed
    assert "cap_sys_module" not in capabilities and "cap_syslog" not in capabilities


# --- a real hub started from the unit -----------------------------------------------------


def cgroup2_root() -> Path | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    return None


@pytest.fixture
def unit_cgroup() -> Iterator[Path]:
    """A cgroup of its own, as systemd gives each service: it holds every process the unit
    starts, whatever session or parent they have."""
    root = cgroup2_root()
    require(root is not None, "no cgroup2 hierarchy is mounted")
    assert root is not None
    path = root / f"{TEST_ACCOUNT_PREFIX}-{uuid.uuid4().hex[:8]}.service"
    try:
        path.mkdir()
    except OSError as exc:
        require(False, f"cannot make a cgroup under {root} ({exc.strerror})")
    yield path
    with contextlib.suppress(OSError):
        (path / "cgroup.kill").write_text("1")
    end = time.monotonic() + 10
    while populated(path) and time.monotonic() < end:
        time.sleep(0.1)
    path.rmdir()


def populated(cgroup: Path) -> bool:
    return "populated 1" in (cgroup / "cgroup.events").read_text()


def members(cgroup: Path) -> list[int]:
    return [int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()]


@dataclass
class Started:
    proc: subprocess.Popen[bytes]
    output: Path
    url: str

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def start_as_systemd_would(reading: dict[str, list[str]], cgroup: Path, output: Path,
                           url: str, deadline: float = 120.0) -> Started:
    """ExecStart in WorkingDirectory with only the unit's Environment, in a new session and
    the unit's cgroup, stdin from /dev/null. The one variable added is PYTHONPATH, when the
    suite runs from a source tree, so that the code under test is what runs."""
    argv = shlex.split(reading["ExecStart"][0])
    env = dict(item.split("=", 1) for item in reading["Environment"])
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    def enter_cgroup() -> None:
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    with open(output, "ab") as sink:
        proc = subprocess.Popen(argv, cwd=reading["WorkingDirectory"][0], env=env,
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=enter_cgroup)
    started = Started(proc, output, url)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"the unit's ExecStart exited with {proc.returncode}:\n"
                                 f"{started.log()[-5000:]}")
        if answers(url) and "is up at" in started.log():
            return started
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no hub at {url} within {deadline} s:\n{started.log()[-5000:]}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "hub/api/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


async def start_a_server(url: str, password: str) -> str:
    async with SimUser(url, "student1", password) as user:
        await user.login()
        await user.start_server()
        await user.open_server()
        return await user.run_code("6 * 7")


def hub_under_test(workdir: Path) -> tuple[Path, Path, dict[str, list[str]], str]:
    config = write_config(workdir, name=HUB_NAME)
    unit = write_unit(workdir, config)
    spec = load(config).spec
    return config, unit, systemd_reading(unit), f"http://127.0.0.1:{spec.hub.port}/"


def test_sigterm_to_the_main_process_stops_hub_proxy_and_servers_cleanly(
        workdir: Path, unit_cgroup: Path) -> None:
    """KillMode=mixed: SIGTERM to `hubkeeper up` alone; everything is gone before
    TimeoutStopSec, and the exit is one Restart=on-failure leaves alone."""
    no_systemd()
    config, unit, reading, url = hub_under_test(workdir)
    spec = load(config).spec
    hub = start_as_systemd_would(reading, unit_cgroup, workdir / "journal.log", url)
    password = (workdir / "state" / "secrets" / "shared-password").read_text().strip()
    assert asyncio.run(start_a_server(url, password)) == "42"

    hub_pid = int((workdir / "state" / "run" / "jupyterhub.pid").read_text())
    (server,) = server_pids(spec.hub.api_port)
    (proxy,) = proxy_pids(spec.proxy.api_port)
    inside = members(unit_cgroup)
    assert {hub.proc.pid, hub_pid, server, proxy} <= set(inside), inside  # systemd sees all

    hub.proc.send_signal(signal.SIGTERM)  # the main process only, as KillMode=mixed does
    timeout = seconds(reading["TimeoutStopSec"][0])
    try:
        hub.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`hubkeeper up` still ran after TimeoutStopSec ({timeout} s): "
                             f"systemd would SIGKILL the hub\n{hub.log()[-5000:]}") from None
    # Now systemd SIGKILLs what is left in the cgroup: nothing may be left that is working.
    assert not alive(hub_pid) and not alive(server), hub.log()[-5000:]
    assert wait_gone([proxy], deadline=2) == []
    end = time.monotonic() + 2
    while populated(unit_cgroup) and time.monotonic() < end:
        time.sleep(0.05)
    assert members(unit_cgroup) == []
    assert hub.proc.returncode == 0, hub.log()[-5000:]
    assert not would_restart(unit.read_text(), hub.proc.returncode)
    assert f"hub '{HUB_NAME}' stopped cleanly" in hub.log()


def test_a_killed_hub_is_a_failure_that_restart_on_failure_recovers(
        workdir: Path, unit_cgroup: Path) -> None:
    """kill -9 of `hubkeeper up`: systemd counts it a failure, SIGKILLs the rest of the unit
    and starts ExecStart again, which must bring the hub back (systemd is not running here:
    the test does those steps)."""
    no_systemd()
    config, unit, reading, url = hub_under_test(workdir)
    hub = start_as_systemd_would(reading, unit_cgroup, workdir / "journal.log", url)
    password = (workdir / "state" / "secrets" / "shared-password").read_text().strip()
    assert asyncio.run(start_a_server(url, password)) == "42"

    hub.proc.send_signal(signal.SIGKILL)
    hub.proc.wait(timeout=30)
    assert hub.proc.returncode == -signal.SIGKILL
    assert would_restart(unit.read_text(), hub.proc.returncode)
    (unit_cgroup / "cgroup.kill").write_text("1")  # KillMode=mixed: the rest gets SIGKILL
    end = time.monotonic() + 10
    while populated(unit_cgroup) and time.monotonic() < end:
        time.sleep(0.05)
    assert members(unit_cgroup) == []

    again = start_as_systemd_would(reading, unit_cgroup, workdir / "journal2.log", url)
    assert asyncio.run(start_a_server(url, password)) == "42"
    again.proc.send_signal(signal.SIGTERM)
    again.proc.wait(timeout=seconds(reading["TimeoutStopSec"][0]))
    assert again.proc.returncode == 0, again.log()[-5000:]
    # Exit code 2 (bad hub.yaml, a port taken) is not restarted: it would fail again.
    assert not would_restart(unit.read_text(), 2)


# --- hubkeeper service install | uninstall | status ------------------------------------------


def service_hub(workdir: Path, extra: str = "") -> tuple[Path, Path]:
    units = workdir / "units"
    config = write_config(workdir, name=HUB_NAME,
                          extra=f"service:\n  unit_dir: {units}\n{extra}")
    return config, units / UNIT


def journal_files(workdir: Path) -> dict[str, dict]:
    path = workdir / "state" / "journal.json"
    return json.loads(path.read_text())["files"] if path.exists() else {}


def test_install_status_uninstall_round_trip(workdir: Path) -> None:
    no_systemd()
    config, unit = service_hub(workdir, "  on_failure: notify-admin@%n.service\n")
    assert json.loads(cli("service", "status", "-c", str(config), "--json").stdout)[
        "file"] == "absent"

    first = cli("service", "install", "-c", str(config))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"wrote {unit} (recorded in the journal)",
        f"systemd is not running on this machine (PID 1 is {pid1()}): the unit is written "
        "but not enabled or started; start the hub with `hubkeeper up`"]
    content = unit.read_bytes()
    assert content.decode() == render_unit(load(config).spec, config, Path(HUBKEEPER))
    assert oct(unit.stat().st_mode & 0o7777) == "0o644"
    record = journal_files(workdir)[str(unit)]
    assert record == {"path": str(unit), "kind": "systemd-unit", "state": "created",
                      "sha256": hashlib.sha256(content).hexdigest(), "detail": {}}

    before = unit.stat()
    second = cli("service", "install", "-c", str(config))
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[0] == (
        f"{unit} already holds what hubkeeper writes: nothing changed")
    assert (unit.stat().st_ino, unit.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    status = json.loads(cli("service", "status", "-c", str(config), "--json").stdout)
    assert (status["file"], status["systemd"], status["pid1"], status["active"]) == (
        "installed", False, pid1(), None)

    gone = cli("service", "uninstall", "-c", str(config))
    assert gone.returncode == 0, gone.stderr
    assert f"removed {unit} (and its journal record)" in gone.stdout
    assert not unit.exists() and journal_files(workdir) == {}
    again = cli("service", "uninstall", "-c", str(config))
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_a_hand_edited_unit_is_neither_replaced_nor_removed(workdir: Path) -> None:
    config, unit = service_hub(workdir)
    assert cli("service", "install", "-c", str(config)).returncode == 0
    edited = unit.read_text().replace("RestartSec=5s", "RestartSec=1s")
    unit.write_text(edited)
    record = journal_files(workdir)[str(unit)]

    status = json.loads(cli("service", "status", "-c", str(config), "--json").stdout)
    assert status["file"] == "hand-edited"
    for verb in ("install", "uninstall"):
        refused = cli("service", verb, "-c", str(config))
        assert refused.returncode == 1, refused.stdout
        assert (f"error: {unit} was changed by hand since hubkeeper wrote it; hubkeeper "
                "leaves it alone") in refused.stderr
        assert "nothing was changed" in refused.stderr
        assert unit.read_text() == edited
        assert journal_files(workdir)[str(unit)] == record

    # Removed by hand: the journal record is dropped, nothing else is touched.
    unit.unlink()
    assert json.loads(cli("service", "status", "-c", str(config), "--json").stdout)[
        "file"] == "missing"
    assert cli("service", "uninstall", "-c", str(config)).returncode == 0
    assert journal_files(workdir) == {}


def test_a_foreign_unit_is_refused_and_untouched(workdir: Path) -> None:
    config, unit = service_hub(workdir)
    unit.parent.mkdir()
    unit.write_text("[Service]\nExecStart=/usr/bin/true\n")
    os.chmod(unit, 0o600)
    refused = cli("service", "install", "-c", str(config))
    assert refused.returncode == 1
    assert (f"error: {unit} exists and was not written by hubkeeper (it is not in the "
            "journal)") in refused.stderr
    assert unit.read_text() == "[Service]\nExecStart=/usr/bin/true\n"
    assert oct(unit.stat().st_mode & 0o777) == "0o600"
    assert journal_files(workdir) == {}
    status = json.loads(cli("service", "status", "-c", str(config), "--json").stdout)
    assert status["file"] == "foreign"
    left = cli("service", "uninstall", "-c", str(config))
    assert left.returncode == 0
    assert f"{unit} was not written by hubkeeper: left alone" in left.stdout
    assert unit.exists()


def test_a_bad_on_failure_names_file_line_field_and_changes_nothing(workdir: Path) -> None:
    config, unit = service_hub(workdir, '  on_failure: "mail me"\n')
    line = next(number for number, text in enumerate(config.read_text().splitlines(), 1)
                if "on_failure" in text)
    refused = cli("service", "install", "-c", str(config))
    assert refused.returncode == 2
    assert (f"{config}:{line}:15: service.on_failure: 'mail me' is not valid; use a systemd "
            "unit name ending in .service or .target") in refused.stderr
    assert not unit.parent.exists() and not (workdir / "state").exists()


def test_a_unit_dir_that_cannot_be_made_is_refused_before_anything(workdir: Path) -> None:
    (workdir / "afile").write_text("")
    config = write_config(workdir, name=HUB_NAME,
                          extra=f"service:\n  unit_dir: {workdir / 'afile' / 'units'}\n")
    line = next(number for number, text in enumerate(config.read_text().splitlines(), 1)
                if "unit_dir" in text)
    refused = cli("service", "install", "-c", str(config))
    assert refused.returncode == 2
    assert (f"{config}:{line}:13: service.unit_dir: {workdir / 'afile'} is not a directory"
            in refused.stderr)
    assert not (workdir / "state").exists()


def test_install_beside_a_hub_run_by_hand(workdir: Path) -> None:
    """No systemd here: the unit is written, nothing is started, and the operator is told
    that a hub already runs. (Where systemd runs, install refuses: tests/unit.)"""
    no_systemd()
    config, unit = service_hub(workdir)
    paths = StatePaths(workdir / "state")
    ensure_layout(paths)
    with HubLock(paths):  # this test process plays the `hubkeeper up` run by hand
        done = cli("service", "install", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert f"a hub of this hub.yaml already runs (pid {os.getpid()}, `hubkeeper up`)" in (
        done.stdout)
    assert unit.exists()

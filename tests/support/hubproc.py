"""Run `hubkeeper up` as a real process on free ports, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.config import load
from tests.conftest import TEST_ACCOUNT_PREFIX

HUBKEEPER = str(Path(sys.executable).parent / "hubkeeper")


def hk(config: Path, *args: str, timeout: float = 900,
       **kwargs) -> subprocess.CompletedProcess[str]:
    """`hubkeeper --config CONFIG ARGS`, its output captured as text."""
    return subprocess.run([HUBKEEPER, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """`result`, after asserting it succeeded (its command and output in the message)."""
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_config(directory: Path, *, name: str = TEST_ACCOUNT_PREFIX, mode: str = "personal",
                 auth: str = "shared-password", admins: tuple[str, ...] = ("instructor",),
                 allowed: tuple[str, ...] = ("student1", "student2"), proxy: str = "python",
                 extra: str = "", hub_extra: str = "", users: str | None = None,
                 proxy_extra: str = "") -> Path:
    """directory/hub.yaml on free loopback ports. `hub_extra`: more lines of the hub section
    (indented), `proxy_extra` of the proxy section; `users`: the users section's body
    instead of `admins` and `allowed`;
    `extra`: more sections at the end."""
    port, api_port, proxy_port = free_ports(3)
    if users is None:
        users = f"  admins: [{', '.join(admins)}]\n  allowed: [{', '.join(allowed)}]\n"
    text = f"""\
version: 1
hub:
  name: {name}
  ip: 127.0.0.1
  port: {port}
  api_port: {api_port}
  state_dir: state
  mode: {mode}
{hub_extra}auth:
  kind: {auth}
users:
{users}proxy:
  kind: {proxy}
  api_port: {proxy_port}
{proxy_extra}{extra}"""
    path = directory / "hub.yaml"
    path.write_text(text)
    return path


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "hub/api/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class RunningHub:
    config: Path
    url: str
    proc: subprocess.Popen[bytes]
    output: Path

    @property
    def state(self) -> Path:
        return self.config.parent / "state"

    def secret(self, name: str) -> str:
        return (self.state / "secrets" / name).read_text().strip()

    @property
    def password(self) -> str:
        return self.secret("shared-password")

    @property
    def admin_password(self) -> str:
        return self.secret("admin-password")

    def hub_pid(self) -> int:
        return int((self.state / "run" / "jupyterhub.pid").read_text())

    def proxy_pid(self) -> int:
        return int((self.state / "run" / "proxy.pid").read_text())

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_logged(self, text: str, deadline: float = 15.0) -> str:
        """The log once it holds `text`: `up` echoes hub.log into its output a moment after
        the hub writes it, so a line logged while answering a request may not be there yet
        when the answer arrives."""
        end = time.monotonic() + deadline
        while text not in (log := self.log()):
            if time.monotonic() > end:
                raise AssertionError(f"{text!r} not logged within {deadline} s:\n{log[-3000:]}")
            time.sleep(0.1)
        return log

    def stop(self, signum: int = signal.SIGTERM, deadline: float = 30.0) -> float:
        """Signal `hubkeeper up`; return how long it took to exit."""
        began = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"hubkeeper up did not exit within {deadline} s") from None
        return time.monotonic() - began


def pam_hub(directory: Path, name: str, rest: str) -> Path:
    """directory/hub.yaml for a system-mode hub with PAM login on free loopback ports;
    `rest` is the YAML after the hub, proxy and auth sections (users:, data:, ...)."""
    port, api_port, proxy_port = free_ports(3)
    config = directory / "hub.yaml"
    config.write_text(
        f"hub: {{name: {name}, ip: 127.0.0.1, port: {port}, api_port: {api_port}, "
        "state_dir: state}\n"
        f"proxy: {{api_port: {proxy_port}}}\n"
        "auth: {kind: pam}\n" + rest)
    return config


def start_hub(config: Path, deadline: float = 120.0, env: dict[str, str] | None = None,
              log_name: str = "up.log", executable: str = HUBKEEPER,
              cwd: Path | None = None) -> RunningHub:
    """`executable up` (the clone's hubkeeper unless another install's is given)."""
    output = config.parent / log_name
    with open(output, "ab") as sink:
        proc = subprocess.Popen(
            [executable, "--config", str(config), "up"],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, start_new_session=True, cwd=cwd,
        )
    spec = load(config).spec
    hub = RunningHub(config, f"http://127.0.0.1:{spec.hub.port}/", proc, output)
    hub_api = f"http://127.0.0.1:{spec.hub.api_port}/"  # the hub itself, before the proxy
    hub_up = False
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"hubkeeper up exited with {proc.returncode}:\n{hub.log()}")
        hub_up = hub_up or _answers(hub_api)
        if hub_up and _answers(hub.url) and (hub.state / "run" / "jupyterhub.pid").exists():
            return hub
        time.sleep(0.2)
    hub.stop(signal.SIGKILL)
    raise AssertionError(f"hub not up within {deadline} s:\n{hub.log()}")


def journaled(config: Path, *accounts: str, prefix: str = "") -> Path:
    """Record existing test accounts (made by the `accounts` fixture with useradd) in the
    hub's journal as hubkeeper's, the way `hubkeeper adopt` records the accounts it takes
    over: in system mode a hub user runs only as an account the journal holds. The hub user
    is the account without `prefix` (users.account_prefix)."""
    from hubkeeper.state.statedir import state_paths

    record_accounts(state_paths(load(config), True).journal, *accounts, prefix=prefix)
    return config


def record_accounts(journal_path: Path, *accounts: str, prefix: str = "") -> Path:
    """Accounts recorded as created by hubkeeper in the journal at `journal_path`."""
    import pwd

    from hubkeeper.state.journal import AccountRecord, Journal

    journal = Journal.load(journal_path)
    for account in accounts:
        entry = pwd.getpwnam(account)
        journal.accounts[account] = AccountRecord(
            account=account, user=account.removeprefix(prefix), state="created",
            uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)
    journal.save()
    return journal_path


def apply_accounts(config: Path, password: str | None = None,
                   accounts: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`hubkeeper apply`: the roster's accounts made (and journaled) by hubkeeper itself;
    then `accounts` get `password` (chpasswd), so tests need not read the credentials."""
    done = subprocess.run([HUBKEEPER, "--config", str(config), "apply"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    if password and accounts:
        subprocess.run(["chpasswd"], input="".join(f"{name}:{password}\n" for name in accounts),
                       text=True, check=True)
    return done

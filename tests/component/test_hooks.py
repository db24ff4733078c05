"""Start-up hooks, the disk guard and `hubkeeper usage`, as root with real Linux accounts: real
hubs, real logins through the form, real servers and kernels."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import HUBKEEPER, journaled, write_config
from tests.support.procs import wait_gone
from tests.support.simuser import SimUser, SimUserError, run_once

pytestmark = [pytest.mark.component, pytest.mark.root]

PASSWORD = "Correct-Horse-7"


def script(path: Path, body: str) -> str:
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return str(path.relative_to(path.parent.parent))


def outbox(workdir: Path) -> Path:
    """A folder every account may write to (as_user hooks report here)."""
    out = workdir / "out"
    out.mkdir()
    os.chmod(out, 0o1777)
    return out


def hooks_yaml(as_root: list[str] = (), as_user: list[str] = (), on_failure: str = "fail",
               timeout: str = "20s", min_free: str = "1M") -> str:
    def items(scripts) -> str:
        listed = ", ".join(f"{{script: {s}, timeout: {timeout}}}" for s in scripts)
        return f"[{listed}]"

    return (f"hooks:\n  on_failure: {on_failure}\n  as_root: {items(as_root)}\n"
            f"  as_user: {items(as_user)}\ndata:\n  min_free: {min_free}\n")


async def run_as(url: str, name: str, code: str) -> str:
    return await run_once(url, name, PASSWORD, code)


async def run_in_running_server(url: str, name: str, code: str) -> str:
    async with SimUser(url, name, PASSWORD) as user:
        await user.login()
        await user.open_server()
        return await user.run_code(code)


def hub_log(hub) -> str:
    """The hub's own log file (the `up` echo may lag behind it)."""
    return (hub.state / "logs" / "hub.log").read_text(errors="replace")


def group_members(pgid: int) -> list[int]:
    """Processes (not zombies) in process group `pgid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


async def failed_start(url: str, name: str) -> tuple[str, str, float]:
    """(the start request's error, the progress stream, seconds until the start failed)."""
    async with SimUser(url, name, PASSWORD) as user:
        await user.login()
        began = time.monotonic()
        with pytest.raises(SimUserError) as caught:
            await user.start_server(deadline=60)
        elapsed = time.monotonic() - began
        progress = user.base + f"hub/api/users/{name}/server/progress"
        async with user.session.get(progress, headers=user._hub_headers()) as response:
            events = await response.text()
        return str(caught.value), events, elapsed


def test_hooks_run_in_order_as_root_then_as_the_user_with_the_variables(
        workdir: Path, hubs, accounts) -> None:
    ann = accounts(f"{P}1", password=PASSWORD)
    out = outbox(workdir)
    (out / "order").touch(mode=0o666)
    os.chmod(out / "order", 0o666)  # as_root hooks and as_user hooks append to one file
    report = ('echo "$0 $(id -u) $(id -G) $(pwd) USER=$HUBKEEPER_USER ACCOUNT=$HUBKEEPER_ACCOUNT '
              'HOME=$HUBKEEPER_HOME GROUPS=$HUBKEEPER_GROUPS ENV=[$HUBKEEPER_ENVIRONMENT] '
              f'HUB=$HUBKEEPER_HUB H=$HOME" >> {out}/order\n')
    first = script(workdir / "hooks" / "root1.sh", report + "echo root-one-says-hello\n")
    second = script(workdir / "hooks" / "root2.sh", report)
    mine = script(workdir / "hooks" / "user.sh", report + "echo user-says-hello >&2\n")
    config = write_config(workdir, mode="system", auth="pam", admins=(), allowed=(ann,),
                          extra=hooks_yaml([first, second], [mine]))
    config.write_text(config.read_text().replace(
        "users:\n", f"users:\n  groups: {{{P}g: [{ann}], {P}h: [{ann}]}}\n"))
    hub = hubs.start(journaled(config, ann))

    assert asyncio.run(run_as(hub.url, ann, "import os; os.getuid()")) == \
        str(pwd.getpwnam(ann).pw_uid)

    account = pwd.getpwnam(ann)
    home = account.pw_dir
    common = (f"USER={ann} ACCOUNT={ann} HOME={home} GROUPS={P}g {P}h ENV=[] "
              f"HUB={P}")  # write_config's hub name
    lines = (out / "order").read_text().splitlines()
    assert lines == [
        f"{workdir}/hooks/root1.sh 0 0 / {common} H=/root",
        f"{workdir}/hooks/root2.sh 0 0 / {common} H=/root",
        f"{workdir}/hooks/user.sh {account.pw_uid} {account.pw_gid} {home} {common} H={home}",
    ]
    logs = hub.state / "logs" / "hooks"
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    log = (logs / f"{ann}.log").read_text()
    assert "root-one-says-hello" in log and "user-says-hello" in log
    assert "as_root hooks/root1.sh (timeout 20s)" in log
    assert "hooks/user.sh succeeded" in log

    # The student, in their own kernel, cannot read the hook logs.
    probe = (f"import os\nr = []\nfor f in (lambda: os.listdir({str(logs)!r}), "
             f"lambda: open({str(logs / (ann + '.log'))!r}).read()):\n"
             "    try:\n        f(); r.append('readable')\n"
             "    except PermissionError:\n        r.append('denied')\nr")
    assert asyncio.run(run_in_running_server(hub.url, ann, probe)) == "['denied', 'denied']"


def test_failing_hook_stops_the_start_and_names_the_script_not_its_output(
        workdir: Path, hubs, accounts) -> None:
    ann = accounts(f"{P}1", password=PASSWORD)
    out = outbox(workdir)
    ok = script(workdir / "hooks" / "ok.sh", f"touch {out}/ok-ran\n")
    bad = script(workdir / "hooks" / "fail.sh", "echo SECRET-TOKEN-123\nexit 3\n")
    never = script(workdir / "hooks" / "after.sh", f"touch {out}/after-ran\n")
    hub = hubs.start(journaled(write_config(workdir, mode="system", auth="pam", admins=(),
                                            allowed=(ann,),
                                            extra=hooks_yaml([ok], [bad, never])), ann))

    error, events, _ = asyncio.run(failed_start(hub.url, ann))
    assert "HTTP 500" in error
    assert "the start-up script hooks/fail.sh (as_user) failed with exit status 3" in error
    assert "tell your instructor" in error.lower()
    assert "hooks/fail.sh (as_user) failed with exit status 3" in events
    assert "SECRET-TOKEN-123" not in error + events
    assert (out / "ok-ran").exists() and not (out / "after-ran").exists()
    assert "SECRET-TOKEN-123" in (hub.state / "logs" / "hooks" / f"{ann}.log").read_text()
    assert f"{ann}: start-up script hooks/fail.sh (as_user) failed with exit status 3" \
        in hub_log(hub)


def test_with_warn_a_failing_hook_is_logged_and_the_server_starts(workdir: Path, hubs,
                                                                  accounts) -> None:
    ann = accounts(f"{P}1", password=PASSWORD)
    bad = script(workdir / "hooks" / "fail.sh", "exit 7\n")
    hub = hubs.start(journaled(write_config(workdir, mode="system", auth="pam", admins=(),
                                            allowed=(ann,),
                                            extra=hooks_yaml([bad], on_failure="warn")), ann))
    assert asyncio.run(run_as(hub.url, ann, "6*7")) == "42"
    assert "hooks/fail.sh (as_root) failed with exit status 7; the server starts anyway" \
        in hub_log(hub)


def test_a_hanging_hook_is_killed_at_its_timeout_with_its_whole_process_group(
        workdir: Path, hubs, accounts) -> None:
    ann = accounts(f"{P}1", password=PASSWORD)
    out = outbox(workdir)
    # The shell forks `sleep`: both must go. The child's pid is reported too.
    hang = script(workdir / "hooks" / "hang.sh",
                  f"echo $$ > {out}/pid\nsleep 600 &\necho $! >> {out}/pid\nwait\n")
    hub = hubs.start(journaled(write_config(workdir, mode="system", auth="pam", admins=(),
                                            allowed=(ann,), extra=hooks_yaml(
                                                as_user=[hang], timeout="2s")), ann))
    error, events, elapsed = asyncio.run(failed_start(hub.url, ann))
    # The start fails after the spawn request was answered (JupyterHub sends it to the
    # progress page after 1 s), so the user reads why on the progress page.
    assert "hooks/hang.sh (as_user) did not finish within its timeout of 2s and was " \
        "stopped" in events, (error, events)
    assert elapsed < 10, elapsed
    pids = [int(pid) for pid in (out / "pid").read_text().split()]
    assert len(pids) == 2
    assert wait_gone(pids, deadline=5) == []
    assert group_members(pids[0]) == []


def test_disk_guard_refuses_the_start_when_too_little_is_free(workdir: Path, hubs,
                                                              accounts) -> None:
    ann = accounts(f"{P}1", password=PASSWORD)
    mount = Path(f"/mnt/{P}-full")
    mount.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        home = mount / ann
        home.mkdir()
        os.chown(home, pwd.getpwnam(ann).pw_uid, pwd.getpwnam(ann).pw_gid)
        os.chmod(home, 0o700)
        subprocess.run(["usermod", "--home", str(home), ann], check=True)
        (home / "big").write_bytes(b"\0" * (1536 * 1024))  # 1.5 MiB of the 2 MiB
        hub = hubs.start(journaled(write_config(workdir, mode="system", auth="pam", admins=(),
                                                allowed=(ann,),
                                                extra="data:\n  min_free: 1M\n"), ann))
        error, events, _ = asyncio.run(failed_start(hub.url, ann))
        assert "HTTP 507" in error
        assert "the disk holding your home has" in error
        # 1.5 MiB is more than the one user's share of what may be filled (2 MiB - 1 MiB).
        assert "free (the hub needs 1.0M) and your home holds" in error
        assert "more than your fair share (1.0M)" in error
        assert "the hub needs 1.0M" in events
        # Room made: the same user starts.
        (home / "big").unlink()
        assert asyncio.run(run_as(hub.url, ann, "1+1")) == "2"
        hub.stop()
    finally:
        subprocess.run(["pkill", "-KILL", "-u", ann], capture_output=True)
        subprocess.run(["umount", "--lazy", str(mount)], check=False)
        mount.rmdir()


def test_usage_lists_homes_largest_first_with_real_byte_counts(workdir: Path,
                                                               accounts) -> None:
    names = [accounts(f"{P}{i}") for i in (1, 2, 3)]
    sizes = {names[0]: 1000, names[1]: 3 * 1024 * 1024}
    for name, size in sizes.items():
        account = pwd.getpwnam(name)
        home = Path(account.pw_dir)
        home.mkdir(mode=0o700)
        (home / "data.bin").write_bytes(b"x" * size)
        (home / "sub").mkdir()
        (home / "sub" / "usr").symlink_to("/usr")  # 4 bytes; /usr itself is not counted
        os.link(home / "data.bin", home / "sub" / "same.bin")  # a hard link counts once
        subprocess.run(["chown", "-R", f"{name}:", str(home)], check=True)
    config = write_config(workdir, mode="system", auth="pam", admins=(), allowed=tuple(names))
    result = subprocess.run([HUBKEEPER, "--config", str(config), "usage", "--json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    rows = [(home["name"], home["bytes"], home["files"]) for home in body["homes"]]
    assert rows == [(names[1], 3 * 1024 * 1024 + 4, 2), (names[0], 1000 + 4, 2),
                    (names[2], 0, 0)]
    assert body["homes"][2]["note"].startswith("no home yet")
    assert body["total_bytes"] == 3 * 1024 * 1024 + 1000 + 8
    assert body["homes"][0]["free_bytes"] > 0

    text = subprocess.run([HUBKEEPER, "--config", str(config), "usage"], capture_output=True,
                          text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert text.stdout.index(names[1]) < text.stdout.index(names[0])
    assert "3 homes" in text.stdout

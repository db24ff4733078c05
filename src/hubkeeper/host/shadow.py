"""The machine's account tools (shadow-utils), behind one small class. Never a shell string:
every name has passed the username policy and is passed as one argument."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.host.homes import make_home

log = logging.getLogger(__name__)
SKELETON = Path("/etc/skel")
COMMAND_DEADLINE = 120  # seconds for one command; chpasswd gets PASSWORD_BATCH at a time
PASSWORD_BATCH = 100  # ~2 s of yescrypt hashing here: progress moves, no deadline is near


class ShadowTools:
    def __init__(self, skeleton: Path = SKELETON) -> None:
        self.skeleton = skeleton  # what a new home starts with

    def _run(self, *args: str, stdin: str | None = None, again: str = "apply") -> None:
        log.debug("running %s", args[0] + " " + " ".join(args[1:2]))
        try:
            result = subprocess.run(list(args), input=stdin, capture_output=True, text=True,
                                    timeout=COMMAND_DEADLINE)
        except subprocess.TimeoutExpired:
            raise HubkeeperError(
                f"{args[0]} did not finish within {COMMAND_DEADLINE} s (for {args[-1]!r})",
                hint=f"the machine may be overloaded; `hubkeeper {again}` again continues",
            ) from None
        if result.returncode != 0:
            raise HubkeeperError(
                f"{args[0]} failed for {args[-1]!r} (exit {result.returncode}): "
                f"{result.stderr.strip()}",
                hint=f"nothing after this step was done; `hubkeeper {again}` again continues",
            )

    def create_group(self, group: str) -> None:
        self._run("groupadd", "--", group)

    def create_account(self, account: str, *, groups: list[str], full_name: str | None,
                       uid: int | None) -> None:
        args = ["useradd", "--create-home", "--user-group", "--shell", "/bin/bash",
                "-K", "HOME_MODE=0700"]
        if groups:
            args += ["--groups", ",".join(groups)]
        if full_name:
            args += ["--comment", full_name]
        if uid is not None:
            args += ["--uid", str(uid)]
        self._run(*args, "--", account)

    def restore_account(self, account: str, *, uid: int, gid: int, home: str,
                        group_exists: bool) -> None:
        """An account for an existing home, with the uid and gid its files already carry."""
        if not group_exists:
            self._run("groupadd", "--gid", str(gid), "--", account)
        self._run("useradd", "--no-create-home", "--no-user-group", "--uid", str(uid),
                  "--gid", str(gid), "--home-dir", home, "--shell", "/bin/bash", "--", account)

    def create_group_with_gid(self, group: str, gid: int) -> None:
        self._run("groupadd", "--gid", str(gid), "--", group, again="restore --all")

    def set_password_hashes(self, hashes: dict[str, str]) -> None:
        """Put back password hashes as they were (chpasswd -e: nothing is re-hashed)."""
        if hashes:
            lines = "".join(f"{account}:{value}\n" for account, value in hashes.items())
            self._run("chpasswd", "--encrypted", stdin=lines, again="restore --all")

    def create_home(self, account: str, home: str, uid: int, gid: int) -> None:
        """The missing home of an existing account, from the skeleton: made root's, filled
        by descriptors and handed over last (host/homes.py), never walked by path."""
        make_home(home, uid, gid, self.skeleton)

    def set_passwords(self, passwords: dict[str, str]) -> None:
        """One chpasswd for many accounts; chpasswd hashes them (never stored in clear)."""
        if passwords:
            lines = "".join(f"{account}:{password}\n" for account, password in passwords.items())
            self._run("chpasswd", stdin=lines)

    def lock(self, account: str) -> None:
        self._run("usermod", "--lock", "--expiredate", "1", "--", account)

    def unlock(self, account: str) -> None:
        self._run("usermod", "--unlock", "--expiredate", "", "--", account)

    def add_to_group(self, account: str, group: str) -> None:
        self._run("gpasswd", "--add", account, "--", group)

    def remove_from_group(self, account: str, group: str) -> None:
        self._run("gpasswd", "--delete", account, "--", group)

    def remove_account(self, account: str) -> None:
        """userdel without --remove: retire checks and removes the home itself (userdel -r
        would delete whatever is at the home path, and the mail spool, unchecked). Debian's
        userdel also removes the account's own group (same name, its primary group)."""
        self._run("userdel", "--", account, again="retire --yes")

    def remove_group(self, group: str) -> None:
        self._run("groupdel", "--", group, again="retire --yes")

"""The local backend's spawner: JupyterHub's LocalProcessSpawner, with hubkeeper's two modes.

system mode: the server runs as the user's Linux account (the parent's behaviour); a missing
home is created 0700 and owned by the user; a home readable by others is reported.
personal mode: every server runs as the hub's own account, in <home_root>/<user> (0700).
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Callable

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Unicode


class LocalSpawner(LocalProcessSpawner):
    personal = Bool(
        False,
        config=True,
        help="Run every server as the hub's own account, each user in home_root/<name>. "
        "Users are not isolated from each other.",
    )
    home_root = Unicode(
        "", config=True, help="personal mode: the directory holding each user's directory."
    )
    account_prefix = Unicode(
        "", config=True, help="system mode: Linux account = account_prefix + hub user name."
    )

    @property
    def account(self) -> str:
        return self.account_prefix + self.user.name

    def home_dir(self) -> str:
        if self.personal:
            return os.path.join(self.home_root, self.user.name)
        return pwd.getpwnam(self.account).pw_dir

    def ensure_home(self) -> None:
        """Make sure the user's home exists and say so if others can read it."""
        home = self.home_dir()
        if not os.path.isdir(home):
            os.makedirs(home, mode=0o700)
            os.chmod(home, 0o700)  # makedirs' mode is filtered by the umask
            if not self.personal:
                account = pwd.getpwnam(self.account)
                os.chown(home, account.pw_uid, account.pw_gid)
            self.log.info("%s: created home %s (0700)", self.user.name, home)
            return
        mode = stat.S_IMODE(os.stat(home).st_mode)
        if mode & 0o077:
            self.log.warning(
                "%s: home %s has mode %o, so other users can read it; `chmod 700 %s` makes it "
                "private",
                self.user.name, home, mode, home,
            )

    async def start(self):  # type: ignore[override]
        self.ensure_home()
        return await super().start()

    def make_preexec_fn(self, name: str) -> Callable[[], None]:
        if not self.personal:
            return super().make_preexec_fn(self.account)
        home = self.home_dir()

        def preexec() -> None:
            os.chdir(home)

        return preexec

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        if not self.personal:
            account = pwd.getpwnam(self.account)
            env.update(USER=self.account, HOME=account.pw_dir, SHELL=account.pw_shell)
            return env
        env["USER"] = self.user.name
        env["HOME"] = self.home_dir()
        env["SHELL"] = "/bin/bash"
        return env

    async def move_certs(self, paths):  # type: ignore[override]
        if self.personal:
            return paths  # nothing to hand over: the server runs as the hub's account
        return await super().move_certs(paths)

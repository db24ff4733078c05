"""Authenticators hubkeeper configures, where JupyterHub's own need a small addition."""

from __future__ import annotations

from jupyterhub.auth import PAMAuthenticator as _PAMAuthenticator
from traitlets import Unicode


class PAMAuthenticator(_PAMAuthenticator):
    """PAM, for hubs whose Linux accounts carry users.account_prefix (e.g. 'jupyter-ann' for
    the hub user 'ann'): the password is checked for the account, the hub sees the user."""

    account_prefix = Unicode("", config=True, help="Prefix of the Linux account names.")

    def authenticate(self, handler, data):  # type: ignore[override]
        hub_name = data["username"]
        result = super().authenticate(handler, {**data,
                                                "username": self.account_prefix + hub_name})
        return hub_name if result else None

    def system_user_exists(self, user) -> bool:  # type: ignore[override]
        import pwd

        try:
            pwd.getpwnam(self.account_prefix + user.name)
        except KeyError:
            return False
        return True

    def normalize_username(self, username: str) -> str:
        # Hub names are the roster's lower-case names; the account is derived, not looked up.
        return username.lower()

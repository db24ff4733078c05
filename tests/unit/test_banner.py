"""The start banner: passwords on a terminal only; hub.url first when set."""

from __future__ import annotations

import io

from rich.console import Console

from hubkeeper.cli.output import emit
from hubkeeper.verbs.up import Banner

BANNER = Banner(url="http://127.0.0.1:8000/", hub="phys", mode="system",
                public_url="https://hub.example.edu/", state_dir="/var/lib/hubkeeper/phys",
                log_file="/var/lib/hubkeeper/phys/logs/hub.log", auth="shared-password",
                users=("ann",), admins=("prof",), shared_password="pw-users",
                admin_password="pw-admins",
                password_files=("/var/lib/hubkeeper/phys/secrets/shared-password",
                                "/etc/hub/admin.txt"), warnings=())


def shown(terminal: bool) -> str:
    sink = io.StringIO()
    emit(BANNER, False, Console(file=sink, force_terminal=terminal, width=200))
    return sink.getvalue()


def test_a_log_gets_where_the_passwords_are_not_the_passwords() -> None:
    """Under systemd the banner goes to the journal, which the adm group reads."""
    text = shown(terminal=False)
    assert "pw-users" not in text and "pw-admins" not in text
    assert "password for users:  in /var/lib/hubkeeper/phys/secrets/shared-password" in text
    assert "password for admins: in /etc/hub/admin.txt" in text
    assert "is up at https://hub.example.edu/ (proxy on http://127.0.0.1:8000/)" in text


def test_a_terminal_gets_the_passwords() -> None:
    text = shown(terminal=True)
    assert "pw-users" in text and "pw-admins" in text

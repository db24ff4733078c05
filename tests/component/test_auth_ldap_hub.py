"""auth.kind ldap against a real OpenLDAP (Debian's slapd, tests/support/ldap.py) and a real
hub in system mode with users.accounts: first_login.

People are known only to the directory: they log in through the hub's login form, get a
Linux account at their first login and run code as it; members of the tas group are admins;
people outside the allowed group, wrong passwords and a new entry under an old name are
refused; archive and retire remove the accounts first login made."""

from __future__ import annotations

import asyncio
import json
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.conftest import require, require_root
from tests.support.hubproc import HUBKEEPER, write_config
from tests.support.ldap import SLAPD, LdapServer, Person, running_slapd
from tests.support.procs import server_pids, uid_of
from tests.support.simuser import SimUser, SimUserError

pytestmark = [pytest.mark.component, pytest.mark.root]

ANN = Person(f"{P}ann", "Ann-ldap-pw-1", 30001, ("students",))
TIM = Person(f"{P}tim", "Tim-ldap-pw-1", 30002, ("students", "tas"))
OUT = Person(f"{P}out", "Out-ldap-pw-1", 30003, ("others",))
PEOPLE = {person.uid: person for person in (ANN, TIM, OUT)}
TAS_GROUP = f"{P}tas"  # the hub group (and Linux group) of the tas LDAP group


@pytest.fixture(scope="session")
def slapd() -> Iterator[LdapServer]:
    """One slapd for the tests of a session, on a free port, stopped by its pid."""
    require_root()
    import os

    require(os.path.exists(SLAPD), "needs Debian's slapd (./run setup installs it as root)")
    with running_slapd(P, PEOPLE) as server:
        yield server


def ldap_hub(workdir: Path, server: LdapServer,
             users: str = "  accounts: first_login\n") -> Path:
    auth = (f"ldap\n  ldap:\n    server: {server.url}\n    tls: none\n"
            f"    bind_dn_template: ['uid={{username}},ou=people,{server.base}']\n"
            f"    allowed_groups: ['{server.group_dn('students')}']\n"
            f"    groups: {{'{server.group_dn('tas')}': {TAS_GROUP}}}\n"
            f"    admin_groups: ['{server.group_dn('tas')}']")
    return write_config(workdir, mode="system", auth=auth,
                        users=users,
                        extra="archive: {dir: archives}\n")


async def login(url: str, person: Person, password: str | None = None) -> SimUser:
    user = SimUser(url, person.uid, password or person.password)
    try:
        await user.login()
    except BaseException:
        await user.session.close()
        raise
    return user


async def first_visit(url: str, person: Person) -> tuple[str, dict]:
    """Log in through the form, start the server, run code in it: (its result, the user's
    hub model)."""
    user = await login(url, person)
    async with user:
        model = await user.model()
        await user.start_server()
        await user.open_server()
        result = await user.run_code("import os; (1+1, os.getuid())")
        return result, model


def refused(url: str, person: Person, password: str | None = None) -> str:
    async def attempt() -> None:
        user = await login(url, person, password)
        await user.session.close()

    with pytest.raises(SimUserError, match="login refused") as caught:
        asyncio.run(attempt())
    return str(caught.value)


def journal(config: Path) -> dict:
    return json.loads((config.parent / "state" / "journal.json").read_text())


def hk(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUBKEEPER, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=600)


def api_port(config: Path) -> int:
    from hubkeeper.config import load

    return load(config).spec.hub.api_port


def runs_as(config: Path, person: Person) -> None:
    """The person's server process runs as their account (the real uid, from /proc)."""
    uid = pwd.getpwnam(person.uid).pw_uid
    servers = server_pids(api_port(config))
    assert person.uid in servers.values(), servers
    for pid, name in servers.items():
        if name == person.uid:
            assert uid_of(pid) == uid


def test_roster_people_log_in_with_their_directory_password(workdir: Path, slapd: LdapServer,
                                                            hubs, clean_accounts) -> None:
    """users.accounts: roster: the directory checks passwords, `apply` makes the accounts;
    a member of the allowed group who is not on the roster has no account, so no login."""
    from tests.support.hubproc import apply_accounts

    config = ldap_hub(workdir, slapd, users=f"  allowed: [{ANN.uid}]\n")
    apply_accounts(config)
    hub = hubs.start(config)
    result, model = asyncio.run(first_visit(hub.url, ANN))
    assert result == repr((2, pwd.getpwnam(ANN.uid).pw_uid))
    assert model["admin"] is False
    runs_as(config, ANN)
    refused(hub.url, ANN, "not-" + ANN.password)
    refused(hub.url, TIM)  # in students and tas, but no account: the roster decides here
    refused(hub.url, OUT)

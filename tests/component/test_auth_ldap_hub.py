"""auth.kind ldap against a real OpenLDAP (Debian's slapd, tests/support/ldap.py) and a real
hub in system mode with users.accounts: first_login.

People are known only to the directory: they log in through the hub's login form, get a
Linux account at their first login and run code as it; members of the tas group are admins;
people outside the allowed group, wrong passwords and a new entry under an old name are
refused; archive and retire remove the accounts first login made."""

from __future__ import annotations

import asyncio
import grp
import json
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.conftest import require, require_root
from tests.support.hubproc import hk, write_config
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


def test_ldap_people_get_accounts_at_first_login(workdir: Path, slapd: LdapServer, hubs,
                                                 clean_accounts) -> None:
    config = ldap_hub(workdir, slapd)
    check = hk(config, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    hub = hubs.start(config)
    for person in PEOPLE.values():
        with pytest.raises(KeyError):
            pwd.getpwnam(person.uid)  # known only to the directory

    # ann (students): her first login makes her account; her server runs as it, runs code.
    result, model = asyncio.run(first_visit(hub.url, ANN))
    account = pwd.getpwnam(ANN.uid)
    assert result == repr((2, account.pw_uid))
    runs_as(config, ANN)
    assert model["admin"] is False
    record = journal(config)["accounts"][ANN.uid]
    assert f"ldap:{slapd.entry_uuid(ANN.uid)}" in json.dumps(record), record

    # tim (students and tas): an admin, in the hub group and Linux group mapped from tas.
    result, model = asyncio.run(first_visit(hub.url, TIM))
    assert result == repr((2, pwd.getpwnam(TIM.uid).pw_uid))
    assert model["admin"] is True
    assert TAS_GROUP in model["groups"]
    assert TIM.uid in grp.getgrnam(TAS_GROUP).gr_mem

    # ann again: the same account, nothing new made.
    accounts = set(journal(config)["accounts"])
    result, _ = asyncio.run(first_visit(hub.url, ANN))
    assert result == repr((2, account.pw_uid))
    assert set(journal(config)["accounts"]) == accounts == {ANN.uid, TIM.uid}

    # Refused: a wrong password; someone outside the allowed group (and no account made).
    refused(hub.url, ANN, "not-" + ANN.password)
    refused(hub.url, OUT)
    with pytest.raises(KeyError):
        pwd.getpwnam(OUT.uid)
    # ann's entry deleted and made again (a new person under her name: a new entryUUID):
    # her password still binds, but the hub user stays with the old entry.
    old_subject = f"ldap:{slapd.entry_uuid(ANN.uid)}"
    slapd.renew_entry(ANN.uid)
    refused(hub.url, ANN)
    new_subject = f"ldap:{slapd.entry_uuid(ANN.uid)}"
    hub.wait_logged(f"login of {ANN.uid} refused: hub user {ANN.uid} is bound to subject "
                    f"{old_subject!r}, and this login as {ANN.uid} is subject {new_subject!r}")
    from hubkeeper.state import subjects

    assert subjects.load(config.parent / "state" / subjects.FILE_NAME)[ANN.uid] == old_subject
    hub.stop()

    # archive, then retire: the accounts first login made are removed like roster ones.
    from hubkeeper.context.hub import Hub
    from hubkeeper.verbs.archive import archive

    archive(Hub.open(config), None)
    retired = hk(config, "retire", "--yes")
    assert retired.returncode == 0, retired.stdout + retired.stderr
    for person in (ANN, TIM):
        with pytest.raises(KeyError):
            pwd.getpwnam(person.uid)
        assert not Path(f"/home/{person.uid}").exists()


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


def test_check_wants_the_search_accounts_password_in_the_state_dir(workdir: Path) -> None:
    """The password of lookup_dn_search_user is read from <state>/secrets, never hub.yaml:
    `check` names its file at that field's line until it is there, private."""
    auth = ("ldap\n  ldap:\n    server: ldaps://ldap.example.org\n"
            "    user_search_base: 'ou=people,dc=example,dc=org'\n"
            "    lookup_dn_search_user: 'cn=hub,ou=services,dc=example,dc=org'")
    config = write_config(workdir, mode="personal", auth=auth)
    line = config.read_text().splitlines().index(
        "    lookup_dn_search_user: 'cn=hub,ou=services,dc=example,dc=org'") + 1
    secret = workdir / "state" / "secrets" / "ldap-bind-password"

    result = hk(config, "check")
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"{config}:{line}:28: auth.ldap.lookup_dn_search_user: secret {secret} is "
            "missing: it holds the password of auth.ldap.lookup_dn_search_user") \
        in result.stderr
    secret.parent.mkdir(parents=True, mode=0o700)
    secret.write_text("search-pw\n")
    secret.chmod(0o644)
    assert f"secret {secret} is readable by other users" in hk(config, "check").stderr
    secret.chmod(0o600)
    result = hk(config, "check")
    assert result.returncode == 0, result.stdout + result.stderr


def rendered_authenticator(workdir: Path, auth: str):  # type: ignore[no-untyped-def]
    """The LDAPAuthenticator configured exactly as the hub would be, from hub.yaml."""
    from hubkeeper.context.hub import Hub
    from hubkeeper.context.runtime import Runtime
    from hubkeeper.hub.auth_ldap import LDAPAuthenticator
    from hubkeeper.render.jupyterhub import render

    config = write_config(workdir, mode="personal", auth=auth)
    hub = Hub.open(config)
    return LDAPAuthenticator(config=render(hub.spec, Runtime.from_hub(hub, redact=True)))


@pytest.mark.parametrize("tls", ["starttls", "ldaps"])
def test_tls_verifies_the_servers_certificate(workdir: Path, slapd: LdapServer,
                                              tls: str) -> None:
    """StartTLS on ldap:// and TLS on ldaps://, the certificate checked against ca_file: the
    right CA logs in; another CA is refused (503, the directory cannot be reached), before
    any password leaves."""
    from tornado.web import HTTPError

    from tests.support.ldap import make_ca

    server = slapd.url if tls == "starttls" else slapd.ldaps_url
    other_ca, _, _ = make_ca(workdir, "other-ca")

    def auth(ca_file: Path) -> str:
        return (f"ldap\n  ldap:\n    server: {server}\n    tls: {tls}\n"
                f"    ca_file: {ca_file}\n"
                f"    bind_dn_template: ['uid={{username}},ou=people,{slapd.base}']\n"
                f"    allowed_groups: ['{slapd.group_dn('students')}']")

    authenticator = rendered_authenticator(workdir, auth(slapd.ca_file))
    login = {"username": ANN.uid, "password": ANN.password}
    model = asyncio.run(authenticator.authenticate(None, login))
    assert model is not None and model["name"] == ANN.uid
    identity = authenticator.provider_identity(model)
    assert identity is not None
    assert identity.subject == f"ldap:{slapd.entry_uuid(ANN.uid)}"
    assert identity.groups == {slapd.group_dn("students")}

    (workdir / "hub.yaml").unlink()
    untrusting = rendered_authenticator(workdir, auth(other_ca))
    with pytest.raises(HTTPError) as caught:
        asyncio.run(untrusting.authenticate(None, login))
    assert caught.value.status_code == 503


@pytest.mark.parametrize("account", ["anonymous", "search account"])
def test_people_are_found_by_a_search(workdir: Path, slapd: LdapServer, account: str) -> None:
    """user_search_base: the login name is searched for (anonymously, or as
    lookup_dn_search_user with its password from the state dir) and the entry found binds."""
    from hubkeeper.context.hub import Hub
    from hubkeeper.context.runtime import Runtime
    from hubkeeper.hub.auth_ldap import LDAPAuthenticator
    from hubkeeper.render.jupyterhub import render
    from hubkeeper.state.statedir import ensure_layout, ensure_secrets

    search_user = (f"    lookup_dn_search_user: '{slapd.admin_dn}'\n"
                   if account == "search account" else "")
    config = write_config(workdir, mode="personal", auth=(
        f"ldap\n  ldap:\n    server: {slapd.url}\n    tls: none\n"
        f"    user_search_base: 'ou=people,{slapd.base}'\n{search_user}"
        f"    groups: {{'{slapd.group_dn('tas')}': {TAS_GROUP}}}"))
    hub = Hub.open(config)
    ensure_layout(hub.paths)
    ensure_secrets(hub.paths)
    password = hub.paths.secret("ldap-bind-password")
    password.write_text(slapd.admin_password)
    password.chmod(0o600)
    authenticator = LDAPAuthenticator(config=render(hub.spec, Runtime.from_hub(hub)))
    assert authenticator.lookup_dn_search_password == (
        slapd.admin_password if search_user else None)

    model = asyncio.run(authenticator.authenticate(None, {"username": TIM.uid,
                                                         "password": TIM.password}))
    assert model is not None and model["name"] == TIM.uid
    identity = authenticator.provider_identity(model)
    assert identity is not None
    assert identity.subject == f"ldap:{slapd.entry_uuid(TIM.uid)}"
    assert identity.groups == {slapd.group_dn("tas")}
    wrong = {"username": TIM.uid, "password": "not-" + TIM.password}
    assert asyncio.run(authenticator.authenticate(None, wrong)) is None
    nobody = {"username": f"{P}nobody", "password": TIM.password}
    assert asyncio.run(authenticator.authenticate(None, nobody)) is None
    if search_user:  # the search account's password is used: a wrong one finds nobody
        password.write_text("not-the-password")
        misconfigured = LDAPAuthenticator(config=render(hub.spec, Runtime.from_hub(hub)))
        right = {"username": TIM.uid, "password": TIM.password}
        assert asyncio.run(misconfigured.authenticate(None, right)) is None

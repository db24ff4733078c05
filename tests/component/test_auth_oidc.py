"""auth.kind oidc in system mode against a real OpenID Provider (npm oidc-provider, started
once per session by tests/support/oidc.py): people log in on the provider's login page,
the hub discovers the provider, admits by the groups claim, and (users.accounts:
first_login) makes each admitted person's Linux account at their first login, bound to
the provider's subject."""

from __future__ import annotations

import asyncio
import grp
import json
import pwd
from pathlib import Path

import pytest

from hubkeeper.config import load
from hubkeeper.context.hub import Hub
from hubkeeper.verbs.archive import archive as archive_verb
from tests.support.hubproc import apply_accounts, hk
from tests.support.oidc import (
    FIRST_LOGIN_OIDC,
    STUDENTS,
    TAS,
    OIDCUser,
    P,
    oidc_hub,
)
from tests.support.procs import server_pids, uid_of
from tests.support.simuser import SimUserError

pytestmark = [pytest.mark.component, pytest.mark.root]

ANN, BEA, TINA, OLGA = f"{P}ann", f"{P}bea", f"{P}tina", f"{P}olga"


async def visit(url: str, name: str, login: str, code: str) -> tuple[dict, str]:
    """Log in as `login` at the provider, start the server, run `code`: (model, result)."""
    async with OIDCUser(url, name, login) as user:
        await user.login()
        model = await user.model()
        await user.start_server()
        await user.open_server()
        return model, await user.run_code(code)


async def login_only(url: str, name: str, login: str) -> dict:
    async with OIDCUser(url, name, login) as user:
        await user.login()
        return await user.model()


def test_roster_member_logs_in_through_the_provider(workdir: Path, hubs, oidc_provider,
                                                    clean_accounts) -> None:
    """accounts: roster: the roster's account (made by apply) logs in with the provider and
    its server runs as that account; someone the provider knows but nothing admits is
    refused, and so is someone an allowed group admits but who has no account."""
    config = oidc_hub(workdir, oidc_provider, users=f"  allowed: [{BEA}]\n",
                      oidc="    allowed_groups: [tas]\n")
    check = hk(config, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    apply_accounts(config)
    hub = hubs.start(config)
    model, result = asyncio.run(visit(hub.url, BEA, "bea", "import os; os.getuid()"))
    assert model["name"] == BEA
    assert result == str(pwd.getpwnam(BEA).pw_uid)
    for pid, name in server_pids(load(config).spec.hub.api_port).items():
        assert uid_of(pid) == pwd.getpwnam(name).pw_uid
    with pytest.raises(SimUserError, match="login refused: HTTP 403"):
        asyncio.run(login_only(hub.url, OLGA, "olga"))
    # (with accounts: roster the hub user is the provider's name, only lower-cased)
    with pytest.raises(SimUserError, match=f"You cannot log in as {TINA}@example.edu: there "
                       "is no account for this user on this hub"):
        asyncio.run(login_only(hub.url, TINA, "tina"))
    with pytest.raises(KeyError):
        pwd.getpwnam(TINA)


def test_check_names_the_missing_client_secrets(workdir: Path, oidc_provider,
                                                clean_accounts) -> None:
    config = oidc_hub(workdir, oidc_provider, users=f"  allowed: [{BEA}]\n", oidc="")
    (workdir / "state" / "secrets" / "oidc-client-secret").unlink()
    result = hk(config, "check")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "auth.oidc: secret" in result.stderr
    assert "oidc-client-secret is missing: it holds the OpenID Connect client's secret" \
        in result.stderr
    assert not Path(f"/home/{BEA}").exists()


def test_first_login_makes_the_account_of_someone_only_the_provider_knows(
        workdir: Path, hubs, oidc_provider, clean_accounts) -> None:
    config = oidc_hub(workdir, oidc_provider, users="  accounts: first_login\n",
                      oidc=FIRST_LOGIN_OIDC)
    check = hk(config, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    hub = hubs.start(config)
    with pytest.raises(KeyError):
        pwd.getpwnam(ANN)  # known only to the provider

    # ann (students) logs in: her account is made at this first login, journaled with
    # its origin and her subject; her server runs as it.
    code = "import os; (os.getuid(), os.getcwd())"
    model, result = asyncio.run(visit(hub.url, ANN, "ann", code))
    account = pwd.getpwnam(ANN)
    assert result == repr((account.pw_uid, account.pw_dir))
    assert model["admin"] is False
    assert STUDENTS in model["groups"]
    state = workdir / "state"
    subject = f"oidc:{oidc_provider.issuer} 0a1b2c3d-ann"
    record = json.loads((state / "journal.json").read_text())["accounts"][ANN]
    assert (record["uid"], record["origin"], record["subject"]) == (account.pw_uid, "oidc",
                                                                    subject)
    assert json.loads((state / "subjects.json").read_text())["users"][ANN] == subject
    admitted = json.loads((state / "admitted.json").read_text())["users"][ANN]
    assert (admitted["groups"], admitted["admin"]) == ([STUDENTS], False)
    assert ANN in grp.getgrnam(STUDENTS).gr_mem  # the provider's group, a Linux group
    for pid, name in server_pids(load(config).spec.hub.api_port).items():
        assert uid_of(pid) == pwd.getpwnam(name).pw_uid

    # tina (tas) is admitted by being an admin, and is one.
    tina = asyncio.run(login_only(hub.url, TINA, "tina"))
    assert tina["admin"] is True
    assert TAS in tina["groups"]
    assert TINA in grp.getgrnam(TAS).gr_mem

    # ann's second login reuses her account.
    model, result = asyncio.run(visit(hub.url, ANN, "ann", "import os; os.getuid()"))
    assert result == str(account.pw_uid)
    assert pwd.getpwnam(ANN).pw_uid == account.pw_uid

    # Another person at the provider with ann's name (another subject) is refused.
    with pytest.raises(SimUserError, match="login refused: HTTP 403") as refused:
        asyncio.run(login_only(hub.url, ANN, "impostor"))
    assert f"this hub's user {ANN} belongs to another oidc account" in str(refused.value)
    # Someone the provider knows but no allowed group admits gets nothing.
    with pytest.raises(SimUserError, match="login refused: HTTP 403"):
        asyncio.run(login_only(hub.url, OLGA, "olga"))
    with pytest.raises(KeyError):
        pwd.getpwnam(OLGA)

    # archive, then retire: the first-login accounts go like roster accounts.
    archive_verb(Hub.open(config), None)
    retired = hk(config, "retire", "--yes")
    assert retired.returncode == 0, retired.stdout + retired.stderr
    for name in (ANN, TINA):
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
        assert not Path(f"/home/{name}").exists()

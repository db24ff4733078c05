"""users.accounts: first_login with real accounts: `users admit` (what the hub runs at a
first login) and HubkeeperAuthenticator's admission, binding and roles around it.

The providers themselves (GitHub, OpenID Connect, LDAP, LTI) are tested against real
servers or protocol stand-ins in their own tests; here a provider's answer is given, and
everything after it is real: the authenticator class configured from the rendered config,
the `hubkeeper users admit` subprocess it starts as root, useradd, the journal, retire.
"""

from __future__ import annotations

import asyncio
import json
import pwd
import subprocess
from pathlib import Path

import pytest
from jupyterhub.auth import Authenticator
from tornado import web

from hubkeeper.context.hub import Hub
from hubkeeper.context.runtime import Runtime
from hubkeeper.hub.auth import HubkeeperAuthenticator, ProviderIdentity
from hubkeeper.render.jupyterhub import render
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import ensure_secrets
from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import free_ports, hk

pytestmark = [pytest.mark.component, pytest.mark.root]

ANN, BO, TINA, PROF = f"{P}ann", f"{P}bo", f"{P}tina", f"{P}prof"
STUDENTS, TAS = f"{P}students", f"{P}tas"
CONFIG = f"""\
hub: {{name: {P}fl, state_dir: state, mode: system, port: PORT, api_port: API_PORT}}
proxy: {{api_port: PROXY_PORT}}
auth:
  kind: github
  github:
    callback_url: http://127.0.0.1:8000/hub/oauth_callback
    organizations: [school]
    teams_to_groups: {{"school:students": {STUDENTS}, "school:tas": {TAS}}}
    admin_teams: ["school:tas"]
users:
  accounts: first_login
  admins: [{PROF}]
archive: {{dir: archives}}
"""


@pytest.fixture
def config(workdir: Path, clean_accounts) -> Path:
    path = workdir / "hub.yaml"
    port, api_port, proxy_port = free_ports(3)
    path.write_text(CONFIG.replace("PROXY_PORT", str(proxy_port))
                    .replace("API_PORT", str(api_port)).replace("PORT", str(port)))
    secrets = workdir / "state" / "secrets"
    secrets.mkdir(parents=True, mode=0o700)
    for name, value in (("github-client-id", "Iv1.0123456789abcdef"),
                        ("github-client-secret", "s3cr3t-0123456789abcdef0123456789")):
        (secrets / name).write_text(value)
        (secrets / name).chmod(0o600)
    applied = hk(path, "apply")
    assert applied.returncode == 0, applied.stderr
    return path


def ours() -> list[str]:
    """This run's lines of /etc/passwd (other runs on the machine change theirs)."""
    return [line for line in Path("/etc/passwd").read_text().splitlines()
            if line.startswith(P)]


def admit(config: Path, name: str, subject: str, *groups: str, admin: bool = False
          ) -> subprocess.CompletedProcess:
    args = ["users", "admit", name, "--provider", "github", "--subject", subject]
    for group in groups:
        args += ["--group", group]
    return hk(config, *args, *(["--admin"] if admin else []))


def test_admit_makes_a_journaled_account_like_the_roster(config: Path) -> None:
    made = admit(config, ANN, "github:101", STUDENTS)
    assert made.returncode == 0, made.stderr
    assert f"create-account {ANN}" in made.stdout
    entry = pwd.getpwnam(ANN)
    assert Path(entry.pw_dir).is_dir() and Path(entry.pw_dir).stat().st_uid == entry.pw_uid
    assert STUDENTS in subprocess.run(["id", "-nG", ANN], capture_output=True,
                                      text=True).stdout.split()
    record = Journal.load(config.parent / "state" / "journal.json").accounts[ANN]
    assert (record.state, record.uid, record.origin, record.subject) == (
        "created", entry.pw_uid, "github", "github:101")
    assert not record.password_set  # no password: they log in at GitHub
    assert Path("/etc/shadow").read_text().split(f"\n{ANN}:", 1)[1].startswith("!")

    rows = {row["name"]: row for row in json.loads(
        hk(config, "users", "list", "--json").stdout)["users"]}
    assert rows[ANN]["declared_at"] == "first login (github)"
    assert rows[ANN]["managed"] and rows[ANN]["groups"] == [STUDENTS]
    planned = json.loads(hk(config, "plan", "--json").stdout)
    assert [a for a in planned["actions"] if a["subject"] == ANN] == []  # apply keeps it

    again = admit(config, ANN, "github:101", STUDENTS)
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stdout
    assert pwd.getpwnam(ANN).pw_uid == entry.pw_uid

    locked = hk(config, "users", "lock", ANN)  # the roster's verbs take them too
    assert locked.returncode == 0, locked.stderr
    assert Journal.load(config.parent / "state" / "journal.json").accounts[ANN].locked
    rendered = json.loads(hk(config, "render", "--json").stdout)
    assert ANN in rendered["jupyterhub"]["Authenticator"]["blocked_users"]
    unlocked = hk(config, "users", "unlock", ANN)
    assert unlocked.returncode == 0, unlocked.stderr
    assert not Journal.load(config.parent / "state" / "journal.json").accounts[ANN].locked
    assert Path("/etc/shadow").read_text().split(f"\n{ANN}:", 1)[1].startswith("!")
    assert json.loads(hk(config, "plan", "--json").stdout)["actions"] == []


def test_admit_refuses_and_changes_nothing(config: Path) -> None:
    before = ours()
    for args, expected in [
        ((ANN, "github:101", "wheel-users"), "are not groups auth.github maps"),
        (("root", "github:7"), "'root' is reserved"),
        ((f"{P}Caps", "github:8"), "upper-case"),
        ((ANN, "oidc:x"), "is not one of github's"),
    ]:
        result = admit(config, *args)
        assert result.returncode != 0, result
        assert expected in result.stderr, result.stderr
    assert ours() == before
    assert admit(config, ANN, "github:101").returncode == 0
    other = admit(config, ANN, "github:202")
    assert other.returncode != 0 and "not 'github:202'" in other.stderr, other.stderr
    # an account hubkeeper did not make is never taken over
    subprocess.run(["useradd", "--no-create-home", BO], check=True)
    taken = admit(config, BO, "github:303")
    assert taken.returncode != 0 and BO in taken.stderr, taken.stderr


class GivenProvider(HubkeeperAuthenticator, Authenticator):
    """The provider's answer is in the model; everything after it is hubkeeper's."""

    def provider_identity(self, model: dict) -> ProviderIdentity | None:
        given = model["auth_state"]
        return ProviderIdentity("github", given["subject"], frozenset(given["teams"]))


def authenticator(config: Path) -> GivenProvider:
    hub = Hub.open(config)
    ensure_secrets(hub.paths)  # as `up` does before it renders
    return GivenProvider(config=render(hub.spec, Runtime.from_hub(hub)))


def log_in(auth: GivenProvider, name: str, subject: str, *teams: str) -> dict:
    model = {"name": name, "auth_state": {"subject": subject, "teams": list(teams)}}
    asyncio.run(auth.check_identity(model))
    return model


def test_first_logins_get_accounts_roles_and_stay_bound(config: Path) -> None:
    auth = authenticator(config)
    assert auth.first_login and auth.admit_command and auth.manage_groups

    async def together() -> list[dict]:
        models = [{"name": name, "auth_state": {"subject": subject, "teams": teams}}
                  for name, subject, teams in ((ANN, "github:101", ["school:students"]),
                                               (TINA, "github:102", ["school:tas"]))]
        await asyncio.gather(*(auth.check_identity(model) for model in models))
        return models

    ann, tina = asyncio.run(together())  # two first logins at once: both admitted
    assert (ann["groups"], ann["admin"]) == ([STUDENTS], False)
    assert (tina["groups"], tina["admin"]) == ([TAS], True)
    journal = Journal.load(config.parent / "state" / "journal.json")
    assert {journal.accounts[ANN].subject, journal.accounts[TINA].subject} == {
        "github:101", "github:102"}
    uid = pwd.getpwnam(ANN).pw_uid

    # a second login reuses the account; new teams reach the Linux groups
    again = log_in(auth, ANN, "github:101", "school:students", "school:tas")
    assert again["admin"] is True and again["groups"] == [STUDENTS, TAS]
    assert pwd.getpwnam(ANN).pw_uid == uid
    assert TAS in subprocess.run(["id", "-nG", ANN], capture_output=True,
                                 text=True).stdout.split()

    # the name now held by another person at the provider reaches nothing
    with pytest.raises(web.HTTPError) as refused:
        log_in(auth, ANN, "github:999", "school:students")
    assert refused.value.status_code == 403
    assert "belongs to another github account" in refused.value.jupyterhub_message

    # the roster admin stays admin with no team; a name that cannot be an account is refused
    assert log_in(auth, PROF, "github:1")["admin"] is True
    with pytest.raises(web.HTTPError, match="cannot be an account name"):
        log_in(auth, "root", "github:0", "school:students")


def test_retire_removes_first_login_accounts_after_the_archive(config: Path, hubs) -> None:
    hubs.start(config)  # the archive takes the hub's database too
    assert admit(config, ANN, "github:101", STUDENTS).returncode == 0
    home = Path(pwd.getpwnam(ANN).pw_dir)
    (home / "work.ipynb").write_text("{}")
    archived = hk(config, "archive")
    assert archived.returncode == 0, archived.stderr
    retired = hk(config, "retire", "--yes")
    assert retired.returncode == 0, retired.stdout + retired.stderr
    with pytest.raises(KeyError):
        pwd.getpwnam(ANN)
    assert not home.exists()

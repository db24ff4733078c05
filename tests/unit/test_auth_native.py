"""auth.kind native: the real NativeAuthenticator built from the rendered config.

Sign-ups, approvals and logins go through nativeauthenticator's own code and JupyterHub's
outer `get_authenticated_user` (blocked, allowed and admin checks), on a real hub database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from jupyterhub import orm
from nativeauthenticator import NativeAuthenticator as UpstreamNativeAuthenticator
from nativeauthenticator.orm import UserInfo

from hubkeeper.config import parse
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.context.runtime import Runtime
from hubkeeper.hub.auth import NativeAuthenticator, NativeLoginHandler, NativeSignUpHandler
from hubkeeper.render.jupyterhub import HUBKEEPER_TEMPLATES, native_templates, render
from hubkeeper.roster import build_roster
from hubkeeper.state import invites
from hubkeeper.state.statedir import Secrets, StatePaths

HUB = """
hub: {name: lab}
auth:
  kind: native
  minimum_password_length: 10
  ask_email_on_signup: true
users:
  admins: [prof]
  allowed: [ann, cy]
  locked: [cy]
"""

STRONG = "correct horse battery"
CODES = {"prof": "prof-code-1", "ann": "ann-code-2"}  # as `hubkeeper apply` issues them
STATE = StatePaths(Path("/nonexistent/state"))


@pytest.fixture(autouse=True)
def state(tmp_path: Path):
    """The hub's state dir, with the roster's invite codes issued."""
    global STATE
    STATE = StatePaths(tmp_path / "state")
    STATE.secrets.mkdir(parents=True)
    invites.save(STATE.secret(invites.FILE_NAME),
                 {name: invites.digest(code) for name, code in CODES.items()})
    return STATE


def rendered(text: str = HUB):
    spec = parse(text)
    roster = build_roster(LoadedSpec(spec, Path("/srv/lab/hub.yaml")))
    secrets = Secrets("/state/secrets/cookie-secret", "PROXY", "SERVICE", "USERPW", "ADMINPW")
    runtime = Runtime(mode="personal", state=STATE, secrets=secrets,
                      proxy_command=("configurable-http-proxy",),
                      singleuser_command=("jupyterhub-singleuser",), as_root=False,
                      roster=roster)
    return render(spec, runtime)


@pytest.fixture
def db(tmp_path: Path):
    """A hub database, as JupyterHub hands it to the authenticator."""
    session = orm.new_session_factory(f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}")()
    yield session
    session.close()


def authenticator(db, text: str = HUB, cls: type = NativeAuthenticator):
    # How JupyterHub 6 makes it: `authenticator_class(parent=app, _deprecated_db_session=db)`
    return cls(config=rendered(text), _deprecated_db_session=db)


def log_in(auth, name: str, password: str) -> dict | None:
    return asyncio.run(auth.get_authenticated_user(None, {"username": name,
                                                          "password": password}))


def test_native_authenticator_takes_the_rendered_values(db) -> None:
    auth = authenticator(db)
    assert auth.open_signup is False
    assert auth.minimum_password_length == 10
    assert auth.check_common_password is True
    assert auth.ask_email_on_signup is True
    assert auth.enable_signup is True
    assert auth.admin_users == {"prof"}
    assert auth.allowed_users == {"prof", "ann"}
    assert auth.blocked_users == {"cy"}
    assert auth.allow_all is False


def test_defaults_when_only_the_kind_is_given(db) -> None:
    auth = authenticator(db, "auth: {kind: native}\nusers: {admins: [prof]}\n")
    assert (auth.open_signup, auth.minimum_password_length, auth.check_common_password,
            auth.ask_email_on_signup) == (False, 8, True, False)


def test_jupyterhub_loads_the_class_and_the_templates() -> None:
    from jupyterhub.app import JupyterHub

    app = JupyterHub(config=rendered())
    assert app.authenticator_class is NativeAuthenticator
    assert Path(app.template_paths[0]) == Path(HUBKEEPER_TEMPLATES)
    assert (Path(HUBKEEPER_TEMPLATES) / "hubkeeper-signup.html").is_file()
    templates = Path(app.template_paths[1])
    assert templates == Path(native_templates())
    # its page.html adds "Authorize Users" for admins; the handlers render these
    for name in ("page.html", "signup.html", "native-login.html", "authorization-area.html"):
        assert (templates / name).is_file(), name
    handlers = dict(NativeAuthenticator(add_new_table=False).get_handlers(app))
    assert {"/signup", "/authorize", "/authorize/([^/]*)", "/change-password"} <= set(handlers)
    assert handlers["/login"] is NativeLoginHandler  # runs on JupyterHub 6
    assert handlers["/signup"] is NativeSignUpHandler  # asks for the invite code
    assert auth_codes_file(app) == str(STATE.secret(invites.FILE_NAME))


def auth_codes_file(app) -> str:
    return app.config.NativeAuthenticator.invite_codes_file


def test_admin_from_the_roster_is_approved_on_sign_up_with_the_invite_code(db) -> None:
    auth = authenticator(db)
    assert auth.create_user("prof", STRONG, invite_code=CODES["prof"]).is_authorized
    assert log_in(auth, "prof", STRONG) == {"name": "prof", "admin": True,
                                            "auth_state": None, "user_info": None}
    assert log_in(auth, "prof", "wrong password!") is None


@pytest.mark.parametrize("code", ["", "ann-code-2", "prof-code-1 ", "PROF-CODE-1"])
def test_roster_name_without_its_invite_code_is_not_signed_up(db, code: str) -> None:
    """The first comer does not get a roster name: no row is made (the name stays free for
    its owner), whatever the password."""
    auth = authenticator(db)
    assert auth.create_user("prof", STRONG, invite_code=code) is None
    assert auth.get_user("prof") is None
    assert log_in(auth, "prof", STRONG) is None
    assert auth.create_user("prof", STRONG, invite_code=CODES["prof"]).is_authorized


def test_roster_name_without_an_issued_code_is_not_signed_up(db) -> None:
    auth = authenticator(db, HUB.replace("allowed: [ann, cy]", "allowed: [ann, cy, dee]"))
    assert auth.create_user("dee", STRONG, invite_code="anything") is None


def test_stranger_waits_for_an_admin_then_logs_in(db) -> None:
    auth = authenticator(db)
    assert not auth.create_user("newbie", STRONG, email="newbie@example.org").is_authorized
    assert log_in(auth, "newbie", STRONG) is None
    UserInfo.change_authorization(db, "newbie")  # what "Authorize" at /hub/authorize does
    model = log_in(auth, "newbie", STRONG)
    assert model is not None and model["name"] == "newbie" and not model["admin"]


def test_upstream_class_alone_refuses_approved_sign_ups_on_jupyterhub_6(db) -> None:
    """Why hubkeeper subclasses it: the base check_allowed admits only allowed_users."""
    auth = authenticator(db, cls=UpstreamNativeAuthenticator)
    auth.create_user("newbie", STRONG)
    UserInfo.change_authorization(db, "newbie")
    assert log_in(auth, "newbie", STRONG) is None


def test_open_signup_needs_no_approval(db) -> None:
    auth = authenticator(db, HUB.replace("kind: native", "kind: native\n  open_signup: true"))
    assert auth.create_user("newbie", STRONG).is_authorized
    assert log_in(auth, "newbie", STRONG)["name"] == "newbie"  # type: ignore[index]


def test_locked_roster_user_cannot_log_in(db) -> None:
    auth = authenticator(db)
    auth.create_user("cy", STRONG)  # locked: not in allowed_users, so no code is asked
    UserInfo.change_authorization(db, "cy")
    assert log_in(auth, "cy", STRONG) is None


@pytest.mark.parametrize(("name", "password"), [
    ("shorty", "abc12345"),        # shorter than minimum_password_length 10
    ("common", "1234567890"),      # on the common-passwords list
    ("Bad Name", STRONG),          # not a valid hub (Linux) user name
    ("-dash", STRONG),
])
def test_bad_sign_ups_are_refused(db, name: str, password: str) -> None:
    assert authenticator(db).create_user(name, password) is None


# --- in a running hub: nativeauthenticator 1.3's pages on JupyterHub 6 ------------------


def test_users_credentials_issues_a_new_code_that_replaces_the_lost_one(tmp_path: Path) -> None:
    import csv

    from hubkeeper.base.errors import HubkeeperError
    from hubkeeper.context.hub import Hub
    from hubkeeper.verbs.users import credentials

    (tmp_path / "lab").mkdir()
    config = tmp_path / "lab" / "hub.yaml"
    config.write_text("hub: {name: lab, mode: personal, state_dir: state}\n" + HUB[HUB.index(
        "auth:"):])
    codes_file = str(tmp_path / "lab" / "state" / "secrets" / invites.FILE_NAME)

    def codes(result) -> dict[str, str]:
        with open(result.file, newline="") as handle:
            return {row["username"]: row["invite_code"] for row in csv.DictReader(handle)}

    first = credentials(Hub.open(config), ())  # everyone active without a code: prof and ann
    assert first.users == ("ann", "prof")
    assert (Path(first.file).stat().st_mode & 0o777) == 0o600
    lost = codes(first)["ann"]
    invites.check(codes_file, "ann", lost)
    assert credentials(Hub.open(config), ()).file is None  # nobody is missing one now
    again = credentials(Hub.open(config), ("ann",))
    assert again.users == ("ann",) and again.file != first.file
    invites.check(codes_file, "ann", codes(again)["ann"])
    with pytest.raises(invites.Refused):
        invites.check(codes_file, "ann", lost)  # the lost code is void
    invites.check(codes_file, "prof", codes(first)["prof"])  # the others keep theirs
    with pytest.raises(HubkeeperError, match="not active on the roster: cy"):
        credentials(Hub.open(config), ("cy",))  # locked

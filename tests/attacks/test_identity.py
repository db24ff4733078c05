"""Finding 2 of issue 17: a student cannot become another student (or anyone else).

In system mode a hub user is a Linux account. Each test replays a way one person could
take another's hub user, and so their uid and home, against real hubkeeper code run as root:
- a hub.yaml whose login lets anyone be anyone (shared-password, dummy, open native
  sign-up) is refused before anything changes;
- native sign-up of a roster name (a classmate, the instructor) needs that name's invite
  code: a student with a shell tries without it, with their own code, with a guess;
- an account hubkeeper did not make (a TA's own login) is never a hub user's, neither at
  login (PAM with allow_all) nor when a hub user of that name is made through the API;
- a GitHub login renamed and re-registered by someone else does not carry the hub user.
"""

from __future__ import annotations

import csv
import subprocess
import time
from pathlib import Path

import pytest

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.host.hubapi import HubAPI
from tests.attacks.conftest import Student, Students
from tests.conftest import TEST_ACCOUNT_PREFIX, require_root
from tests.support.hubproc import HUBKEEPER, apply_accounts, write_config

pytestmark = [pytest.mark.component, pytest.mark.root]

P = TEST_ACCOUNT_PREFIX
PASSWORD = "Correct-Horse-7"
STRONG = "a long sign-up phrase 42"

# Run by the attacking student: nativeauthenticator's sign-up form, posted as a browser would.
SIGN_UP = r"""
import http.cookiejar, re, sys, urllib.parse, urllib.request
url, name, password, code = sys.argv[1:5]
opener = urllib.request.build_opener(
    urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
page = opener.open(url + "hub/signup", timeout=30).read().decode()
xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
form = {"_xsrf": xsrf, "username": name, "signup_password": password,
        "signup_password_confirmation": password, "invite_code": code}
print(opener.open(url + "hub/signup", urllib.parse.urlencode(form).encode(),
                  timeout=30).read().decode())
"""

# Run by the attacking account: the hub's login form; prints the status, then the page.
LOG_IN = r"""
import http.cookiejar, re, sys, urllib.error, urllib.parse, urllib.request
url, name, password = sys.argv[1:4]

class Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 302 is the answer: logged in

opener = urllib.request.build_opener(
    urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), Stay())
page = opener.open(url + "hub/login", timeout=30).read().decode()
xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
form = {"_xsrf": xsrf, "username": name, "password": password}
try:
    answer = opener.open(url + "hub/login", urllib.parse.urlencode(form).encode(),
                         timeout=60)
    print(answer.status)
    print(answer.read().decode())
except urllib.error.HTTPError as error:
    print(error.code)
    print(error.read().decode())
"""


def sign_up(student: Student, url: str, name: str, password: str, code: str) -> str:
    return student.python(SIGN_UP, url, name, password, code).stdout


def log_in(account: Student, url: str, name: str, password: str) -> tuple[int, str]:
    status, _, page = account.python(LOG_IN, url, name, password).stdout.partition("\n")
    return int(status), page


def credentials(workdir: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted((workdir / "state" / "credentials").glob("*.csv")):
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


# --- hub.yaml: logins that let anyone be anyone are refused in system mode --------------

LOGINS = {
    "shared-password": ("auth:\n  kind: shared-password\n", "auth.kind",
                        "'shared-password' gives every user the one password"),
    "dummy": ("auth:\n  kind: dummy\n", "auth.kind", "'dummy' accepts any password"),
    "open-signup": ("auth:\n  kind: native\n  open_signup: true\n", "auth.open_signup",
                    "in system mode a hub user runs as a Linux account, so sign-ups cannot "
                    "be open"),
}


@pytest.mark.parametrize("mode", ["auto", "system"])
@pytest.mark.parametrize("login", sorted(LOGINS))
def test_check_refuses_a_login_that_lets_anyone_be_anyone(workdir: Path, mode: str,
                                                          login: str) -> None:
    require_root()  # `auto` is system mode as root
    auth, field, words = LOGINS[login]
    config = workdir / "hub.yaml"
    config.write_text(f"hub:\n  name: {P}id\n  ip: 127.0.0.1\n  mode: {mode}\n"
                      f"  state_dir: state\n{auth}users:\n  allowed: [{P}ann]\n")
    line = 7 if field == "auth.kind" else 8
    column = 9 if field == "auth.kind" else 16
    for verb in ("check", "up", "apply"):
        done = subprocess.run([HUBKEEPER, "--config", str(config), verb], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2, (verb, done.stdout, done.stderr)
        assert f"{config}:{line}:{column}: {field}: {words}" in done.stderr, done.stderr
        assert "internal error" not in done.stderr
    assert not (workdir / "state").exists()  # nothing was changed


# --- native: a roster name is signed up only with its invite code ------------------------


def test_native_sign_up_as_a_classmate_or_the_instructor_needs_their_code(
        workdir: Path, hubs, students: Students) -> None:
    prof, ann, bob = f"{P}prof", f"{P}ann", f"{P}bob"
    config = write_config(workdir, mode="system", auth="native", admins=(prof,),
                          allowed=(ann, bob))
    apply_accounts(config)  # the accounts, their passwords and the invite codes
    codes = {row["username"]: row["invite_code"] for row in credentials(workdir)}
    assert set(codes) == {prof, ann, bob} and all(codes.values())
    hub = hubs.start(config)
    mallory = Student(bob)  # a student of the class, with a shell (their own account)
    students.made.append(mallory)

    for victim in (ann, prof):
        for code in ("", codes[bob], "000000-000000-000000", codes[victim].upper()):
            page = sign_up(mallory, hub.url, victim, STRONG, code)
            assert f"signing up as {victim} needs the invite code" in page, page[-2000:]
        status, page = log_in(mallory, hub.url, victim, STRONG)
        assert status == 200 and "Invalid username or password" in page  # no such sign-up
    hub.wait_logged(f"sign-up as {ann} refused: the invite code given is not theirs")

    # The rightful owners, with their codes: signed up and in, as their own accounts.
    for owner in (ann, prof):
        page = sign_up(Student(owner), hub.url, owner, STRONG, codes[owner])
        assert "The signup was successful" in page, page[-2000:]
        assert log_in(Student(owner), hub.url, owner, STRONG)[0] == 302
    # A code is good once: the name is taken now, also for someone holding the code.
    page = sign_up(mallory, hub.url, ann, STRONG + "!", codes[ann])
    assert "this username is already in use" in page


# --- an account hubkeeper did not make is never a hub user's ------------------------------


def test_an_account_hubkeeper_did_not_make_is_never_used(workdir: Path, hubs,
                                                         students: Students) -> None:
    ta = students.make("ta", password=PASSWORD)  # a TA's own login, made outside hubkeeper
    ann = f"{P}ann"
    config = write_config(workdir, mode="system", auth="pam",
                          users=f"  allowed: [{ann}]\n  allow_all: true\n")
    apply_accounts(config, PASSWORD, (ann,))
    hub = hubs.start(config)

    # PAM accepts the TA's own password and allow_all lets every Linux account in: the hub
    # user would be the TA's account. Refused, with a sentence for them and the why logged.
    status, page = log_in(ta, hub.url, ta.name, PASSWORD)
    assert status == 403, page[-2000:]
    assert f"You cannot log in as {ta.name}: there is no account for this user" in page
    hub.wait_logged(f"login of {ta.name} refused: '{ta.name}' has no account in hubkeeper's "
                    "journal")
    student = Student(ann)  # a hubkeeper account of the roster still gets in
    assert log_in(student, hub.url, ann, PASSWORD)[0] == 302

    # A hub user of that name made another way (an admin's page, the REST API): its server
    # is refused too, and nothing runs as the TA.
    api = HubAPI(f"http://127.0.0.1:{hub_api_port(config)}/", hub.secret("api-token"))
    api.call("POST", "/users", {"usernames": [ta.name]})
    try:
        api.call("POST", f"/users/{ta.name}/server")
    except HubkeeperError as exc:
        assert "has no account on this machine" in exc.message
    wait_not_pending(api, ta.name)
    assert not api.call("GET", f"/users/{ta.name}")["servers"]
    assert subprocess.run(["pgrep", "-u", ta.name], capture_output=True).returncode == 1
    hub.wait_logged(f"{ta.name}: refused: '{ta.name}' has no account in hubkeeper's journal")


def hub_api_port(config: Path) -> int:
    from hubkeeper.config import load

    return load(config).spec.hub.api_port


def wait_not_pending(api: HubAPI, name: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if not api.call("GET", f"/users/{name}").get("pending"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{name}'s start still pending after {deadline} s")


# --- GitHub: a renamed login does not carry the hub user ----------------------------------


def test_renamed_github_login_does_not_get_the_hub_user(tmp_path: Path) -> None:
    """The real authenticator from the rendered config; only GitHub's HTTP answers are
    canned (the stand-in of tests/unit/test_auth_github.py: there is no GitHub here)."""
    from tests.unit import test_auth_github as gh

    state = gh.StatePaths(tmp_path / "state")
    state.root.mkdir()
    gh.STATE = state
    text = gh.HUB.replace("admins: [prof]", "admins: [prof, alice]")

    def first_login(ids: dict[str, int]) -> dict | None:
        authenticator = gh.StubbedGitHubAuthenticator(config=gh.rendered(text))
        authenticator.github = gh.FakeGitHub({**gh.PEOPLE, "alice": []}, ids)
        return gh.log_in("alice", authenticator=authenticator)

    model = first_login({"alice": 1001})  # alice, GitHub user 1001: bound at first login
    assert model is not None and model["name"] == "alice" and model["admin"] is True
    assert first_login({"alice": 1001}) is not None  # and again

    # alice renamed her GitHub account; someone else registered the free login "alice".
    from tornado.web import HTTPError

    with pytest.raises(HTTPError) as refused:
        first_login({"alice": 2002})
    assert refused.value.status_code == 403
    message = refused.value.jupyterhub_message  # type: ignore[attr-defined]
    assert "You cannot log in as alice: this hub's user alice belongs to another GitHub " \
        "account" in message
    bound = (state.root / "github-ids.json").read_text()
    assert '"alice": 1001' in bound and "2002" not in bound
    assert (state.root / "github-ids.json").stat().st_mode & 0o777 == 0o600

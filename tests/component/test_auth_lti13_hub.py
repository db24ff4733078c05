"""auth.kind lti13 end to end: a real hub in system mode with users.accounts: first_login,
launched from a test LMS (tests/support/lti_platform.py: its own keys and JWKS, the real
LTI 1.3 / OIDC launch over HTTP), people admitted only by their course launch.
"""

from __future__ import annotations

import asyncio
import grp
import json
import pwd
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import hk, ok, write_config
from tests.support.lti_platform import INSTRUCTOR, LTIPlatform, LTIUser, launch
from tests.support.procs import server_pids, uid_of

pytestmark = [pytest.mark.component, pytest.mark.root]

COURSE = "course-101"
LEARNER, TEACHER = f"{P}lea", f"{P}prof"  # their e-mail's local parts: the hub names
DOMAIN = "uni.example.edu"


@pytest.fixture(scope="session")
def lti_platform() -> Iterator[LTIPlatform]:
    """The test LMS, shared by the session and stopped at its end."""
    platform = LTIPlatform().start()
    yield platform
    platform.stop()


def lti_hub(workdir: Path, platform: LTIPlatform) -> Path:
    config = write_config(workdir, mode="system", auth="lti13",
                          users="  accounts: first_login\n",
                          extra="archive: {dir: archives}\n")
    section = ("auth:\n  kind: lti13\n  lti13:\n" + platform.hub_yaml((COURSE,), "    ")
               + "    groups: {Learner: " + f"{P}students" + "}\n")
    config.write_text(config.read_text().replace("auth:\n  kind: lti13\n", section))
    return config


async def visit(hub_url: str, name: str, launch_url: str, code: str) -> tuple[str, dict]:
    """Launch from the course, start the server, run `code`; its result and the hub's
    model of the user."""
    async with LTIUser(hub_url, name, launch_url) as user:
        await user.login()
        await user.start_server()
        await user.open_server()
        result = await user.run_code(code)
        model = await user.model()
        await user.stop_server()
        return result, model


async def refused(launch_url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        return await launch(session, launch_url)


def journal(config: Path) -> dict:
    return json.loads((config.parent / "state" / "journal.json").read_text())


def test_a_course_launch_makes_the_account_at_first_login(workdir: Path, hubs, clean_accounts,
                                                          lti_platform: LTIPlatform) -> None:
    platform = lti_platform
    config = lti_hub(workdir, platform)
    hub = hubs.start(config)

    # A learner the platform alone admits: no account before, one after the first launch.
    with pytest.raises(KeyError):
        pwd.getpwnam(LEARNER)
    first = platform.launch_url(hub.url, "sub-learner-1", f"{LEARNER}@{DOMAIN}")
    result, model = asyncio.run(visit(hub.url, LEARNER, first, "import os; os.getuid()"))
    account = pwd.getpwnam(LEARNER)
    assert result == str(account.pw_uid)  # the kernel runs as the new account
    assert not model["admin"]
    assert f"{P}students" in model["groups"]  # Learner -> the mapped group
    record = journal(config)["accounts"][LEARNER]
    assert record["uid"] == account.pw_uid
    assert record["origin"] == "lti13"
    assert record["subject"] == f"lti13:{platform.issuer} sub-learner-1"
    assert LEARNER in grp.getgrnam(f"{P}students").gr_mem  # a Linux group too

    # 1+1 in a server that runs as that uid (read from /proc).
    async def one_plus_one() -> str:
        async with LTIUser(hub.url, LEARNER, platform.launch_url(
                hub.url, "sub-learner-1", f"{LEARNER}@{DOMAIN}")) as user:
            await user.login()
            await user.start_server()
            await user.open_server()
            servers = server_pids(_api_port(config))
            assert [uid_of(pid) for pid, name in servers.items() if name == LEARNER] == [
                account.pw_uid]
            answer = await user.run_code("1+1")
            await user.stop_server()
            return answer

    # A second launch reuses the account.
    assert asyncio.run(one_plus_one()) == "2"
    assert pwd.getpwnam(LEARNER).pw_uid == account.pw_uid
    assert list(journal(config)["accounts"]) == [LEARNER]

    # The course's instructor is a hub admin.
    teacher = platform.launch_url(hub.url, "sub-teacher-1", f"{TEACHER}@{DOMAIN}",
                                  roles=INSTRUCTOR)
    result, model = asyncio.run(visit(hub.url, TEACHER, teacher, "1+1"))
    assert result == "2" and model["admin"]

    # Another platform user whose e-mail gives the same name does not get the account.
    status, page = asyncio.run(refused(platform.launch_url(
        hub.url, "sub-someone-else", f"{LEARNER}@other.example.org")))
    assert status == 403, page
    assert LEARNER in page

    # A launch signed with a key the platform's JWKS does not hold is refused.
    status, page = asyncio.run(refused(platform.launch_url(
        hub.url, "sub-learner-1", f"{LEARNER}@{DOMAIN}", forged=True)))
    assert status == 400 and "Signature verification failed" in page, page
    # So is one from a course the hub does not list: no account.
    stranger = f"{P}str"
    status, _ = asyncio.run(refused(platform.launch_url(
        hub.url, "sub-stranger", f"{stranger}@{DOMAIN}", context="course-999")))
    assert status == 403
    with pytest.raises(KeyError):
        pwd.getpwnam(stranger)
    assert platform.errors == []  # the hub's authentication requests were all valid

    # Retiring the hub (after its archive) removes the accounts made at first login.
    hub.stop()
    ok(hk(config, "archive"))
    ok(hk(config, "retire", "--yes"))
    for name in (LEARNER, TEACHER):
        with pytest.raises(KeyError):
            pwd.getpwnam(name)


def _api_port(config: Path) -> int:
    from hubkeeper.config import load

    return load(config).spec.hub.api_port

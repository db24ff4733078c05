"""The pure planners of hub.url's site, the systemd unit and retirement: desired + facts +
journal in, actions out (no file, nginx or systemd is touched), and the executor's order of
intent, run and result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.host.site import Desired, SiteFacts, SiteFile
from hubkeeper.ops.execute import Effector, execute
from hubkeeper.plan.actions import EFFECTS, JOURNALED, Action
from hubkeeper.plan.retirement import RetirementFacts, plan_installed_removal
from hubkeeper.plan.site import plan_site
from hubkeeper.plan.unit import (
    UnitDesired,
    UnitFacts,
    UnitFile,
    plan_unit,
    plan_unit_removal,
    unit_state,
)
from hubkeeper.state.journal import DirRecord, FileRecord, Journal

SITE = "/etc/nginx/conf.d/hubkeeper-c.conf"
HOOK = "/etc/letsencrypt/renewal-hooks/deploy/hubkeeper-c"
MAIN = "/etc/nginx/nginx.conf"
UNIT = "/etc/systemd/system/hubkeeper-c.service"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def journal_with(tmp_path: Path, **files: tuple[str, bytes]) -> Journal:
    journal = Journal(tmp_path / "journal.json")
    for path, (kind, content) in files.items():
        journal.files[path] = FileRecord(path, kind, "created", sha(content))
    return journal


def want(site: bytes = b"site", bootstrap: bytes | None = None, hook: bytes | None = None,
         http_port: int = 80) -> Desired:
    return Desired(SITE, site, bootstrap, HOOK if hook else None, hook, None, host="hub.edu",
                   main_config=MAIN, letsencrypt=hook is not None, webroot="/var/www/acme",
                   http_port=http_port)


def facts(files: dict[str, bytes | None], running: bool = True, problem: str | None = None,
          main: str | None = MAIN) -> SiteFacts:
    return SiteFacts({path: SiteFile(path, "", problem if path == SITE else None,
                                     content is not None,
                                     sha(content) if content is not None else None, main)
                      for path, content in files.items()},
                     nginx=True, running=frozenset({MAIN} if running else set()))


def kinds(actions) -> list[tuple[str, str]]:
    return [(a.kind, a.subject) for a in actions]


# -- the Action shape -----------------------------------------------------------------------

def test_every_kind_says_whether_it_destroys_and_how_it_is_undone() -> None:
    from typing import get_args

    from hubkeeper.plan.actions import Kind
    assert set(get_args(Kind)) == set(EFFECTS)
    assert Action("create-account", "ann").undo == JOURNALED
    assert Action("lock", "ann").undo == "unlock" and not Action("lock", "ann").destructive
    assert Action("remove-systemd-unit", UNIT).destructive is False
    assert Action("install-nginx-site", SITE).undo == JOURNALED
    assert Action("install-systemd-unit", UNIT).undo == JOURNALED
    assert Action("add-to-group", "ann", "lab").target == "ann"


# -- plan_site ----------------------------------------------------------------------------

def test_a_new_site_is_installed_and_nginx_started(tmp_path: Path) -> None:
    plan = plan_site(want(), facts({SITE: None}, running=False), journal_with(tmp_path))
    assert kinds(plan.actions) == [("install-nginx-site", SITE), ("start-nginx", MAIN)]
    assert plan.notes == ()


def test_a_site_as_hubkeeper_wrote_it_is_no_change(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, **{SITE: ("nginx-site", b"site")})
    assert plan_site(want(), facts({SITE: b"site"}), journal).actions == ()


def test_a_changed_site_is_rewritten_and_nginx_reloaded(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, **{SITE: ("nginx-site", b"old")})
    plan = plan_site(want(b"new"), facts({SITE: b"old"}), journal)
    assert kinds(plan.actions) == [("install-nginx-site", SITE), ("reload-nginx", MAIN)]


def test_lets_encrypt_bootstraps_then_gets_the_certificate(tmp_path: Path) -> None:
    plan = plan_site(want(bootstrap=b"http", hook=b"hook", http_port=8080),
                     facts({SITE: None, HOOK: None}), journal_with(tmp_path))
    assert kinds(plan.actions) == [
        ("install-nginx-site", SITE), ("get-certificate", "hub.edu"),
        ("install-certbot-hook", HOOK), ("install-nginx-site", SITE), ("reload-nginx", MAIN)]
    assert plan.actions[0].detail == "HTTP only, for Let's Encrypt's challenge"
    assert "port 80 must reach it" in plan.notes[0]


def test_without_hub_url_the_sites_go_and_a_hand_edited_one_stays(tmp_path: Path) -> None:
    other = "/etc/nginx/conf.d/hubkeeper-old.conf"
    journal = journal_with(tmp_path, **{SITE: ("nginx-site", b"s"), other: ("nginx-site", b"o"),
                                        HOOK: ("certbot-hook", b"h")})
    plan = plan_site(None, facts({SITE: b"s", other: b"o", HOOK: None}), journal, MAIN)
    assert kinds(plan.actions) == [("remove-certbot-hook", HOOK), ("remove-nginx-site", SITE),
                                   ("remove-nginx-site", other), ("reload-nginx", MAIN)]
    assert plan.actions[0].detail == "already gone"
    edited = plan_site(None, facts({SITE: b"x", other: None, HOOK: None},
                                   problem="was changed by hand"), journal, MAIN)
    assert ("remove-nginx-site", SITE) not in kinds(edited.actions)
    assert edited.notes == (f"{SITE} was changed by hand",)


# -- plan_unit ----------------------------------------------------------------------------

def unit_want(content: bytes = b"unit") -> UnitDesired:
    return UnitDesired("hubkeeper-c.service", UNIT, sha(content))


def unit_facts(content: bytes | None, systemd: bool = False, problem: str | None = None,
               active: str | None = None, enabled: str | None = None) -> UnitFacts:
    return UnitFacts({UNIT: UnitFile(UNIT, sha(content) if content else None, problem)},
                     systemd, active, enabled)


def test_the_unit_is_written_and_where_systemd_runs_enabled(tmp_path: Path) -> None:
    journal = journal_with(tmp_path)
    assert kinds(plan_unit(unit_want(), unit_facts(None), journal)) == [
        ("install-systemd-unit", UNIT)]
    assert kinds(plan_unit(unit_want(), unit_facts(None, systemd=True), journal)) == [
        ("install-systemd-unit", UNIT), ("daemon-reload", "hubkeeper-c.service"),
        ("enable-systemd-unit", "hubkeeper-c.service")]
    assert unit_state(unit_want(), unit_facts(None), journal)[0] == "absent"


def test_an_installed_unit_is_only_started_when_it_is_not_running(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, **{UNIT: ("systemd-unit", b"unit")})
    running = unit_facts(b"unit", systemd=True, active="active", enabled="enabled")
    assert plan_unit(unit_want(), running, journal) == []
    stopped = unit_facts(b"unit", systemd=True, active="failed", enabled="enabled")
    assert kinds(plan_unit(unit_want(), stopped, journal)) == [
        ("enable-systemd-unit", "hubkeeper-c.service")]
    outdated = plan_unit(unit_want(b"new"), unit_facts(b"unit"), journal)
    assert [(a.kind, a.detail) for a in outdated] == [("install-systemd-unit", "outdated")]


def test_a_hand_edited_unit_is_neither_replaced_nor_removed(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, **{UNIT: ("systemd-unit", b"unit")})
    edited = unit_facts(b"edited", systemd=True, problem="was changed by hand")
    assert plan_unit(unit_want(), edited, journal) == []
    assert plan_unit_removal(edited, journal) == []
    assert unit_state(unit_want(), edited, journal)[0] == "hand-edited"


def test_unit_removal_is_the_inverse_of_its_install(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, **{UNIT: ("systemd-unit", b"unit")})
    assert kinds(plan_unit_removal(unit_facts(b"unit"), journal)) == [
        ("remove-systemd-unit", UNIT)]
    assert kinds(plan_unit_removal(unit_facts(b"unit", systemd=True), journal)) == [
        ("disable-systemd-unit", "hubkeeper-c.service"), ("remove-systemd-unit", UNIT),
        ("daemon-reload", "systemd")]
    gone = plan_unit_removal(unit_facts(None, systemd=True), journal)
    assert gone[0].detail == "file gone"  # still loaded, maybe: disabled without a check
    assert plan_unit_removal(unit_facts(None), journal_with(tmp_path)) == []


# -- undoing the installed files -----------------------------------------------------------

def test_retire_undoes_the_unit_and_the_site_in_order(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, **{UNIT: ("systemd-unit", b"unit"),
                                        SITE: ("nginx-site", b"site")})
    retirement = RetirementFacts(unit=unit_facts(b"unit"), site=facts({SITE: b"site"}),
                                 nginx_main=MAIN)
    assert kinds(plan_installed_removal(journal, retirement)) == [
        ("remove-systemd-unit", UNIT), ("remove-nginx-site", SITE), ("reload-nginx", MAIN)]
    # nothing journaled: nothing to undo
    empty = RetirementFacts(unit=unit_facts(None), site=facts({}), nginx_main=MAIN)
    assert plan_installed_removal(journal_with(tmp_path), empty) == []


# -- the executor -------------------------------------------------------------------------

def test_the_executor_journals_the_intent_before_it_acts(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.json")
    seen: list[str] = []

    def on_disk() -> dict:
        return json.loads(journal.path.read_text())["dirs"] if journal.path.exists() else {}

    def intend(action: Action) -> None:
        journal.dirs[action.subject] = DirRecord(action.subject, "shared")

    def run(action: Action) -> None:
        seen.append(on_disk()[action.subject]["state"])  # the intent is saved already
        if action.subject == "/srv/bad":
            raise HubkeeperError("cannot")

    def confirm(action: Action) -> None:
        journal.dirs[action.subject].state = "created"

    effector = Effector(run, intend=intend, confirm=confirm)
    done = execute([Action("create-shared-dir", "/srv/a")], {"create-shared-dir": effector},
                   journal)
    assert [a.subject for a in done] == ["/srv/a"] and seen == ["creating"]
    assert on_disk()["/srv/a"]["state"] == "created"
    with pytest.raises(HubkeeperError):
        execute([Action("create-shared-dir", "/srv/bad")], {"create-shared-dir": effector},
                journal)
    assert on_disk()["/srv/bad"]["state"] == "creating"  # a later run or retire finds it
    with pytest.raises(HubkeeperError, match="no effector"):
        execute([Action("lock", "ann")], {}, journal)


# -- plan_data, from the facts of its paths -----------------------------------------------

def test_data_is_planned_from_the_facts_of_its_paths(tmp_path: Path) -> None:
    from hubkeeper.config import load
    from hubkeeper.host.accounts import Account, HostUsers
    from hubkeeper.host.pathfacts import ABSENT, PathFact
    from hubkeeper.plan.data import data_paths, data_problems, data_specs, plan_data
    from hubkeeper.roster import build_roster

    config = tmp_path / "hub.yaml"
    config.write_text("users:\n  allowed: [ann]\n  groups: {lab: [ann]}\n"
                      "data:\n  shared: [{path: /srv/books, link: books}]\n"
                      "  group_folders: [{path: /srv/lab, group: lab, link: lab}]\n")
    loaded = load(config)
    roster = build_roster(loaded)
    account = roster.members[0].account
    host = HostUsers({account: Account(account, 1001, 1001, f"/home/{account}", False)}, {},
                     frozenset({1001}))
    shared, folders = data_specs(loaded)
    journal = Journal(tmp_path / "journal.json")
    assert data_paths(shared, folders, roster, host) == [
        "/srv/books", "/srv/lab", f"/home/{account}/books", f"/home/{account}/lab"]
    nothing: dict[str, PathFact] = {}
    actions, notes = plan_data(shared, folders, roster, host, journal, nothing)
    assert kinds(actions) == [("create-shared-dir", "/srv/books"),
                              ("create-group-folder", "/srv/lab"),
                              ("link-in-home", account), ("link-in-home", account)]
    assert notes == [] and data_problems(shared, folders, roster, journal, nothing) == []
    made = PathFact(True, True, True, 0, 0o755, None)
    own = PathFact(True, False, False, 1001, 0o644, None)
    facts = {"/srv/books": PathFact(True, True, True, 1001, 0o775, None), "/srv/lab": made,
             f"/home/{account}/books": PathFact(True, True, False, 0, 0o777, "/srv/books"),
             f"/home/{account}/lab": own}
    actions, notes = plan_data(shared, folders, roster, host, journal, facts)
    assert actions == [] and notes == [
        f"/home/{account}/lab exists and is not a link to /srv/lab: left as it is"]
    problems = data_problems(shared, folders, roster, journal, facts)
    assert ["users could write to it" in p.message for p in problems] == [True, False]
    assert "hubkeeper did not create it" in problems[1].message
    assert facts.get("/nowhere", ABSENT).exists is False

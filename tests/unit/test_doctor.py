"""`hubkeeper doctor`'s pure parts and its fix loop, on files in a temporary directory and an
/etc under a temporary root (host.users.observe's seam); no Linux account is touched."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from rich.console import Console

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import free_bytes
from hubkeeper.base.locks import apply_lock
from hubkeeper.cli.output import text
from hubkeeper.config import load
from hubkeeper.context.hub import Hub
from hubkeeper.doctor import CHECKS, Check, Context, Finding
from hubkeeper.doctor.disk import disk_status
from hubkeeper.doctor.findings import Fix, chmod_fix
from hubkeeper.doctor.journal import journal_checks
from hubkeeper.doctor.permissions import PRIVATE, check_home, inspect
from hubkeeper.host.accounts import observe
from hubkeeper.host.dirs import GROUP_FOLDER_ACL, acl_entries, parse_getfacl
from hubkeeper.roster import build_roster
from hubkeeper.state.journal import AccountRecord, GroupRecord, Journal
from hubkeeper.state.removals import Removal, Removals
from hubkeeper.state.statedir import StatePaths
from hubkeeper.verbs.doctor import (
    Change,
    CheckShown,
    DoctorResult,
    Reported,
    ShownFix,
    doctor,
    run_checks,
)

GiB = 1024**3


def test_free_space_against_min_free() -> None:
    assert disk_status(3 * GiB, GiB) == "ok"
    assert disk_status(2 * GiB, GiB) == "ok"
    assert disk_status(2 * GiB - 1, GiB) == "warning"
    assert disk_status(GiB, GiB) == "warning"
    assert disk_status(GiB - 1, GiB) == "problem"
    assert disk_status(0, 0) == "ok"  # min_free 0: the guard is off


def test_the_group_folder_acl_as_getfacl_prints_it() -> None:
    assert acl_entries(GROUP_FOLDER_ACL) == {
        "user::rwx", "group::rwx", "other::---", "default:user::rwx", "default:group::rwx",
        "default:mask::rwx", "default:other::---"}
    printed = ("user::rwx\ngroup::rwx\t\t\t#effective:r-x\nmask::r-x\nother::---\n"
               "default:user::rwx\n\n")
    assert parse_getfacl(printed) == {"user::rwx", "group::rwx", "mask::r-x", "other::---",
                                      "default:user::rwx"}


def test_the_registry_names_each_check_once() -> None:
    names = [check.name for check in CHECKS]
    assert names == ["hub", "state", "homes", "data", "journal", "disk", "tls", "service",
                     "containers", "extra_config"]
    assert all(check.title and callable(check.run) for check in CHECKS)


def personal_hub(tmp_path: Path, rest: str = "") -> Path:
    config = tmp_path / "hub.yaml"
    config.write_text("hub: {name: unit, mode: personal, state_dir: state}\n"
                      "users:\n  allowed: [ann, bob]\n" + rest)
    return config


def context(tmp_path: Path, mode: str = "personal", journal: Journal | None = None,
            etc: dict[str, str] | None = None) -> Context:
    loaded = load(personal_hub(tmp_path))
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    for name, body in (etc or {}).items():
        (root / "etc" / name).write_text(body)
    paths = StatePaths(tmp_path / "state")
    return Context(loaded, build_roster(loaded), mode, paths,
                   journal or Journal(paths.journal), None, observe(root),
                   frozenset({0, os.geteuid()}), free_bytes)


def test_a_secret_others_can_read_gets_a_safe_chmod(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    secret = tmp_path / "token"
    secret.write_text("s")
    os.chmod(secret, 0o644)
    [finding] = inspect(ctx, "state", secret, "a secret", PRIVATE, directory=False)
    assert (finding.status, finding.subject) == ("problem", str(secret))
    assert "other users on this machine can read a secret" in finding.explanation
    assert finding.fix is not None and finding.fix.safe
    assert (finding.fix.command, finding.fix.before, finding.fix.after) == (
        f"chmod 0600 {secret}", "0644", "0600")
    finding.fix.run()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    [again] = inspect(ctx, "state", secret, "a secret", PRIVATE, directory=False)
    assert again.status == "ok" and again.fix is None


def test_a_fix_refuses_a_file_that_changed_since_the_check(tmp_path: Path) -> None:
    target = tmp_path / "home"
    target.mkdir()
    os.chmod(target, 0o755)
    fix = chmod_fix(str(target), os.lstat(target), 0o700)
    os.chmod(target, 0o750)  # someone else changed it in between
    with pytest.raises(HubkeeperError, match="changed since it was checked"):
        fix.run()
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    target.rmdir()
    target.symlink_to(tmp_path)  # a link put in its place is never followed
    with pytest.raises(HubkeeperError):
        fix.run()


def test_a_secret_that_is_a_link_is_reported_without_a_fix(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    (tmp_path / "elsewhere").write_text("s")
    link = tmp_path / "token"
    link.symlink_to(tmp_path / "elsewhere")
    [finding] = inspect(ctx, "state", link, "a secret", PRIVATE, directory=False)
    assert finding.status == "problem" and finding.fix is None
    assert "is a symbolic link, not a plain file" in finding.explanation


PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "ann:x:2001:2001::/home/ann:/bin/bash\n"
          "bob:x:2005:2005::/home/bob:/bin/bash\n")
GROUP = "root:x:0:\nann:x:2001:\nbob:x:2005:\nlab:x:3000:\n"


def test_the_journal_against_the_machine(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.json", accounts={
        "ann": AccountRecord("ann", "ann", "created", 2001, 2001, "/home/ann"),
        "carl": AccountRecord("carl", "carl", "created", 2003, 2003, "/home/carl"),
        "dora": AccountRecord("dora", "dora", "creating"),
        "emil": AccountRecord("emil", "emil", "removing", 2004, 2004, "/home/emil"),
        "fay": AccountRecord("fay", "fay", "removing", 2006, 2006, "/home/fay"),
    }, groups={"lab": GroupRecord("lab", "created", 3001)})
    ctx = context(tmp_path, "system", journal, {"passwd": PASSWD, "group": GROUP})
    ctx.paths.root.mkdir(parents=True, exist_ok=True)
    removals = Removals(ctx.paths.root / "removals.json",
                        [Removal("fay", "fay", "/home/fay", 2006, "2026-01-05T10:00:00+00:00")])
    removals.save()
    by_subject: dict[str, list[Finding]] = {}
    for finding in journal_checks(ctx):
        by_subject.setdefault(finding.subject, []).append(finding)
    assert [f.status for f in by_subject["ann"]] == ["ok"]
    [carl] = by_subject["carl"]
    assert carl.status == "problem" and "(uid 2003), and it is gone" in carl.explanation
    assert "no longer on the roster" in carl.explanation
    [dora] = by_subject["dora"]
    assert dora.status == "problem" and "Run `hubkeeper apply` again" in dora.explanation
    [emil] = by_subject["emil"]
    assert "Run `hubkeeper retire --yes` again" in emil.explanation
    [fay] = by_subject["fay"]  # `users remove fay` was killed: never advise retire for it
    assert "`hubkeeper users remove fay --yes` was stopped" in fay.explanation
    assert "retire" not in fay.explanation
    [lab] = by_subject["lab"]
    assert lab.status == "problem" and "has gid 3000" in lab.explanation
    [bob] = by_subject["bob"]  # on the roster, exists, not in the journal
    assert bob.status == "problem" and "put it back from a snapshot" in bob.explanation
    assert all(f.fix is None for fs in by_subject.values() for f in fs), "never repaired"


def test_existing_accounts_of_a_hub_that_never_applied_are_only_a_warning(
        tmp_path: Path) -> None:
    """`up` without `apply` (seed 002): the roster names the machine's own accounts."""
    ctx = context(tmp_path, "system", None, {"passwd": PASSWD, "group": GROUP})
    statuses = {f.subject: f.status for f in journal_checks(ctx)}
    assert statuses == {"ann": "warning", "bob": "warning"}


def test_a_check_that_fails_becomes_a_finding(tmp_path: Path) -> None:
    def broken(ctx: Context) -> list[Finding]:
        raise HubkeeperError("cannot read /x", hint="run as root")

    def unreadable(ctx: Context) -> list[Finding]:
        raise PermissionError(13, "Permission denied", "/etc/shadow")

    findings = run_checks(context(tmp_path), [Check("a", "A", broken),
                                              Check("b", "B", unreadable)])
    assert [(f.check, f.status) for f in findings] == [("a", "problem"), ("b", "problem")]
    assert findings[0].explanation == "This check could not run: cannot read /x. Run as root."
    assert findings[1].subject == "/etc/shadow"


def test_fix_runs_only_safe_fixes_under_the_apply_lock_then_checks_again(
        tmp_path: Path) -> None:
    config = personal_hub(tmp_path)
    paths = StatePaths(tmp_path / "state")
    target = tmp_path / "target"
    target.write_text("x")
    os.chmod(target, 0o644)
    ran: list[str] = []

    def safe_run() -> None:
        with pytest.raises(HubkeeperError, match="another `hubkeeper apply`"):
            apply_lock(paths).check_free()  # doctor holds it while fixing
        ran.append("safe")
        os.chmod(target, 0o600)

    def by_hand() -> None:
        ran.append("unsafe")

    def check(ctx: Context) -> list[Finding]:
        if stat.S_IMODE(target.stat().st_mode) == 0o600:
            return [Finding("t", "ok", str(target), "fine.")]
        return [Finding("t", "problem", str(target), "open.",
                        Fix("chmod 0600 target", "0644", "0600", True, safe_run)),
                Finding("t", "warning", "owner", "by hand.",
                        Fix("chown x target", "y", "x", False, by_hand))]

    checks = [Check("t", "Test", check)]
    looked = doctor(Hub.open(config), fix=False, checks=checks)
    assert (looked.exit_code, looked.changes, ran) == (1, (), [])
    assert looked.fixable == 1
    assert looked.findings[1].fix == ShownFix("chown x target", "y", "x", False)

    fixed = doctor(Hub.open(config), fix=True, checks=checks)
    assert ran == ["safe"]
    assert fixed.changes == (Change("t", str(target), "chmod 0600 target", "0644", "0600",
                                    None),)
    assert [f.status for f in fixed.findings] == ["ok"] and fixed.exit_code == 0
    apply_lock(paths).check_free()  # released


def render(result: DoctorResult) -> str:
    console = Console(width=200)
    with console.capture() as captured:
        text(result, console)
    return captured.get()


def result(findings: list[Reported], changes: tuple[Change, ...] = (),
           fixing: bool = False) -> DoctorResult:
    return DoctorResult("/etc/hubkeeper/hub.yaml", "course", "system", fixing,
                        (CheckShown("homes", "Users' homes"), CheckShown("disk", "Free disk")),
                        tuple(findings), changes)


def test_text_groups_findings_by_check_and_shows_changes() -> None:
    oks = [Reported("homes", "ok", f"/home/u{n}", f"u{n}'s home: theirs.", None)
           for n in range(7)]
    problem = Reported("homes", "problem", "/home/ann", "ann's home has mode 0755.",
                       ShownFix("chmod 0700 /home/ann", "0755", "0700", True))
    shown = render(result([*oks, problem]))
    assert "Users' homes\n  ok       7 checked, each as it should be" in shown
    assert "  PROBLEM  ann's home has mode 0755." in shown
    assert "Free disk\n  -        nothing to check" in shown
    assert ("1 problem and 0 warnings found; `hubkeeper doctor --fix` repairs 1 of them "
            "safely") in shown

    change = Change("homes", "/home/ann", "chmod 0700 /home/ann", "0755", "0700", None)
    failed = Change("homes", "/home/bob", "chmod 0700 /home/bob", "0755", "0700", "gone")
    shown = render(result(oks[:2], (change, failed), fixing=True))
    assert "--fix made 2 changes; what remains is below:" in shown
    assert "  changed  chmod 0700 /home/ann: 0755 -> 0700" in shown
    assert "  FAILED   chmod 0700 /home/bob: gone" in shown
    assert "  ok       u0's home: theirs.\n  ok       u1's home: theirs." in shown
    assert shown.rstrip().endswith("nothing wrong")


def test_a_home_of_another_owner_is_reported_and_never_chowned(tmp_path: Path) -> None:
    ctx = context(tmp_path, "system")
    home = tmp_path / "ann"
    home.mkdir(mode=0o700)
    os.chmod(home, 0o700)
    owner = os.lstat(home).st_uid
    [finding] = check_home(ctx, "ann", str(home), owner + 4242, os.lstat(home).st_gid, ours=True)
    assert finding.status == "problem"
    assert "hubkeeper never changes the owner of a home" in finding.explanation
    assert "`chown -R ann:" in finding.explanation
    assert finding.fix is not None and not finding.fix.safe and finding.fix.run is None
    assert os.lstat(home).st_uid == owner


def test_quota_options_are_read_from_mountinfo(tmp_path: Path) -> None:
    from hubkeeper.doctor.disk import quota_options

    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
        "50 27 7:0 / /home rw,relatime - ext4 /dev/loop0 rw,usrquota\n"
        "51 27 0:50 / /srv rw shared:1 - xfs /dev/sdb rw,prjquota\n")
    assert quota_options("/", mountinfo) == set()
    assert quota_options("/home", mountinfo) == {"usrquota"}
    assert quota_options("/srv", mountinfo) == {"prjquota"}
    assert quota_options("/nowhere", mountinfo) == set()

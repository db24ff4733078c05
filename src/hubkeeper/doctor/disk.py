"""Free space on the filesystems of the state dir and of the homes, against data.min_free;
and whether user quotas keep one student from filling the homes' disk."""

from __future__ import annotations

import os
from pathlib import Path

from hubkeeper.config.types import format_size
from hubkeeper.doctor.findings import Context, Finding, Status

CHECK = "disk"
MOUNTINFO = Path("/proc/self/mountinfo")
QUOTA_OPTIONS = {"usrquota", "usrjquota", "quota", "prjquota", "uquota", "pquota"}


def quota_options(mount: str, mountinfo: Path = MOUNTINFO) -> set[str]:
    """The quota options of the filesystem mounted at `mount` (the last mount there wins)."""
    found: set[str] = set()
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[4] != mount or "-" not in fields:
            continue
        tail = fields[fields.index("-") + 1:]
        options = set(fields[5].split(",")) | set(",".join(tail[2:]).split(","))
        found = {option.split("=")[0] for option in options} & QUOTA_OPTIONS
    return found


def quota_finding(mount: str, what: str, users: int) -> Finding:
    subject = f"{mount} ({what})"
    options = quota_options(mount)
    if options:
        return Finding(CHECK, "ok", subject, (
            f"{mount} is mounted with {', '.join(sorted(options))}: the quotas you set per "
            "account (setquota) keep one student from filling it."))
    return Finding(CHECK, "warning", subject, (
        f"{mount} has no user quotas, so one student can fill the disk that holds every "
        f"home. hubkeeper's disk guard then refuses only the starts of users whose home "
        f"holds more than a fair share (the disk's size over the hub's {users} users) and "
        "lets the others start, but nobody can save a notebook on a full disk. To stop it "
        "for good, put the homes on a filesystem mounted with usrquota (or prjquota) and "
        "give each account a limit with setquota."))


def disk_status(free: int, min_free: int) -> Status:
    """Below data.min_free servers refuse to start: a problem; below twice that, soon."""
    if not min_free or free >= 2 * min_free:
        return "ok"
    return "problem" if free < min_free else "warning"


def mount_point(path: str) -> str:
    """The mount point of the filesystem holding the existing `path`."""
    path = os.path.realpath(path)
    device = os.stat(path).st_dev
    while path != "/":
        parent = os.path.dirname(path)
        if os.stat(parent).st_dev != device:
            break
        path = parent
    return path


def disk_checks(ctx: Context) -> list[Finding]:
    places: dict[str, list[str]] = {}  # mount point -> what lives there

    def add(path: str, what: str) -> None:
        existing, _ = ctx.free(path)
        holders = places.setdefault(mount_point(existing), [])
        if what not in holders:
            holders.append(what)

    add(str(ctx.paths.root), "the state directory")
    if ctx.mode == "system":
        for member in ctx.roster.members:
            account = ctx.host.accounts.get(member.account)
            if account is not None:
                add(account.home, "homes")
    else:
        add(str(ctx.paths.users), "homes")
    min_free = ctx.loaded.spec.data.min_free
    findings = []
    for mount, holders in sorted(places.items()):
        _, free = ctx.free(mount)
        status = disk_status(free, min_free)
        what = " and ".join(holders)
        subject = f"{mount} ({what})"
        have, need = format_size(free), format_size(min_free)
        if not min_free:
            text = (f"{have} is free on {mount} ({what}); data.min_free is 0, so servers "
                    "start whatever the free space.")
        elif status == "ok":
            text = (f"{have} is free on {mount} ({what}), at least twice data.min_free "
                    f"({need}).")
        else:
            if status == "problem":
                level = "less than"
                effect = ("servers of users whose home is there are refused at start"
                          if "homes" in holders else "the hub's database and logs may soon "
                          "fail to write")
            else:
                level = "less than twice"
                effect = ("a little more and servers of users whose home is there will be "
                          "refused at start" if "homes" in holders else "the hub's "
                          "database and logs are running out of room")
            text = (f"Only {have} is free on {mount} ({what}), {level} data.min_free "
                    f"({need}): {effect}. Free space there (`hubkeeper usage` lists the "
                    "largest homes), or lower data.min_free in hub.yaml.")
        findings.append(Finding(CHECK, status, subject, text))
        if ctx.mode == "system" and "homes" in holders:
            findings.append(quota_finding(mount, what, len(ctx.roster.members)))
    return findings

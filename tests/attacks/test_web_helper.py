"""Attacks on the web service's root helper (lifecycle/webhelper.py): a student with a shell
connecting to its socket, and the web service's own account (as if it were taken over)
sending every request outside the fixed set, malformed ones, and paths that try to leave
the student's home in the snapshot.

The helper runs here in the test's (root) process, as `hubkeeper up` runs it in its own;
the clients are real processes of real unprivileged accounts."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from hubkeeper.context.hub import Hub
from hubkeeper.host.snapshots import latest_name
from hubkeeper.lifecycle.webhelper import LOG_NAME, start_helper
from tests.attacks.homes_support import course, hk

pytestmark = [pytest.mark.component, pytest.mark.root]

# Sends each request of argv[2] (a JSON list) on its own connection to the socket argv[1];
# prints one JSON line per request: the answer's first line, or the error connecting.
CLIENT = """
import json, socket, sys
for request in json.loads(sys.argv[2]):
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(30)
    try:
        sock.connect(sys.argv[1])
        if isinstance(request, str) and request.startswith("LONG:"):  # "LONG:<n>": n x's
            request = "x" * int(request[5:])
        sock.sendall((request if isinstance(request, str) else json.dumps(request)).encode()
                     + b"\\n")
        data = b""
        while not data.endswith(b"\\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        print(json.dumps({"answer": data.decode(errors="replace").split("\\n")[0]}))
    except OSError as exc:
        print(json.dumps({"oserror": exc.errno}))
    finally:
        sock.close()
"""


def ask_as(account, socket_path: Path, requests: list) -> list[dict]:
    done = account.python(CLIENT, str(socket_path), json.dumps(requests))
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_only_the_web_account_reaches_the_helper_and_only_with_its_fixed_requests(
        workdir: Path, students) -> None:
    config, (alice, bob) = course(workdir, students, "wa", "wb")
    web = students.make("websvc")
    (alice.home / "notes").mkdir()
    (alice.home / "notes" / "week1.txt").write_text("alice's week 1\n")
    os.symlink("/etc", alice.home / "notes" / "etc-link")
    os.symlink("/etc/shadow", alice.home / "shadow-link")
    for path in [alice.home / "notes", *(alice.home / "notes").iterdir(),
                 alice.home / "shadow-link"]:
        os.lchown(path, alice.uid, alice.entry.pw_gid)
    taken = hk(config, "snapshot")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    snapshot = latest_name(workdir / "backup")
    assert snapshot

    hub = Hub.open(config)
    entry = pwd.getpwnam(web.name)
    helper = start_helper(lambda: Hub.open(config), hub.paths, entry.pw_uid, entry.pw_gid,
                          1024 * 1024)
    try:
        sock = hub.paths.helper_socket
        good = {"op": "list", "user": alice.name, "snapshot": snapshot, "path": "notes"}

        # a student: the folder keeps them out (EACCES) ...
        (refused,) = ask_as(bob, sock, [good])
        assert refused == {"oserror": 13}, refused
        # ... and with the folder opened wide (an operator's mistake), SO_PEERCRED does
        os.chmod(hub.paths.web, 0o755)
        os.chmod(sock, 0o666)
        (refused,) = ask_as(bob, sock, [good])
        assert f"uid {bob.uid} may not use the helper" in refused["answer"], refused
        os.chmod(hub.paths.web, 0o750)
        os.chmod(sock, 0o660)

        # the web account: its one good request works ...
        (listing,) = ask_as(web, sock, [good])
        names = {e["name"]: e["kind"] for e in json.loads(listing["answer"])["entries"]}
        assert names == {"week1.txt": "file", "etc-link": "link"}, names

        # ... and everything else is refused, with a reason
        bad = {
            "not json": "malformed request",
            json.dumps(["list"]): "a request is a JSON object",
            json.dumps({"op": "shell", "user": alice.name}): "unknown request 'shell'",
            json.dumps({"op": "list", "user": alice.name}): "list takes exactly",
            json.dumps({**good, "extra": 1}): "list takes exactly",
            json.dumps({**good, "user": "../root"}): "not a user name",
            json.dumps({**good, "user": "root"}): "'root' is reserved",
            json.dumps({**good, "user": web.name}): "is not an active user",
            json.dumps({**good, "snapshot": "../../etc"}): "not a snapshot id",
            json.dumps({**good, "snapshot": "20990101T000000"}): "no snapshot 20990101T000000",
            json.dumps({**good, "path": "../wb"}): "is not a path inside the home",
            json.dumps({**good, "path": "/etc"}): "is not a path inside the home",
            json.dumps({**good, "path": "notes/etc-link"}): "is a link or not a folder",
            json.dumps({**good, "op": "read", "path": "shadow-link"}): "is a link or not a file",
            json.dumps({**good, "op": "read", "path": "notes/etc-link/passwd"}):
                "is a link or not a folder",
            json.dumps({**good, "op": "restore", "path": "shadow-link", "replace": True}):
                "is a link or a special file",
            json.dumps({**good, "op": "restore", "path": "notes", "replace": "yes"}):
                "replace is true or false",
            f"LONG:{1100 * 1024}": "a line longer than",
            # the instructor's requests: only for an admin of the hub, whatever the web
            # service claims, and only the page's actions
            json.dumps({"op": "glance", "admin": alice.name}): "is not an admin of this hub",
            json.dumps({"op": "start", "admin": alice.name, "action": "snapshot",
                        "args": {}}): "is not an admin of this hub",
            json.dumps({"op": "start", "admin": "root", "action": "snapshot", "args": {}}):
                "not a user name",
            json.dumps({"op": "start", "admin": alice.name, "action": "snapshot"}):
                "start takes exactly",
            json.dumps({"op": "jobs", "admin": web.name}): "is not an admin of this hub",
        }
        answers = ask_as(web, sock, list(bad))
        for (request, reason), answer in zip(bad.items(), answers, strict=True):
            assert answer.get("answer", "").startswith('{"ok":false'), (request, answer)
            assert reason in answer["answer"], (request, answer)
        assert not list(alice.home.glob("*restored*")), "nothing was restored"
        assert not (hub.paths.web / "jobs").exists(), "no action was started"

        # a folder restored beside the current one: written by alice, its link copied as a
        # link (never followed into /etc)
        (restored,) = ask_as(web, sock, [{"op": "restore", "user": alice.name,
                                          "snapshot": snapshot, "path": "notes",
                                          "replace": False}])
        day = f"{snapshot[:4]}-{snapshot[4:6]}-{snapshot[6:8]}"
        beside = alice.home / f"notes (restored {day})"
        assert f'"written":"{beside.name}"' in restored["answer"], restored
        assert (beside / "week1.txt").read_text() == "alice's week 1\n"
        assert os.readlink(beside / "etc-link") == "/etc"
        assert {os.lstat(p).st_uid for p in [beside, *beside.iterdir()]} == {alice.uid}

        # a zip of a home larger than the room the state dir has (above data.min_free) is
        # refused before a byte is written: a student cannot fill root's disk with zips
        config.write_text(config.read_text() + "data:\n  min_free: 9000T\n")
        (refused,) = ask_as(web, sock, [{"op": "export", "user": alice.name}])
        assert "more than the hub has room to zip" in refused["answer"], refused
        assert not list(hub.paths.run.glob("export-*"))

        lines = [json.loads(line) for line in
                 (hub.paths.logs / LOG_NAME).read_text().splitlines()]
        assert len(lines) == 4 + len(bad)  # bob's first try never reached it
        assert lines[0]["peer_uid"] == bob.uid and lines[0]["ok"] is False
        assert [line["ok"] for line in lines].count(True) == 2
        assert all(line["time"] for line in lines)
    finally:
        helper.close()
    assert not hub.paths.helper_socket.exists()

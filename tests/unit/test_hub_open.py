"""Hub.open: the hub opened once, in a visible order, with who we are injected (`euid=`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubkeeper.base.errors import HubkeeperError, InvalidInput
from hubkeeper.context.hub import Hub

NOT_ROOT = 4242


def write(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "hub.yaml"
    config.write_text(text)
    return config


def test_auto_mode_is_system_as_root_and_personal_otherwise_without_being_root(
        tmp_path: Path) -> None:
    config = write(tmp_path, "hub: {name: lab}\nauth: {kind: pam}\nusers: {allowed: [ann]}\n")
    as_root = Hub.open(config, euid=0)
    assert (as_root.is_root, as_root.mode, as_root.auth_kind) == (True, "system", "pam")
    assert as_root.paths.root == Path("/var/lib/hubkeeper/lab")  # nothing is made there
    as_user = Hub.open(config, euid=NOT_ROOT)
    assert (as_user.is_root, as_user.euid) == (False, NOT_ROOT)
    assert as_user.paths.root == tmp_path / ".hubkeeper"
    with pytest.raises(InvalidInput) as raised:
        as_user.mode  # noqa: B018 -- asked for, then resolved
    (problem,) = raised.value.problems  # located at auth.kind
    assert problem.field == "auth.kind" and "logs in Linux accounts" in problem.message


def test_the_default_login_follows_the_mode(tmp_path: Path) -> None:
    config = write(tmp_path, "hub: {name: lab, mode: personal, state_dir: state}\n"
                   "users: {allowed: [ann]}\n")
    hub = Hub.open(config, euid=NOT_ROOT)
    assert (hub.mode, hub.auth_kind) == ("personal", "shared-password")
    assert hub.paths.root == tmp_path / "state"
    assert [member.name for member in hub.roster.members] == ["ann"]
    assert hub.roster is hub.roster and hub.mode == "personal"  # built once


def test_a_load_error_comes_before_a_mode_error(tmp_path: Path) -> None:
    # Both wrong: an unknown key (load) and system mode without root (mode).
    config = write(tmp_path, "hub: {name: lab, mode: system, colour: red}\n"
                   "auth: {kind: pam}\n")
    with pytest.raises(InvalidInput) as raised:
        Hub.open(config, euid=NOT_ROOT)
    assert "colour" in str(raised.value.problems)


def test_the_roster_comes_before_the_mode_when_both_are_asked(tmp_path: Path) -> None:
    config = write(tmp_path, "hub: {name: lab, mode: system}\nauth: {kind: pam}\n"
                   "users: {roster: {csv: missing.csv}}\n")
    hub = Hub.open(config, euid=NOT_ROOT)  # opening reads neither
    with pytest.raises(InvalidInput) as raised:
        hub.resolved()
    assert [problem.file for problem in raised.value.problems] == [str(tmp_path /
                                                                      "missing.csv")]


def test_the_derived_urls(tmp_path: Path) -> None:
    config = write(tmp_path, "hub: {name: lab, mode: personal, ip: 0.0.0.0, port: 8123, "
                   "api_port: 8124, base_url: /lab/}\nusers: {allow_all: true}\n")
    hub = Hub.open(config, euid=NOT_ROOT)
    assert hub.public_url == "http://127.0.0.1:8123/lab/"
    assert hub.hub_api_url == "http://127.0.0.1:8124/lab/"
    v6 = Hub.open(write(tmp_path, "hub: {name: lab, mode: personal, ip: '::1', "
                        "port: 8123}\nusers: {allow_all: true}\n"), euid=NOT_ROOT)
    assert v6.public_url == "http://[::1]:8123/"


def test_a_retired_hub_opens_and_refuses_when_asked(tmp_path: Path) -> None:
    config = write(tmp_path, "hub: {name: lab, mode: personal, state_dir: state}\n"
                   "users: {allowed: [ann]}\n")
    hub = Hub.open(config, euid=NOT_ROOT)
    hub.paths.root.mkdir()
    hub.paths.retired.write_text('{"state": "retired", "hub": "lab"}')
    assert Hub.open(config, euid=NOT_ROOT).name == "lab"  # opening does not refuse
    with pytest.raises(HubkeeperError, match="was retired"):
        hub.check_not_retired()

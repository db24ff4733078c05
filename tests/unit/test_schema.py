"""hub.yaml validation: every error names file:line:column, the field and what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubkeeper.config import load, parse
from hubkeeper.config.model import HubSpec
from hubkeeper.errors import InvalidInput
from hubkeeper.verbs.init import init

REPO = Path(__file__).resolve().parents[2]


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse(text, "hub.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_demo_example_loads() -> None:
    loaded = load(REPO / "examples" / "demo" / "hub.yaml")
    assert loaded.spec.hub.name == "demo"
    assert loaded.spec.hub.mode == "personal"
    assert loaded.spec.users.admins == ["instructor"]
    assert loaded.spec.users.allowed == ["student1", "student2", "student3"]


def test_starter_from_init_loads(tmp_path: Path) -> None:
    result = init(tmp_path / "Physics 101")
    spec = load(result.path).spec
    assert spec.hub.name == "physics-101"
    assert spec.auth.kind == "shared-password"


def test_empty_file_is_all_defaults_but_nobody_may_log_in() -> None:
    assert problems_of("") == [
        "hub.yaml:1:1: users: nobody could log in: list names under users.allowed or "
        "users.admins, give a users.roster, or set users.allow_all: true"
    ]


def test_defaults() -> None:
    spec = parse("users: {allowed: [ada]}")
    assert spec == HubSpec.model_validate({"users": {"allowed": ["ada"]}})
    assert (spec.hub.ip, spec.hub.port, spec.hub.base_url) == ("127.0.0.1", 8000, "/")
    assert spec.proxy.kind == "python"
    assert spec.backend == "local"


INVALID = [
    # (name, hub.yaml text, expected substring of the one problem, including file:line:col)
    ("misspelt top-level key", "hubb:\n  name: x\n",
     "hub.yaml:1:1: hubb: unknown key 'hubb'; did you mean 'hub'?"),
    ("misspelt nested key", "hub:\n  name: x\n  prot: 8000\nusers: {allowed: [a]}\n",
     "hub.yaml:3:3: hub.prot: unknown key 'prot'; did you mean 'port'? Valid keys here: "
     "api_port, base_url, ip, mode, name, port, state_dir"),
    ("port too large", "hub:\n  port: 99999\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: hub.port: input should be less than or equal to 65535; got 99999"),
    ("port not a number", "hub:\n  port: eighty\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: hub.port: input should be a valid integer"),
    ("ip is a host name", "hub:\n  ip: localhost\nusers: {allowed: [a]}\n",
     "hub.yaml:2:7: hub.ip: 'localhost' is not an IP address; use 127.0.0.1"),
    ("base_url without slashes", "hub:\n  base_url: course\nusers: {allowed: [a]}\n",
     "hub.yaml:2:13: hub.base_url: 'course' must start and end with '/'"),
    ("hub name upper case", "hub:\n  name: Physics\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: hub.name: 'Physics' is not valid; use lower-case letters, digits and '-'"),
    ("unknown auth kind", "auth:\n  kind: github\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: auth.kind: must be one of 'shared-password', 'pam' or 'dummy'; "
     "got 'github'"),
    ("unknown backend", "backend: kubernetes\nusers: {allowed: [a]}\n",
     "hub.yaml:1:10: backend: must be one of 'local'; got 'kubernetes'"),
    ("unknown mode", "hub:\n  mode: root\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: hub.mode: must be one of 'auto', 'system' or 'personal'; got 'root'"),
    ("user name with capital", "users:\n  allowed:\n    - ada\n    - Bob\n",
     "hub.yaml:4:7: users.allowed[1]: 'Bob' is not valid; use a lower-case Linux user name"),
    ("user name too long", "users:\n  allowed: [" + "a" * 33 + "]\n",
     "hub.yaml:2:13: users.allowed[0]: '" + "a" * 33 + "' is not valid"),
    ("user name with shell metacharacters", "users:\n  allowed: ['ada;rm -rf /']\n",
     "hub.yaml:2:13: users.allowed[0]: 'ada;rm -rf /' is not valid"),
    ("user name with leading dash", "users:\n  allowed: ['-ada']\n",
     "hub.yaml:2:13: users.allowed[0]: '-ada' is not valid"),
    ("duplicate user", "users:\n  allowed: [ada, bob, ada]\n",
     "hub.yaml:2:23: users.allowed[2]: 'ada' is listed twice (first at item 1)"),
    ("allowed is not a list", "users:\n  allowed: ada\n",
     "hub.yaml:2:12: users.allowed: must be a list"),
    ("section is not a mapping", "hub: 8000\nusers: {allowed: [a]}\n",
     "hub.yaml:1:6: hub: must be a mapping of keys; got 8000"),
    ("dummy auth on the network", "hub:\n  ip: 0.0.0.0\nauth:\n  kind: dummy\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:4:9: auth.kind: 'dummy' accepts any password, so it is only allowed when "
     "hub.ip is a loopback address"),
    ("password_file with pam", "auth:\n  kind: pam\n  password_file: pw\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:3:18: auth.password_file: only used with kind 'shared-password', not 'pam'"),
    ("two services on one port", "hub:\n  port: 8000\n  api_port: 8000\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:3:13: hub.api_port: port 8000 is already used by hub.port"),
    ("duplicate key", "hub:\n  port: 1\n  port: 2\n", "hub.yaml:3:3: not valid YAML"),
    ("broken YAML", "hub:\n  port: [8000\nusers: {}\n", "hub.yaml:3:"),
    ("top level is a list", "- hub\n- users\n",
     "hub.yaml:1:1: hub.yaml must be a mapping of sections"),
    ("unknown version", "version: 2\nusers: {allowed: [a]}\n",
     "hub.yaml:1:10: version: must be one of 1; got 2"),
    ("allow_all not a boolean", "users:\n  allow_all: maybe\n",
     "hub.yaml:2:14: users.allow_all: input should be a valid boolean"),
    ("secret in hub.yaml", "auth:\n  kind: shared-password\n  password: hunter22\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:3:3: auth.password: unknown key 'password'; did you mean 'password_file'?"),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_hub_yaml_is_reported_at_its_line(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_every_problem_is_reported_at_once() -> None:
    text = "hub:\n  prot: 1\n  ip: nowhere\nauth:\n  kind: ldap\nusers:\n  allowed: [Ada]\n"
    lines = [problem.split(":")[1] for problem in problems_of(text)]
    assert lines == ["2", "3", "5", "7"]


def test_missing_file_names_it_and_hints_at_init(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        load(tmp_path / "hub.yaml")
    assert str(caught.value.problems[0]) == f"{tmp_path / 'hub.yaml'}: no such file"
    assert "hubkeeper init" in (caught.value.hint or "")


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(InvalidInput) as caught:
        load(path)
    assert "not UTF-8" in str(caught.value.problems[0])

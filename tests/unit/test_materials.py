"""materials: in hub.yaml (located errors for what git must not be given), its rendering,
the pull's report, and which environment a running server's material goes to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hubkeeper.base.errors import InvalidInput
from hubkeeper.config import parse
from hubkeeper.config.rules.cluster import kubernetes_problems
from hubkeeper.host.materials import Pull, PullReport, parse_report
from hubkeeper.verbs.materials import server_environment
from tests.unit.test_cli import run
from tests.unit.test_render import rendered

BASE = """\
auth: {kind: pam}
users: {allowed: [ann], groups: {lab: [ann]}}
environments:
  py: {default: true}
  stats: {groups: [lab]}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse(text, "hub.yaml")
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize("repo", [
    "https://git.example.org/course/physics.git", "ssh://git@git.example.org/course.git",
    "git@github.com:course/physics.git", "file:///srv/course.git", "/srv/course.git"])
def test_repository_forms_git_fetches_are_accepted(repo: str) -> None:
    spec = parse(BASE + f"materials:\n  - {{repo: '{repo}', target: course}}\n")
    assert spec.materials[0].repo == repo
    assert spec.materials[0].branch is None and spec.materials[0].on_failure == "warn"
    assert spec.materials[0].timeout == 60


def test_bad_materials_are_located_with_what_is_valid() -> None:
    found = problems_of(BASE + """\
materials:
  - {repo: 'ext::sh -c touch% /tmp/x', target: course}
  - {repo: course.git, target: course}
  - {repo: 'http://git.example.org/c.git', target: c}
  - {repo: /srv/c.git, target: ../up}
  - {repo: /srv/c.git, target: a/b}
  - {repo: /srv/c.git, target: c, branch: --upload-pack=x}
  - {repo: /srv/c.git, target: c, branch: 'a..b'}
""")
    assert len(found) == 7
    assert found[0].startswith("hub.yaml:7:12: materials[0].repo: 'ext::sh -c touch% /tmp/x' "
                               "is not a git repository address; write one of https://")
    assert found[1].startswith("hub.yaml:8:12: materials[1].repo: 'course.git' is not a git "
                               "repository address hubkeeper pulls from")
    assert "absolute path on this machine" in found[1]
    assert found[2].startswith("hub.yaml:9:12: materials[2].repo: 'http://")
    assert found[3] == ("hub.yaml:10:32: materials[3].target: '../up' is not a folder name; "
                        "write one name such as course or week-3 (letters, digits and _ . -, "
                        "not starting with '.', no '/')")
    assert found[4].startswith("hub.yaml:11:32: materials[4].target: 'a/b' is not a folder")
    assert found[5].startswith("hub.yaml:12:43: materials[5].branch: '--upload-pack=x' is "
                               "not a branch name")
    assert found[6].startswith("hub.yaml:13:43: materials[6].branch: 'a..b' is not a branch")


def test_environments_named_must_exist_and_one_folder_gets_one_material() -> None:
    found = problems_of(BASE + """\
materials:
  - {repo: /srv/a.git, target: course, environments: [py, nope]}
  - {repo: /srv/b.git, target: course, environments: [stats]}
  - {repo: /srv/c.git, target: course}
""")
    assert found == [
        "hub.yaml:7:59: materials[0].environments[1]: there is no environment 'nope'; "
        "environments of this hub: py, stats",
        "hub.yaml:9:32: materials[2].target: ~/py/course already receives materials[0] "
        "(/srv/a.git); give this one another target",
    ]
    assert problems_of("users: {allowed: [ann]}\n"
                       "materials: [{repo: /srv/a.git, target: c, environments: [py]}]\n") == [
        "hub.yaml:2:58: materials[0].environments[0]: there is no environment 'py'; this hub "
        "has no environments, so leave environments out (the material goes into each home)"]


def test_rendered_for_the_spawner_with_time_for_the_pulls() -> None:
    text = BASE + ("materials:\n  - {repo: /srv/a.git, target: course, branch: main, "
                   "timeout: 2m, on_failure: fail}\n")
    c = rendered(text)
    assert c.HubkeeperSpawner.materials == [
        {"repo": "/srv/a.git", "branch": "main", "target": "course", "environments": [],
         "timeout": 120.0, "on_failure": "fail"}]
    plain = rendered(BASE)
    assert "materials" not in plain.HubkeeperSpawner
    assert c.Spawner.start_timeout - plain.Spawner.start_timeout == 120


def test_the_pull_report_and_its_failures() -> None:
    pull = Pull("/srv/a.git", None, "/home/ann/py/course", 60.0)
    ok = parse_report(pull, 0, b'{"status": "updated", "updated": ["w4.ipynb"], '
                      b'"kept": ["w1.ipynb"]}\n', b"$ git fetch\n")
    assert ok == PullReport("/home/ann/py/course", "updated", ("w4.ipynb",), ("w1.ipynb",),
                            output="$ git fetch\n")
    assert ok.describe() == "updated 1 files; kept the student's edit of w1.ipynb"
    crashed = parse_report(pull, 1, b"", b"Traceback ...\nImportError: no nbgitpuller\n")
    assert not crashed.ok and crashed.error == "ImportError: no nbgitpuller"
    late = parse_report(pull, -9, b"", b"", timed_out=True)
    assert late.describe() == ("failed: did not finish within its timeout of 60 s and was "
                               "stopped")
    assert parse_report(pull, 0, b'{"status": "unchanged"}', b"").describe() == "up to date"


def test_a_running_servers_environment_is_its_choice_or_its_groups_default() -> None:
    spec = parse(BASE)
    chosen = {"servers": {"": {"user_options": {"environment": "stats"}}}, "groups": []}
    assert server_environment(spec, chosen) == "stats"
    assert server_environment(spec, {"servers": {"": {"user_options": {}}}}) == "py"
    only_stats = parse(BASE.replace("py: {default: true}", "py: {default: true, groups: [x]}"))
    assert server_environment(only_stats, {"servers": {"": {}}, "groups": ["lab"]}) == "stats"
    assert server_environment(parse("users: {allowed: [ann]}\n"), {"servers": {"": {}}}) == ""


def test_bad_materials_stop_every_verb_and_change_nothing(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("hub: {mode: personal, state_dir: state}\nusers: {allowed: [a]}\n"
                      "materials:\n  - {repo: 'ext::sh -c id', target: ../home}\n")
    for verb in (("check",), ("up",), ("materials", "publish")):
        result = run("--config", str(config), *verb)
        assert result.returncode == 2, (verb, result.stderr)
        assert f"{config}:4:12: materials[0].repo: 'ext::sh -c id' is not a git" \
            in result.stderr
        assert f"{config}:4:37: materials[0].target: '../home' is not a folder name" \
            in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hub.yaml"]


def test_kubernetes_is_told_to_use_nbgitpuller_links() -> None:
    spec = parse(BASE + "materials: [{repo: /srv/a.git, target: course}]\n")
    assert [found for found in kubernetes_problems(spec) if found[0] == ("materials",)]


def test_the_docs_example_loads() -> None:
    page = (Path(__file__).parents[2] / "docs" / "materials.md").read_text()
    block = re.search(r"```yaml\n(materials:.*?)```", page, re.S)
    assert block is not None
    spec = parse("users: {allowed: [ada]}\nenvironments: {py: {}}\n" + block.group(1))
    assert [m.target for m in spec.materials] == ["course", "notes"]
    assert spec.materials[0].environments == ["py"] and spec.materials[1].branch is None

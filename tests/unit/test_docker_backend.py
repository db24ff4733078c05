"""backend: docker without an engine: hub.yaml rules, the rendered config, image identity and
the Dockerfile given the host's CA, container names. (The engine itself is exercised in
tests/component/test_docker_backend.py.)"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from hubkeeper.config import parse
from hubkeeper.config.environments import ImageBuild
from hubkeeper.host import images
from hubkeeper.hub.container import ContainerSpawner, wait_then_serve
from hubkeeper.hub.spawner_base import SpawnRefused
from tests.unit.test_render import rendered
from tests.unit.test_schema import problems_of

DOCKER = """
hub: {name: course}
auth: {kind: pam}
users: {allowed: [ann, bo], groups: {lab: [ann]}}
backend: docker
data:
  shared: [{path: /srv/data, link: data}]
  group_folders: [{path: /srv/lab, group: lab}]
environments:
  python:
    build: {context: images/python, trust_host_ca: true}
    starter_files: /home/jovyan
    default: true
  r:
    image: rocker/rstudio:4.4
    groups: [lab]
"""


def test_a_docker_hub_renders_the_container_spawner() -> None:
    c = rendered(DOCKER)
    assert c.JupyterHub.spawner_class == "hubkeeper.hub.container.ContainerSpawner"
    assert c.ContainerSpawner.shared_data == ["/srv/data"]
    assert c.ContainerSpawner.group_folders == [{"path": "/srv/lab", "group": "lab"}]
    envs = c.HubkeeperSpawner.environments
    assert envs["python"]["starter_files"] == "/home/jovyan"
    assert envs["python"]["path"] == "/var/lib/hubkeeper/course/envs/python"
    assert envs["r"]["groups"] == ["lab"] and "starter_files" not in envs["r"]
    assert c.HubkeeperSpawner.default_environment == "python"


@pytest.mark.parametrize("body, expected", [
    ("backend: docker\nusers: {allowed: [a]}\n",
     "hub.yaml:1:10: backend: docker starts servers from images: declare at least one "
     "environment with image: or build: under environments"),
    ("backend: docker\nusers: {allowed: [a]}\nenvironments:\n  py: {groups: []}\n",
     "hub.yaml:4:7: environments.py: needs image: (an image on this engine) or build: (a "
     "directory with a Dockerfile) on backend docker"),
    ("backend: docker\nusers: {allowed: [a]}\nenvironments:\n"
     "  py: {image: a:1, build: {context: x}}\n",
     "hub.yaml:4:27: environments.py.build: image and build exclude each other: keep one"),
    ("backend: docker\nusers: {allowed: [a]}\nenvironments:\n"
     "  py: {image: a:1, packages: [pandas]}\n",
     "hub.yaml:4:30: environments.py.packages: not used on backend docker: install them in "
     "the image (RUN pip install ... in its Dockerfile)"),
    ("backend: docker\nusers: {allowed: [a]}\nenvironments:\n"
     "  py: {image: a:1, r: {packages: [jsonlite]}}\n",
     "hub.yaml:4:23: environments.py.r: not used on backend docker: install R and IRkernel "
     "in the image"),
    ("users: {allowed: [a]}\nenvironments:\n  py: {image: 'a:1'}\n",
     "hub.yaml:3:15: environments.py.image: only used with backend: docker (servers in "
     "containers); remove it, or set backend: docker"),
    ("hub: {mode: personal}\nbackend: docker\nusers: {allowed: [a]}\nenvironments:\n"
     "  py: {image: 'a:1'}\n",
     "hub.yaml:2:10: backend: docker runs servers as the users' Linux accounts, which needs "
     "hub.mode system (root); use backend: local with hub.mode personal"),
    ("backend: docker\nusers: {allowed: [a]}\nenvironments:\n  py: {image: 'a b'}\n",
     "hub.yaml:4:15: environments.py.image: 'a b' is not an image reference; write it as "
     "docker does, e.g. jupyter/scipy-notebook:2024-05-27"),
    ("backend: docker\nusers: {allowed: [a]}\nenvironments:\n"
     "  py: {build: {context: x, dockerfile: ../Dockerfile}}\n",
     "hub.yaml:4:40: environments.py.build.dockerfile: '../Dockerfile' must be a file name "
     "inside context"),
])
def test_bad_docker_settings_name_file_line_and_field(body: str, expected: str) -> None:
    problems = problems_of(body)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_the_content_hash_follows_files_modes_and_settings(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "start.sh").write_text("echo hi\n")
    build = ImageBuild(context=str(tmp_path))
    first = images.context_hash(tmp_path, build)
    assert images.context_hash(tmp_path, build) == first  # stable
    os.chmod(tmp_path / "sub" / "start.sh", 0o755)
    executable = images.context_hash(tmp_path, build)
    assert executable != first
    (tmp_path / "sub" / "start.sh").write_text("echo ho\n")
    edited = images.context_hash(tmp_path, build)
    assert edited not in (first, executable)
    assert images.context_hash(tmp_path, ImageBuild(context=str(tmp_path),
                                                    args={"V": "1"})) != edited
    assert images.context_hash(tmp_path, ImageBuild(context=str(tmp_path),
                                                    trust_host_ca=True)) != edited
    (tmp_path / "link").symlink_to("sub/start.sh")
    assert images.context_hash(tmp_path, build) != edited


def test_trusting_dockerfile_gives_every_stage_the_host_ca() -> None:
    text = ("# syntax comment\nFROM debian AS build\nRUN pip install x\n"
            "from scratch\nCOPY --from=build /x /x\n")
    out = images.trusting_dockerfile(text).splitlines()
    stages = [i for i, line in enumerate(out) if re.match(r"(?i)from ", line)]
    assert len(stages) == 2
    for index in stages:
        assert out[index + 1] == f"COPY {images.BUILD_CA_NAME} {images.BUILD_CA_PATH}"
        assert f"ARG PIP_CERT={images.BUILD_CA_PATH}" in out[index + 2:index + 9]
    assert out[-1] == "COPY --from=build /x /x"  # nothing else changes


def test_the_image_record_is_written_whole(tmp_path: Path) -> None:
    record = images.ImageRecord("hubkeeper/c-py:abc", "sha256:" + "1" * 64, "abc",
                                "2026-11-23T00:00:00+00:00", ("sha256:" + "0" * 64,))
    record.write(tmp_path)
    assert images.ImageRecord.read(tmp_path) == record
    assert oct((tmp_path / images.RECORD).stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == [images.RECORD]  # no temporary left
    assert images.ImageRecord.read(tmp_path / "missing") is None


def test_container_names_never_collide() -> None:
    """Users and hubs are escaped one to one, and '.' separates them: no two (hub, user)
    pairs share a container name (kubespawner's CVE-2020-15110 was such a collision)."""
    users = ["ann", "a-nn", "a_nn", "an-n", "ann-2d", "ann-5f", "a--nn", "_ann", "ann_"]
    hubs = ["course", "course-2", "course-2d", "c"]
    names = set()
    for hub in hubs:
        spawner_template = f"hubkeeper.{hub}.{{username}}"
        for user in users:
            name = spawner_template.format(username=ContainerSpawner._escape(user))
            assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name), name
            names.add(name)
    assert len(names) == len(users) * len(hubs)


def test_only_the_environment_may_be_chosen_by_the_user() -> None:
    c = rendered(DOCKER)
    spawner = ContainerSpawner(config=c)
    assert spawner.allowed_images == {}
    assert spawner.name_template == "hubkeeper.course.{username}"
    assert spawner.remove and spawner.network_name == "host"
    spawner.user_options = {"environment": "python", "image": "evil:latest"}
    spawner.user = type("User", (), {"name": "ann"})()
    with pytest.raises(SpawnRefused, match="refused user_options") as refused:
        spawner.refuse_user_image()
    assert "only the environment can be chosen" in refused.value.jupyterhub_message
    assert refused.value.status_code == 403
    spawner.user_options = {"environment": "python"}
    spawner.refuse_user_image()  # no error


def test_a_docker_hub_without_an_engine_is_refused_by_check(tmp_path: Path, monkeypatch
                                                            ) -> None:
    from hubkeeper.config.loader import LoadedSpec
    from hubkeeper.host.preflight import engine_problems

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    loaded = LoadedSpec(parse(DOCKER), tmp_path / "hub.yaml")
    (problem,) = engine_problems(loaded)
    assert "backend" in str(problem) and f"unix://{tmp_path}/no.sock" in str(problem)


@pytest.mark.parametrize("example", ["plasma", "growth"])
def test_the_seed_set_ups_are_expressed_in_hub_yaml(example: str, tmp_path: Path) -> None:
    """Seeds 001 (Plasma) and 003 (GROWTH) as examples/: they load, every file they name
    exists, and they render containers with the seeds' mounts, seeding and hooks."""
    import dataclasses

    from hubkeeper.config import load
    from hubkeeper.config.rules.roster import environment_group_problems
    from hubkeeper.host.preflight import (
        environment_file_problems,
        hook_problems,
    )
    from hubkeeper.render.jupyterhub import render
    from hubkeeper.roster import build_roster
    from hubkeeper.state.statedir import StatePaths
    from tests.unit.test_render import runtime

    path = Path(__file__).resolve().parents[2] / "examples" / example / "hub.yaml"
    loaded = load(path)
    assert loaded.spec.backend == "docker"
    assert environment_group_problems(loaded, build_roster(loaded).groups) == []
    assert environment_file_problems(loaded) == []
    assert hook_problems(loaded, "system", StatePaths(tmp_path)) == []
    c = render(loaded.spec, dataclasses.replace(
        runtime(DOCKER), roster=build_roster(loaded), config_dir=path.parent))
    assert c.JupyterHub.spawner_class.endswith("ContainerSpawner")
    if example == "plasma":
        assert c.ContainerSpawner.shared_data == ["/srv/data"]
        assert {env["starter_files"] for env in c.HubkeeperSpawner.environments.values()} \
            == {"/home/jovyan"}
    else:
        assert [hook["script"] for hook in c.HubkeeperSpawner.hooks_as_root] == [
            str(path.parent / "start" / "as-root.sh")]
        assert c.HubkeeperSpawner.group_limits["tas"]["memory"] == 8 * 1024**3


def test_a_state_dir_others_cannot_traverse_is_refused_with_venv_environments() -> None:
    """Found by the benchmark: under a 0700 parent every start failed with a bare 500.
    (Not in pytest's tmp_path: /tmp/pytest-of-root itself is 0700.)"""
    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="hktest-", dir="/var/tmp"))
    try:
        _traversal(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _traversal(tmp_path: Path) -> None:
    from hubkeeper.config.loader import LoadedSpec
    from hubkeeper.host.preflight import traversal_problems
    from hubkeeper.state.statedir import StatePaths

    parent = tmp_path / "private"
    (parent / "state").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(parent, 0o700)
    text = "auth: {kind: pam}\nusers: {allowed: [ann]}\nenvironments:\n  py: {}\n"
    loaded = LoadedSpec(parse(text), tmp_path / "hub.yaml")
    paths = StatePaths(parent / "state")
    (problem,) = traversal_problems(loaded, "system", paths)
    assert "hub.state_dir" in str(problem) and f"chmod o+x {parent}" in str(problem)
    assert traversal_problems(loaded, "personal", paths) == []  # servers run as the hub
    os.chmod(parent, 0o711)
    assert traversal_problems(loaded, "system", paths) == []


@pytest.mark.parametrize("first_line, through_hubkeeper", [
    ("#!{python}", True),
    ("#!/usr/bin/env python3", True),
    ("#!/bin/sh", False),
])
def test_the_container_starts_a_python_server_through_hubkeeper_s_script(
        tmp_path: Path, first_line: str, through_hubkeeper: bool) -> None:
    """The script PID 1's child runs, on the host's /bin/sh: it waits for the go-file, enters
    the folder, and starts the image's server command through singleuser.py with the python
    that command names, or the command itself when it is not a Python script."""
    import subprocess
    import sys

    bin_dir, folder = tmp_path / "bin", tmp_path / "folder"
    bin_dir.mkdir()
    folder.mkdir()
    server = bin_dir / "jupyterhub-singleuser"
    body = ("import os, sys\nprint('stock', *sys.argv[1:], os.getcwd())\n"
            if through_hubkeeper else 'echo stock "$@" "$PWD"\n')
    server.write_text(first_line.format(python=sys.executable) + "\n" + body)
    server.chmod(0o755)
    script = tmp_path / "server" / "singleuser.py"
    script.parent.mkdir()
    script.write_text("import os, sys\nprint('hubkeeper', *sys.argv, os.getcwd())\n")
    go = tmp_path / "go"
    shell = wait_then_serve(str(go), str(script))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "HUBKEEPER_FOLDER": str(folder)}
    argv = ["/bin/sh", "-c", shell, "hubkeeper-start", "jupyterhub-singleuser", "--port=9"]
    waiting = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    with pytest.raises(subprocess.TimeoutExpired):
        waiting.wait(0.3)  # no go-file yet: the server has not started
    go.touch()
    out, _ = waiting.communicate(timeout=10)
    if through_hubkeeper:
        assert out.split() == ["hubkeeper", str(script), "--port=9", str(folder)]
    else:
        assert out.split() == ["stock", "--port=9", str(folder)]
    script.unlink()  # not mounted (or unreadable): the image's command as it is
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["stock", "--port=9", str(folder)]

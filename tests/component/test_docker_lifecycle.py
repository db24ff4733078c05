"""backend docker through a hub's life: apply builds the image, a killed hub's container is
taken over by the next hub with nothing lost, doctor reports containers of a stopped hub,
snapshot and retire work unchanged and retire also removes the images. Real dockerd, real
accounts, real hubs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.conftest import require_root
from tests.support.docker import docker, notebook_context, require_engine
from tests.support.hubproc import hk, ok, write_config
from tests.support.simuser import SimUser

pytestmark = [pytest.mark.component, pytest.mark.root]

HUB = f"{P}-dlife"
USER = f"{P}dl1"
PASSWORD = "Correct-Horse-7"
CACHE_TAG = "hubkeeper-test-cache:notebook"


def containers() -> list[str]:
    listed = docker("ps", "-aq", "--no-trunc", "--filter", f"label=hubkeeper.hub={HUB}")
    return listed.stdout.decode().split()


@pytest.fixture
def engine(clean_accounts):
    require_root()
    require_engine()

    def remove() -> None:
        for container in containers():
            docker("rm", "-f", container, check=False)
        tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"hubkeeper/{HUB}-*",
                      check=False).stdout.split()
        for tag in tags:  # by tag: the image may have other names (CACHE_TAG)
            docker("rmi", "--no-prune", tag.decode(), check=False)
        subprocess.run(["rm", "-rf", f"/home/{USER}"], check=False)

    remove()
    yield
    remove()


async def _write_and_read(url: str, password: str, write: bool) -> tuple[str, str]:
    """Log in, start the server unless it runs, optionally write work.txt; return the file's
    content as the kernel reads it and the kernel's parent pid (the server, inside)."""
    async with SimUser(url, USER, password) as user:
        await user.login()
        if not (await user.model()).get("servers", {}).get(""):
            await user.start_server()
        await user.open_server()
        if write:
            await user.run_code("open('work.txt', 'w').write('week 1 notes\\n')")
        content = await user.run_code("open('work.txt').read()")
        return content, await user.run_code("__import__('os').getppid()")


def test_a_docker_hub_survives_a_kill_and_retires_cleanly(workdir: Path, engine, hubs) -> None:
    notebook_context(workdir / "image")
    config = write_config(workdir, name=HUB, mode="system", auth="pam", admins=(),
                          allowed=(USER,), extra=(
        "backend: docker\n"
        "environments:\n  py: {build: {context: image, trust_host_ca: true}}\n"
        "archive: {dir: archives}\n"
        "snapshots: {targets: [snaps]}\n"))

    applied = ok(hk(config, "apply"))  # accounts and the image, one command
    # system mode logs in Linux accounts (shared-password is refused there)
    subprocess.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n", text=True, check=True)
    record = json.loads((workdir / "state" / "envs" / "py" / "image.json").read_text())
    assert record["tag"].startswith(f"hubkeeper/{HUB}-py:")
    # Another name for the same image keeps its layers (the engine's build cache for the
    # other docker tests) when retire removes the hub's tag.
    docker("tag", record["id"], CACHE_TAG)
    assert "build-environment py" in applied.stdout

    hub = hubs.start(config)
    content, _ = asyncio.run(_write_and_read(hub.url, PASSWORD, write=True))
    assert content == "'week 1 notes\\n'"
    (first,) = containers()

    # The hub killed (kill -9; `up` sees it die and exits): it cannot stop the container,
    # which lives on with the user's server.
    os.kill(hub.hub_pid(), signal.SIGKILL)
    hub.proc.wait(timeout=30)
    assert containers() == [first]
    assert docker("inspect", "-f", "{{.State.Running}}", first).stdout.strip() == b"true"
    doctor = hk(config, "doctor", "--json")
    left = [f for f in json.loads(doctor.stdout)["findings"]
            if f["check"] == "containers" and f["subject"] == "containers"]
    assert [f["status"] for f in left] == ["warning"], doctor.stdout
    assert f"hubkeeper.{HUB}.{USER}" in left[0]["explanation"]

    # The next hub takes the running server over: same container, same file.
    hub = hubs.start(config)
    content, _ = asyncio.run(_write_and_read(hub.url, PASSWORD, write=False))
    assert content == "'week 1 notes\\n'"
    assert containers() == [first]
    hub.stop()
    assert containers() == []  # a clean stop removes it; the file is on the host
    assert (Path(f"/home/{USER}") / "py" / "work.txt").read_text() == "week 1 notes\n"

    ok(hk(config, "snapshot"))
    saved = [path for path in (workdir / "snaps").rglob("work.txt") if USER in str(path)]
    assert [path.read_text() for path in saved] == ["week 1 notes\n"]

    ok(hk(config, "archive"))
    retired = json.loads(ok(hk(config, "retire", "--yes", "--json")).stdout)
    assert retired["status"] == "retired"
    (environment,) = [i for i in retired["items"] if i["kind"] == "environment"]
    assert environment["name"] == "py" and not environment.get("refused"), environment
    assert docker("image", "inspect", record["tag"], check=False).returncode != 0
    assert not docker("images", "-q", f"hubkeeper/{HUB}-py").stdout.strip()
    # Only the hub's tag went: the image itself, also named otherwise, is left alone.
    assert docker("image", "inspect", "-f", "{{.Id}}", CACHE_TAG).stdout.decode().strip() \
        == record["id"]
    assert subprocess.run(["id", USER], capture_output=True).returncode != 0
    assert not os.path.lexists(f"/home/{USER}")


def test_a_failed_build_changes_nothing_servers_start(workdir: Path, engine) -> None:
    """A build that fails says why (the engine's last lines) and leaves image.json as it
    was: servers keep starting the image they had."""
    from tests.support.docker import base_image

    context = workdir / "image"
    context.mkdir()
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(f"FROM {base_image()}\nRUN echo broken step >&2; exit 3\n")
    config = write_config(workdir, name=HUB, mode="system", auth="pam", admins=(),
                          allowed=(USER,), extra=(
        "backend: docker\nenvironments:\n  py: {build: {context: image}}\n"))
    record = workdir / "state" / "envs" / "py" / "image.json"

    failed = hk(config, "env", "build")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "building the image of environment 'py' failed" in failed.stderr
    assert "broken step" in failed.stderr and "returned a non-zero code: 3" in failed.stderr
    assert not record.exists()

    dockerfile.write_text(f"FROM {base_image()}\nRUN echo v1 > /version\n")
    ok(hk(config, "env", "build"))
    good = json.loads(record.read_text())
    dockerfile.write_text(f"FROM {base_image()}\nRUN exit 4\n")
    assert hk(config, "env", "build").returncode == 1
    assert json.loads(record.read_text()) == good
    listed = json.loads(ok(hk(config, "env", "list", "--json")).stdout)
    (row,) = listed["environments"]
    assert row["current"].startswith(good["tag"]) and row["up_to_date"] is False

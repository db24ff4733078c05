"""backend: docker, as root with a real Docker engine, real hubs, real Linux accounts and PAM
logins: servers in containers as the host accounts, starter files, shared data and group
folders, the engine's memory limit, hooks by exec, forged starts, `env build` under a
running server, and what stop and shutdown leave behind. Nothing is mocked.

Images are built from tests/support/docker.notebook_context (the engine's layer cache makes
every build after the first take seconds); the ones tagged hubkeeper/<prefix>* are removed
at the end of the module, the base image and the build cache stay."""

from __future__ import annotations

import ast
import asyncio
import csv
import grp
import json
import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest

from hubkeeper.hub.container import SERVER_SCRIPT
from tests.conftest import TEST_ACCOUNT_PREFIX, require_root
from tests.support.docker import BASE_IMAGE, docker, notebook_context, require_engine
from tests.support.hubproc import HUBKEEPER, free_ports, journaled
from tests.support.simuser import SimUser

pytestmark = [pytest.mark.component, pytest.mark.root]

P = TEST_ACCOUNT_PREFIX
PASSWORD = "Correct-Horse-7"
MIB = 1024 * 1024
STARTER = ("RUN mkdir -p /opt/starter/sub && echo hello > /opt/starter/README.txt "
           "&& echo from-the-image > /opt/starter/sub/a.txt")


def version_line(version: str) -> str:
    return f"RUN echo {version} > /opt/hk-version"


# --- fixtures and helpers -----------------------------------------------------------------

def hub_containers(hub: str, user: str | None = None) -> list[str]:
    """Ids of the containers (running or not) a hub made, optionally of one user."""
    filters = ["--filter", f"label=hubkeeper.hub={hub}"]
    if user:
        filters += ["--filter", f"label=hubkeeper.user={user}"]
    return docker("ps", "-a", "-q", *filters).stdout.decode().split()


def inspect(container: str) -> dict:
    return json.loads(docker("inspect", container).stdout)[0]


@pytest.fixture(scope="module", autouse=True)
def engine_and_images():
    """Root and an engine (CI fails without them); the images this module built are removed
    at its end (not the base image, not the engine's build cache)."""
    require_root()
    require_engine()
    yield
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    ours = [tag for tag in listed if tag.startswith(f"hubkeeper/{P}")]
    if ours:
        # --no-prune: the untagged parents are the engine's build cache (the classic builder's
        # intermediate images), which the next run reuses.
        docker("rmi", "--no-prune", *ours, check=False)


@pytest.fixture
def containers():
    """Hub names whose containers are removed at teardown, whatever the test did (this
    fixture is set up before `hubs`, so it runs after the hubs were stopped)."""
    names: list[str] = []
    yield names.append
    for hub in names:
        left = hub_containers(hub)
        if left:
            docker("rm", "-f", *left, check=False)


def hk(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUBKEEPER, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=900)


def hub_yaml(directory: Path, name: str, body: str) -> Path:
    port, api_port, proxy_port = free_ports(3)
    config = directory / "hub.yaml"
    config.write_text(
        f"hub: {{name: {name}, ip: 127.0.0.1, port: {port}, api_port: {api_port}, "
        "state_dir: state}\n"
        f"proxy: {{api_port: {proxy_port}}}\n"
        "auth: {kind: pam}\n"
        "backend: docker\n" + body)
    return config


def script(path: Path, body: str) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)


def record(config: Path, env: str = "py") -> dict:
    return json.loads((config.parent / "state" / "envs" / env / "image.json").read_text())


def answer(text: str) -> dict:
    """A probe's result: the repr of a JSON string."""
    return json.loads(ast.literal_eval(text))


async def start(user: SimUser, body: dict) -> tuple[int, str]:
    url = user.base + f"hub/api/users/{user.name}/server"
    async with user.session.post(url, json=body, headers=user._hub_headers()) as response:
        return response.status, await response.text()


async def session(url: str, name: str, password: str, code: list[str],
                  stop: bool = False) -> list[str]:
    """Log in, start the server, run each piece of code in its own kernel."""
    async with SimUser(url, name, password) as user:
        await user.login()
        await user.start_server()
        await user.open_server()
        results = [await user.run_code(each) for each in code]
        if stop:
            await user.stop_server()
        return results


async def in_running(url: str, name: str, password: str, code: str) -> str:
    async with SimUser(url, name, password) as user:
        await user.login()
        await user.open_server()
        return await user.run_code(code)


async def stop(url: str, name: str, password: str) -> None:
    async with SimUser(url, name, password) as user:
        await user.login()
        await user.stop_server()


# --- 1-5: users, files, mounts, limits, hooks ---------------------------------------------

IDENTITY = """\
import json, os, subprocess
home = os.path.expanduser('~')
open(os.path.join(home, 'py', 'from-kernel.txt'), 'w').write('written in the container\\n')
run = lambda *argv: subprocess.check_output(argv, text=True).strip()
json.dumps({'uid': run('id', '-u'), 'gid': run('id', '-g'), 'name': run('id', '-un'),
            'groups': run('id', '-G').split(), 'home': home, 'cwd': os.getcwd(),
            'server_cwd': os.readlink(f'/proc/{os.getppid()}/cwd'),
            'server': open(f'/proc/{os.getppid()}/cmdline').read().split('\\0'),
            'pid1': open('/proc/1/comm').read().strip(),
            'vars': [os.environ.get('NLTK_DATA'), os.environ.get('HK_LEVEL')],
            'marker': open('/etc/hk-marker').read()})
"""

MOUNTS = """\
import errno, json, os
def attempt(path):
    try:
        with open(path, 'w') as handle:
            handle.write('x')
        return 'written'
    except OSError as exc:
        return errno.errorcode[exc.errno]
json.dumps({{'read': open({data!r} + '/dataset.csv').read(),
            'data': attempt({data!r} + '/mine.txt'),
            'project': attempt({project!r} + '/notes.txt'),
            'via_link': attempt(os.path.expanduser('~/project/via-link.txt')),
            'project_seen': os.path.exists({project!r})}})
"""

LIMIT = """\
import os
v2 = '/sys/fs/cgroup/memory.max'
open(v2 if os.path.exists(v2) else '/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip()
"""
# A child of the kernel that wants 1 GiB. The OOM killer takes the largest process of the
# container: the child, as long as the limit leaves it room to outgrow the server (whose
# JupyterLab holds ~130 MB): hence 512M for this check (at 256M the server is the largest).
GREEDY_CHILD = ("__import__('subprocess').run([__import__('sys').executable, '-c', "
                "\"b = b'x' * (1 << 30)\"]).returncode")


def test_two_users_in_containers_with_their_files_mounts_limits_and_hooks(
        workdir: Path, clean_accounts, containers, hubs) -> None:
    hub_name = f"{P}dk1"
    containers(hub_name)
    ann, bo, lab = f"{P}01", f"{P}02", f"{P}lab"
    data, project = workdir / "srv" / "data", workdir / "srv" / "projects" / "lab"
    notebook_context(workdir / "image", STARTER, version_line("v1"))
    (workdir / "class.csv").write_text(f"username,groups\n{ann},{lab}\n{bo},\n")
    script(workdir / "hooks" / "root.sh",
           'echo "as_root uid=$(id -u) user=$HUBKEEPER_USER env=$HUBKEEPER_ENVIRONMENT" '
           "> /etc/hk-marker\n"
           f"if touch {data}/root-was-here 2>/dev/null; then echo data-writable; "
           "else echo data-read-only; fi >> /etc/hk-marker\n"
           "echo root-hook-says-hello\n")
    script(workdir / "hooks" / "user.sh",
           '{ echo "as_user uid=$(id -u) gid=$(id -g) pwd=$(pwd)"; cat /etc/hk-marker; } '
           '> "$HOME/hook-ran"\necho user-hook-says-hello >&2\n')
    config = hub_yaml(workdir, hub_name, f"""\
users:
  roster: {{csv: class.csv}}
  groups: {{{lab}: []}}
limits: {{memory: 256M, groups: {{{lab}: {{memory: 512M}}}}}}
data:
  min_free: 1M
  shared: [{{path: {data}, link: data}}]
  group_folders: [{{path: {project}, group: {lab}, link: project}}]
hooks:
  as_root: [{{script: hooks/root.sh}}]
  as_user: [{{script: hooks/user.sh}}]
environments:
  py:
    build: {{context: image, trust_host_ca: true}}
    starter_files: /opt/starter
    env: {{HK_LEVEL: py}}
    server_config: [extra/server.py]
servers:
  env: {{NLTK_DATA: /srv/nltk_data, HK_LEVEL: hub}}
  groups: {{{lab}: {{env: {{HK_LEVEL: lab}}}}}}
""")
    # server_config: run by the image's server from its mount (the variable reaches kernels)
    (workdir / "extra").mkdir(mode=0o755)
    (workdir / "extra" / "server.py").write_text(
        "import os\nos.environ['HK_SNIPPET'] = 'ran'\n"
        "c.ContentsManager.hide_globs = ['*.hidden']\n")
    os.chmod(workdir / "extra" / "server.py", 0o644)
    assert not Path("/etc/hk-marker").exists()
    applied = hk(config, "apply")  # accounts, data folders, links, the image
    assert applied.returncode == 0, applied.stdout + applied.stderr
    image = record(config)
    assert image["tag"].startswith(f"hubkeeper/{hub_name}-py:")
    assert inspect_image_id(image["tag"]) == image["id"]
    (data / "dataset.csv").write_text("a,b\n1,2\n")
    passwords = {}
    for path in (workdir / "state" / "credentials").glob("*.csv"):
        with open(path) as handle:
            passwords.update({r["username"]: r["password"] for r in csv.DictReader(handle)})
    hub = hubs.start(config)

    # 1. Each user's server runs in a container as their host account, in ~/py.
    ann_runs = asyncio.run(session(hub.url, ann, passwords[ann],
                                   [IDENTITY, MOUNTS.format(data=str(data),
                                                            project=str(project)), LIMIT,
                                    GREEDY_CHILD, "1+1",
                                    "__import__('os').environ.get('HK_SNIPPET')"]))
    bo_runs = asyncio.run(session(hub.url, bo, passwords[bo],
                                  [IDENTITY, MOUNTS.format(data=str(data),
                                                           project=str(project)), LIMIT]))
    for name, runs in ((ann, ann_runs), (bo, bo_runs)):
        account = pwd.getpwnam(name)
        home = Path(account.pw_dir)
        seen = answer(runs[0])
        assert (seen["uid"], seen["gid"], seen["name"]) == (
            str(account.pw_uid), str(account.pw_gid), name), seen
        assert seen["pid1"] == "docker-init"  # in a container, not on the host
        # hub.yaml's variables in the container: the lab group's over py's over servers'
        assert seen["vars"] == ["/srv/nltk_data", "lab" if name == ann else "py"], seen
        assert seen["home"] == str(home)
        assert seen["cwd"] == seen["server_cwd"] == str(home / "py")
        # the image's python runs hubkeeper's server script (the cheaper start)
        assert "python" in seen["server"][0] and seen["server"][1] == SERVER_SCRIPT, seen
        made = home / "py" / "from-kernel.txt"
        assert made.read_text() == "written in the container\n"
        assert (made.stat().st_uid, made.stat().st_gid) == (account.pw_uid, account.pw_gid)
        # 2. The image's starter files, copied as the user.
        readme = home / "py" / "README.txt"
        assert readme.read_text() == "hello\n"
        assert readme.stat().st_uid == account.pw_uid
        assert (home / "py" / "sub" / "a.txt").read_text() == "from-the-image\n"
        # 5. as_root ran as the container's root (its /etc, not the host's; the shared
        # data is read-only even for it), then as_user as the account, in the home.
        marker = (f"as_root uid=0 user={name} env=py\ndata-read-only\n")
        assert seen["marker"] == marker
        ran = home / "hook-ran"
        assert ran.read_text() == (f"as_user uid={account.pw_uid} gid={account.pw_gid} "
                                   f"pwd={home}\n" + marker)
        assert (ran.stat().st_uid, ran.stat().st_gid) == (account.pw_uid, account.pw_gid)
        log = (workdir / "state" / "logs" / "hooks" / f"{name}.log").read_text()
        root_at = log.index(f"as_root hooks/root.sh in container hubkeeper.{hub_name}.{name}")
        user_at = log.index(f"as_user hooks/user.sh in container hubkeeper.{hub_name}.{name}")
        assert root_at < log.index("root-hook-says-hello") < user_at \
            < log.index("user-hook-says-hello"), log
        assert "hooks/root.sh succeeded" in log and "hooks/user.sh succeeded" in log
    assert not Path("/etc/hk-marker").exists()
    assert not (data / "root-was-here").exists()
    assert str(grp.getgrnam(lab).gr_gid) in answer(ann_runs[0])["groups"]
    assert str(grp.getgrnam(lab).gr_gid) not in answer(bo_runs[0])["groups"]

    # 3. Shared data: readable, read-only (the mount, not only the modes); the group folder
    # read-write for the member, also through ~/project; absent for the other user.
    assert answer(ann_runs[1]) == {"read": "a,b\n1,2\n", "data": "EROFS",
                                   "project": "written", "via_link": "written",
                                   "project_seen": True}
    notes = project / "notes.txt"
    assert (notes.stat().st_uid, notes.stat().st_gid) == (pwd.getpwnam(ann).pw_uid,
                                                          grp.getgrnam(lab).gr_gid)
    assert (project / "via-link.txt").exists()
    assert answer(bo_runs[1]) == {"read": "a,b\n1,2\n", "data": "EROFS", "project": "ENOENT",
                                  "via_link": "ENOENT", "project_seen": False}
    assert not (data / "mine.txt").exists()

    # 4. The engine's memory limit (the hub's 256M, the lab group's 512M): set on the
    # container without swap, seen in its cgroup; a child of the kernel that goes beyond
    # it is killed while the server keeps answering.
    for name, limit in ((ann, 512 * MIB), (bo, 256 * MIB)):
        [container] = hub_containers(hub_name, name)
        host = inspect(container)["HostConfig"]
        assert (host["Memory"], host["MemorySwap"]) == (limit, limit)
        assert host["Init"] is True and "no-new-privileges" in host["SecurityOpt"]
    assert ast.literal_eval(ann_runs[2]) == str(512 * MIB)
    assert ast.literal_eval(bo_runs[2]) == str(256 * MIB)
    assert ann_runs[3] == "-9"  # SIGKILL from the OOM killer
    assert ann_runs[4] == "2"
    assert ann_runs[5] == "'ran'"  # environments.py.server_config ran in the container
    assert asyncio.run(in_running(hub.url, ann, passwords[ann], "6*7")) == "42"

    # 2. Next start: an edited starter file is kept, a deleted one comes back.
    ann_home = Path(pwd.getpwnam(ann).pw_dir)
    asyncio.run(stop(hub.url, ann, passwords[ann]))
    assert hub_containers(hub_name, ann) == []
    assert (ann_home / "py" / "from-kernel.txt").exists()  # 8. the files stay
    (ann_home / "py" / "README.txt").write_text("my own notes\n")
    (ann_home / "py" / "sub" / "a.txt").unlink()
    assert asyncio.run(session(hub.url, ann, passwords[ann], ["1+1"])) == ["2"]
    assert (ann_home / "py" / "README.txt").read_text() == "my own notes\n"
    assert (ann_home / "py" / "sub" / "a.txt").read_text() == "from-the-image\n"
    assert len(hub_containers(hub_name)) == 2


def inspect_image_id(tag: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.decode().strip()


# --- 6-8: forged starts, a rebuild under a running server, stop and shutdown --------------

VERSION = "open('/opt/hk-version').read().strip()"


def test_forged_starts_rebuild_under_a_running_server_stop_and_shutdown(
        workdir: Path, accounts, containers, hubs) -> None:
    hub_name = f"{P}dk2"
    containers(hub_name)
    cy = accounts(f"{P}03", password=PASSWORD)
    dee = accounts(f"{P}04", password=PASSWORD)
    context = notebook_context(workdir / "image", version_line("v1"))
    config = hub_yaml(workdir, hub_name, f"""\
users: {{allowed: [{cy}, {dee}]}}
data: {{min_free: 1M}}
environments:
  py:
    build: {{context: image, trust_host_ca: true}}
""")
    built = hk(config, "env", "build")
    assert built.returncode == 0, built.stdout + built.stderr
    first = record(config)
    assert first["tag"].startswith(f"hubkeeper/{hub_name}-py:")
    assert inspect_image_id(first["tag"]) == first["id"]
    again = hk(config, "env", "build")
    assert again.returncode == 0, again.stderr
    assert record(config) == first  # same content: nothing built, nothing recorded
    hub = hubs.start(journaled(config, cy, dee))  # accounts made outside hubkeeper, adopted

    # 6. A start that names an image, or an environment that does not exist, is refused and
    # makes no container; a plain start afterwards works.
    async def forged() -> list[tuple[int, str]]:
        async with SimUser(hub.url, cy, PASSWORD) as user:
            await user.login()
            return [await start(user, {"image": BASE_IMAGE}),
                    await start(user, {"environment": "nope"})]

    (image_status, image_text), (env_status, env_text) = asyncio.run(forged())
    assert image_status == 403, image_text
    assert "only the environment can be chosen, not image" in image_text
    assert env_status == 404, env_text
    assert "there is no environment 'nope'" in env_text
    assert hub_containers(hub_name) == []

    assert asyncio.run(session(hub.url, cy, PASSWORD, [VERSION])) == ["'v1'"]
    [cy_container] = hub_containers(hub_name, cy)
    assert inspect(cy_container)["Image"] == first["id"]

    # 7. A changed build directory: `env build` records a new image; the running server
    # keeps its image, servers started after get the new one.
    notebook_context(context, version_line("v2"))
    rebuilt = hk(config, "env", "build")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    second = record(config)
    assert second["tag"] != first["tag"] and second["id"] != first["id"]
    assert second["previous"] == [first["id"]]
    assert inspect(cy_container)["Image"] == first["id"]
    assert asyncio.run(in_running(hub.url, cy, PASSWORD, VERSION)) == "'v1'"
    assert asyncio.run(session(hub.url, dee, PASSWORD, [VERSION])) == ["'v2'"]
    [dee_container] = hub_containers(hub_name, dee)
    assert inspect(dee_container)["Image"] == second["id"]

    # 7b. `env rollback`: new servers are given the first image again, pinned so that `env
    # build` leaves it; --to (an id's first 12 digits) goes forward again. `env prune` with
    # keep: 1 keeps the first image while cy's container runs from it.
    back = hk(config, "env", "rollback", "py")
    assert back.returncode == 0, back.stdout + back.stderr
    assert record(config)["id"] == first["id"] and record(config)["tag"] == first["tag"]
    assert "pinned by `env rollback`" in hk(config, "env", "build", "py").stderr
    assert record(config)["id"] == first["id"]
    forward = hk(config, "env", "rollback", "py", "--to", second["id"][7:19])
    assert forward.returncode == 0, forward.stdout + forward.stderr
    assert record(config)["id"] == second["id"]
    config.write_text(config.read_text().replace(
        "trust_host_ca: true}", "trust_host_ca: true}\n    keep: 1"))
    busy = json.loads(hk(config, "env", "prune", "py", "--json").stdout)
    assert busy["removed"] == [] and busy["in_use"] == [first["id"]]
    assert inspect_image_id(first["tag"]) == first["id"]

    # 8. Stopping removes the container and leaves the home; a restart gets the new image.
    cy_home = Path(pwd.getpwnam(cy).pw_dir)
    (cy_home / "py" / "work.ipynb").write_text("{}")
    asyncio.run(stop(hub.url, cy, PASSWORD))
    assert hub_containers(hub_name, cy) == []
    assert (cy_home / "py" / "work.ipynb").read_text() == "{}"
    assert asyncio.run(session(hub.url, cy, PASSWORD, [VERSION])) == ["'v2'"]
    [cy_container] = hub_containers(hub_name, cy)
    assert inspect(cy_container)["Image"] == second["id"]
    pruned = json.loads(hk(config, "env", "prune", "py", "--json").stdout)
    assert pruned["removed"] == [first["id"]], pruned
    assert docker("image", "inspect", first["id"], check=False).returncode != 0
    assert record(config)["history"] == [second["id"]]

    # dee's server dies (killed from the host): its container ends (the hub removes it when
    # it next polls, whenever that is). The hub's shutdown stops cy's server: no container
    # is left, the ended one neither.
    [dee_container] = hub_containers(hub_name, dee)
    kill_server(dee_container)
    waited = docker("wait", dee_container, check=False)
    assert waited.stdout.strip() == b"137" or b"No such container" in waited.stderr, waited
    hub.stop()
    assert hub_containers(hub_name) == []
    assert (cy_home / "py" / "work.ipynb").exists()


def kill_server(container: str) -> None:
    """SIGKILL to the server: the child of the container's docker-init (its host pid)."""
    init = inspect(container)["State"]["Pid"]
    children = Path(f"/proc/{init}/task/{init}/children").read_text().split()
    assert len(children) == 1, children
    os.kill(int(children[0]), signal.SIGKILL)


# --- 9: bad input -------------------------------------------------------------------------

BAD = [  # (case, hub.yaml after its hub: line, the error as printed)
    ("docker without environments", "backend: docker\nusers: {allowed: [a]}\n",
     "hub.yaml:2:10: backend: docker starts servers from images: declare at least one "
     "environment with image: or build: under environments"),
    ("neither image nor build", "backend: docker\nusers: {allowed: [a]}\nenvironments:\n"
     "  py: {starter_files: /opt/starter}\n",
     "hub.yaml:5:7: environments.py: needs image: (an image on this engine) or build:"),
    ("image and build", "backend: docker\nusers: {allowed: [a]}\nenvironments:\n"
     "  py: {image: x/y:1, build: {context: image}}\n",
     "hub.yaml:5:29: environments.py.build: image and build exclude each other: keep one"),
    ("packages on docker", "backend: docker\nusers: {allowed: [a]}\nenvironments:\n"
     "  py: {image: x/y:1, packages: [toolz]}\n",
     "hub.yaml:5:32: environments.py.packages: not used on backend docker: install them in "
     "the image"),
    ("image on local", "users: {allowed: [a]}\nenvironments:\n  py: {image: x/y:1}\n",
     "hub.yaml:4:15: environments.py.image: only used with backend: docker (servers in "
     "containers); remove it, or set backend: docker"),
]


@pytest.mark.parametrize(("case", "body", "expected"), BAD, ids=[case for case, _, _ in BAD])
def test_bad_docker_settings_are_refused_with_the_place_and_nothing_changes(
        workdir: Path, case: str, body: str, expected: str) -> None:
    (workdir / "image").mkdir()
    (workdir / "image" / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\n")
    config = workdir / "hub.yaml"
    config.write_text(f"hub: {{name: {P}dk9, state_dir: state}}\n" + body)
    for verb in ("check", "apply", "env build"):
        result = hk(config, *verb.split())
        assert result.returncode == 2, (case, verb, result.stdout, result.stderr)
        assert f"{workdir}/{expected}" in result.stderr, (case, verb, result.stderr)
        assert "nothing was changed" in result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["hub.yaml", "image"]
    assert docker("images", "-q", f"hubkeeper/{P}dk9-py").stdout == b""

"""examples/growth (seed 003, the GROWTH summer school) end to end, as root with a real Docker
engine, a real hub in system mode and the GitHub stand-in (tests/support/github_standin.py).

The example's hub.yaml is run with only what a test machine needs changed: the GitHub server
(the stand-in, through auth.github.url), the ports and the state dir, no public name (no
nginx, no Let's Encrypt), a locally built image in place of the registry's (no registry is
reachable: built from tests/support/docker.notebook_context, whose layers the engine already
has from the other docker tests), the shared data folder and the groups under the test
prefix (so that the suite's clean-up finds them). The hooks are the example's own scripts.
A participant on no list logs in, gets an account, and their server runs in a container as
their uid with the hooks' effects; a TA is an admin.
"""

from __future__ import annotations

import ast
import asyncio
import grp
import json
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from hubkeeper.config.environments import ImageBuild
from hubkeeper.host.images import build_context
from tests.component.test_auth_github_hub import CLIENT_ID, CLIENT_SECRET, save_github_secrets
from tests.conftest import TEST_ACCOUNT_PREFIX, require_root
from tests.support.docker import docker, notebook_context, require_engine
from tests.support.github_standin import GitHubStandIn, GitHubUser, OAuthApp
from tests.support.hubproc import HUBKEEPER, free_ports

pytestmark = [pytest.mark.component, pytest.mark.root]

P = TEST_ACCOUNT_PREFIX
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "growth"
ORG = "growth-astro-school"
STUDENT, TA = f"{P}-stud", f"{P}-ta"
IMAGE = f"hubkeeper/{P}-growth-notebook:deploy"

PROBE = """\
import json, os
home = os.path.expanduser('~')
json.dumps({'uid': os.getuid(), 'home': home, 'cwd': os.getcwd(),
            'pid1': open('/proc/1/comm').read().strip(), 'motd': open('/etc/motd').read(),
            'notebooks': sorted(os.listdir(os.path.join(home, 'growth-school'))),
            'groups': os.getgroups(),
            'memory': open('/sys/fs/cgroup/memory.max').read().strip()
                      if os.path.exists('/sys/fs/cgroup/memory.max') else None})
"""


def for_this_machine(example: Path, directory: Path, standin: GitHubStandIn,
                     ports: list[int], data: Path) -> Path:
    """The example's hub.yaml with the test machine's substitutions, nothing else."""
    yaml = YAML()
    doc = yaml.load(example / "hub.yaml")
    port, api_port, proxy_port = ports
    hub = doc["hub"]
    del hub["url"]  # no public name here: no nginx, no Let's Encrypt certificate
    del doc["tls"]
    hub.update({"name": f"{P}-growth", "ip": "127.0.0.1", "port": port, "api_port": api_port,
                "state_dir": "state"})
    doc["proxy"] = {"api_port": proxy_port}
    github = doc["auth"]["github"]
    github["url"] = standin.url
    github["callback_url"] = standin.app.callback_url
    renamed = {group: f"{P}{group}" for group in github["teams_to_groups"].values()}
    for team, group in list(github["teams_to_groups"].items()):
        github["teams_to_groups"][team] = renamed[group]
    doc["limits"]["groups"] = {renamed[g]: v for g, v in doc["limits"]["groups"].items()}
    doc["environments"]["growth"]["image"] = IMAGE
    doc["data"]["shared"][0]["path"] = str(data)
    shutil.copytree(example / "start", directory / "start")  # the example's own hooks
    config = directory / "hub.yaml"
    with open(config, "w") as out:
        yaml.dump(doc, out)
    save_github_secrets(directory / "state")
    return config


@pytest.fixture
def local_image():
    """The notebook image under the example's tag, removed at the end (the engine's build
    cache stays, as in the other docker tests)."""
    require_root()
    require_engine()
    directory = Path(f"/var/tmp/{P}-growth-image")
    shutil.rmtree(directory, ignore_errors=True)
    # Built the way `env build` builds the suite's other images (trust_host_ca: pip in the
    # build trusts the host's CA bundle), so the engine's cached layers serve it.
    with build_context(notebook_context(directory),
                       ImageBuild(context=str(directory), trust_host_ca=True)) as context:
        docker("build", "-q", "-t", IMAGE, str(context), timeout=1800)
    shutil.rmtree(directory, ignore_errors=True)
    yield IMAGE
    for container in docker("ps", "-a", "-q", "--filter",
                            f"label=hubkeeper.hub={P}-growth").stdout.decode().split():
        docker("rm", "-f", container, check=False)
    docker("rmi", "--no-prune", IMAGE, check=False)


async def visit(url: str, name: str, code: str | None) -> dict:
    async with GitHubUser(url, name, name) as user:
        await user.login()
        model = await user.model()
        if code:
            await user.start_server()
            await user.open_server()
            model["probe"] = json.loads(ast.literal_eval(await user.run_code(code)))
            await user.stop_server()
        return model


def test_the_growth_school_end_to_end(workdir: Path, local_image: str, hubs,
                                      clean_accounts) -> None:
    ports = free_ports(3)
    app = OAuthApp(CLIENT_ID, CLIENT_SECRET, f"http://127.0.0.1:{ports[0]}/hub/oauth_callback")
    data = workdir / "srv" / "growth-data"
    with GitHubStandIn(app) as standin:
        standin.register(STUDENT, 7001, teams=(f"{ORG}:participants",))
        standin.register(TA, 7002, teams=(f"{ORG}:TAs",))
        config = for_this_machine(EXAMPLE, workdir, standin, ports, data)
        done = subprocess.run([HUBKEEPER, "--config", str(config), "apply"],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr  # the image, the data folder
        (data / "notebooks").mkdir()
        (data / "notebooks" / "day1.ipynb").write_text("{}\n")
        hub = hubs.start(config)

        student = asyncio.run(visit(hub.url, STUDENT, PROBE))
        account = pwd.getpwnam(STUDENT)
        seen = student["probe"]
        assert seen["pid1"] == "docker-init"  # in the container
        assert (seen["uid"], seen["home"]) == (account.pw_uid, account.pw_dir)
        assert seen["motd"].startswith(f"GROWTH summer school 2020 -- container of {STUDENT}")
        assert seen["notebooks"] == ["day1.ipynb"]  # as-user.sh copied them, as the student
        copied = Path(account.pw_dir) / "growth-school" / "day1.ipynb"
        assert copied.stat().st_uid == account.pw_uid
        assert grp.getgrnam(f"{P}participants").gr_gid in seen["groups"]
        if seen["memory"] is not None:
            assert int(seen["memory"]) == 4 * 1024**3  # limits.memory, not the TAs' 8G
        assert student["admin"] is False
        host_motd = Path("/etc/motd")
        assert not host_motd.exists() or "GROWTH" not in host_motd.read_text()  # not the host's

        ta = asyncio.run(visit(hub.url, TA, None))
        assert ta["admin"] is True and ta["groups"] == [f"{P}tas"]
        assert grp.getgrnam(f"{P}tas").gr_gid not in seen["groups"]  # the student is no TA
        assert TA in grp.getgrnam(f"{P}tas").gr_mem

"""backend: slurm, as root with a real one-node Slurm cluster (munged, slurmctld, slurmd from
Debian, started by tests/support/slurm.py), real hubs, real Linux accounts and PAM logins:
servers are Slurm jobs of the users' own accounts, from the chosen environment, after the
hooks, with the shared data; memory, CPUs, time and partition per group reach sbatch; stop
cancels the job; a job Slurm refuses or leaves waiting gives the user Slurm's reason; bad
slurm settings are refused with file:line:field. Nothing is mocked."""

from __future__ import annotations

import ast
import asyncio
import csv
import json
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.conftest import require_root
from tests.support.hubproc import HUBKEEPER, free_ports, journaled
from tests.support.simuser import SimUser
from tests.support.slurm import SlurmCluster, start_cluster

pytestmark = [pytest.mark.component, pytest.mark.root]

PASSWORD = "Correct-Horse-7"


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    """One cluster for the module; its daemons are stopped by pid at the end, also when a
    test failed (its logs are printed then)."""
    require_root()
    started = start_cluster(P)
    try:
        yield started
    finally:
        started.stop()
        started.remove()


@pytest.fixture
def no_jobs_left(cluster: SlurmCluster) -> Iterator[None]:
    """Every test leaves the cluster empty, whatever it did."""
    yield
    try:
        cluster.wait_for("no job left", lambda: not cluster.jobs(), 30)
    finally:
        cluster.cancel_all()


def hk(config: Path, cluster: SlurmCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUBKEEPER, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=900, env={**os.environ, **cluster.env})


def hub_yaml(directory: Path, name: str, body: str) -> Path:
    port, api_port, proxy_port = free_ports(3)
    config = directory / "hub.yaml"
    config.write_text(
        f"hub: {{name: {name}, ip: 127.0.0.1, port: {port}, api_port: {api_port}, "
        "state_dir: state}\n"
        f"proxy: {{api_port: {proxy_port}}}\n"
        "auth: {kind: pam}\n"
        "backend: slurm\n" + body)
    return config


def script(path: Path, body: str) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)


def answer(text: str) -> dict:
    """A probe's result: the repr of a JSON string."""
    return json.loads(ast.literal_eval(text))


def job_fields(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    shown = cluster.run("scontrol", "-o", "show", "job", job_id).stdout
    return dict(item.split("=", 1) for item in shown.split() if "=" in item)


async def start(user: SimUser, body: dict | None = None) -> tuple[int, str]:
    url = user.base + f"hub/api/users/{user.name}/server"
    async with user.session.post(url, json=body or {},
                                 headers=user._hub_headers()) as response:
        return response.status, await response.text()


async def progress_events(user: SimUser, deadline: float = 120) -> list[dict]:
    """The spawn progress stream (what the spawn page shows), until it ends."""
    url = user.base + f"hub/api/users/{user.name}/server/progress"
    events = []
    async with user.session.get(url, headers=user._hub_headers(),
                                timeout=aiohttp.ClientTimeout(total=deadline)) as response:
        assert response.status == 200, await response.text()
        async for raw in response.content:
            line = raw.decode().strip()
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("failed") or events[-1].get("ready"):
                    break
    return events


async def session(url: str, name: str, password: str, code: list[str]) -> list[str]:
    """Log in, start the server, run each piece of code in its own kernel; it keeps running."""
    async with SimUser(url, name, password) as user:
        await user.login()
        await user.start_server(deadline=180)
        await user.open_server()
        return [await user.run_code(each) for each in code]


async def stop(url: str, name: str, password: str) -> None:
    async with SimUser(url, name, password) as user:
        await user.login()
        await user.stop_server()


# --- 1: two users' servers as their own Slurm jobs ----------------------------------------

PROBE = """\
import json, os, subprocess, sys
run = lambda *argv: subprocess.check_output(argv, text=True).strip()
try:
    import toolz; toolz_ok = True
except ImportError:
    toolz_ok = False
json.dumps({'uid': run('id', '-u'), 'name': run('id', '-un'), 'cwd': os.getcwd(),
            'server_cwd': os.readlink(f'/proc/{os.getppid()}/cwd'), 'prefix': sys.prefix,
            'toolz': toolz_ok, 'job': os.environ.get('SLURM_JOB_ID', ''),
            'vars': [os.environ.get('NLTK_DATA'), os.environ.get('HK_GROUP')],
            'data': open(os.path.expanduser('~/data/dataset.csv')).read(),
            'hook': open(os.path.expanduser('~/hook-ran')).read()})
"""


def test_two_users_run_as_slurm_jobs_of_their_accounts_and_stop_cancels(
        workdir: Path, clean_accounts, cluster: SlurmCluster, no_jobs_left, hubs) -> None:
    hub_name = f"{P}sl1"
    ann, bo, lab = f"{P}01", f"{P}02", f"{P}lab"
    data = workdir / "srv" / "data"
    out = workdir / "out"
    out.mkdir()
    os.chmod(out, 0o700)
    (workdir / "class.csv").write_text(f"username,groups\n{ann},{lab}\n{bo},\n")
    script(workdir / "hooks" / "root.sh",
           f'echo "$HUBKEEPER_USER uid=$(id -u) env=$HUBKEEPER_ENVIRONMENT" >> {out}/root\n')
    script(workdir / "hooks" / "user.sh", 'echo "as_user uid=$(id -u)" > "$HOME/hook-ran"\n')
    config = hub_yaml(workdir, hub_name, f"""\
users:
  roster: {{csv: class.csv}}
  groups: {{{lab}: []}}
limits: {{memory: 1G, cpu: 1, groups: {{{lab}: {{memory: 2G}}}}}}
data:
  min_free: 1M
  shared: [{{path: {data}, link: data}}]
hooks:
  as_root: [{{script: hooks/root.sh}}]
  as_user: [{{script: hooks/user.sh}}]
environments:
  py: {{packages: [toolz]}}
servers:
  env: {{NLTK_DATA: /srv/nltk_data}}
  groups: {{{lab}: {{env: {{HK_GROUP: lab}}}}}}
slurm:
  partition: {cluster.partition}
  time: 2h
  extra_options: [--comment=hubkeeper-test]
  groups: {{{lab}: {{time: 1d}}}}
""")
    applied = hk(config, cluster, "apply")  # accounts, data folder and links, the venv
    assert applied.returncode == 0, applied.stdout + applied.stderr
    (data / "dataset.csv").write_text("a,b\n1,2\n")
    passwords = {}
    for path in (workdir / "state" / "credentials").glob("*.csv"):
        with open(path) as handle:
            passwords.update({r["username"]: r["password"] for r in csv.DictReader(handle)})
    build = (workdir / "state" / "envs" / "py" / "current").resolve()
    hub = hubs.start(config, env=cluster.env)

    runs = {name: asyncio.run(session(hub.url, name, passwords[name], [PROBE, "1+1"]))
            for name in (ann, bo)}
    for name, (memory, time_limit) in ((ann, ("2G", "1-00:00:00")), (bo, ("1G", "02:00:00"))):
        account = pwd.getpwnam(name)
        home = Path(account.pw_dir)
        seen = answer(runs[name][0])
        assert runs[name][1] == "2"
        # The kernel runs as the account, in its Slurm job, from the environment, in ~/py.
        assert (seen["uid"], seen["name"]) == (str(account.pw_uid), name), seen
        [job] = cluster.jobs(name)
        assert seen["job"] == job["id"]
        assert (job["state"], job["partition"], job["node"]) == (
            "RUNNING", cluster.partition, cluster.node), job
        assert job["name"] == f"hubkeeper-{hub_name}-{name}"
        assert seen["prefix"] == str(build) and seen["toolz"]
        assert seen["cwd"] == seen["server_cwd"] == str(home / "py")
        # servers.env and the lab group's, through sbatch's --export list into the job
        assert seen["vars"] == ["/srv/nltk_data", "lab" if name == ann else None], seen
        # Hooks ran before the job (as root on the hub's machine, then as the user); the
        # shared data is reached through the link apply made (the same filesystem).
        assert seen["hook"] == f"as_user uid={account.pw_uid}\n"
        assert seen["data"] == "a,b\n1,2\n"
        # What sbatch was asked for: limits (the lab group's memory), slurm.time (the lab
        # group's), the extra option.
        fields = job_fields(cluster, job["id"])
        assert fields["UserId"].startswith(f"{name}(")
        assert fields["MinMemoryNode"] == memory, fields  # as scontrol writes --mem=2048M
        assert fields["NumCPUs"] == "1" and fields["TimeLimit"] == time_limit, fields
        assert fields["Comment"] == "hubkeeper-test"
        assert fields["WorkDir"] == str(home / "py")
    assert (out / "root").read_text().splitlines() == [f"{ann} uid=0 env=py",
                                                      f"{bo} uid=0 env=py"]

    # Stopping cancels the job; the files stay.
    [ann_job] = cluster.jobs(ann)
    (Path(pwd.getpwnam(ann).pw_dir) / "py" / "work.ipynb").write_text("{}")
    asyncio.run(stop(hub.url, ann, passwords[ann]))
    cluster.wait_for("ann's job gone", lambda: not cluster.jobs(ann), 30)
    assert cluster.job_state(ann_job["id"]) in ("CANCELLED", None)
    assert (Path(pwd.getpwnam(ann).pw_dir) / "py" / "work.ipynb").exists()
    assert [job["user"] for job in cluster.jobs()] == [bo]

    # The hub's shutdown stops bo's server: no job is left.
    hub.stop()
    cluster.wait_for("every job gone", lambda: not cluster.jobs(), 30)


# --- 2: what Slurm refuses, and what it leaves waiting ------------------------------------

def test_a_job_slurm_refuses_or_leaves_waiting_tells_the_user_why(
        workdir: Path, accounts, cluster: SlurmCluster, no_jobs_left, hubs) -> None:
    big, slow, fine = f"{P}03", f"{P}04", f"{P}05"
    for name in (big, slow, fine):
        accounts(name, home=True, password=PASSWORD)
    huge = (cluster.memory_mb + 1024) * 1024**2  # more than the node has
    config = hub_yaml(workdir, f"{P}sl2", f"""\
users:
  allowed: [{big}, {slow}, {fine}]
  groups: {{{P}big: [{big}], {P}slow: [{slow}]}}
data: {{min_free: 1M}}
limits: {{groups: {{{P}big: {{memory: {huge}}}}}}}
slurm:
  partition: {cluster.partition}
  queue_timeout: 20s
  groups: {{{P}slow: {{partition: {cluster.down_partition}}}}}
""")
    journaled(config, big, slow, fine)  # accounts made outside hubkeeper, adopted
    hub = hubs.start(config, env=cluster.env)

    async def refused() -> tuple[int, str]:
        async with SimUser(hub.url, big, PASSWORD) as user:
            await user.login()
            status, text = await start(user)
            if status in (201, 202):  # answered before the refusal: the progress says it
                events = await progress_events(user)
                return status, json.dumps(events)
            return status, text

    status, text = asyncio.run(refused())
    assert "Slurm refused its job: Requested node configuration is not available" in text, (
        status, text)
    assert cluster.jobs(big) == []

    async def waiting() -> tuple[list[dict], list[dict]]:
        async with SimUser(hub.url, slow, PASSWORD) as user:
            await user.login()
            status, text = await start(user)
            assert status == 202, (status, text)
            pending = cluster.wait_for("slow's job pending", lambda: cluster.jobs(slow), 30)
            return pending, await progress_events(user)

    pending, events = asyncio.run(waiting())
    assert [(job["state"], job["partition"], job["reason"]) for job in pending] == [
        ("PENDING", cluster.down_partition, "PartitionDown")]
    messages = [event.get("message", "") for event in events]
    assert any(f"waiting in the Slurm queue of partition {cluster.down_partition}, number 1 "
               "of 1 waiting there. Slurm's reason: PartitionDown: the partition is down"
               in message for message in messages), messages
    assert events[-1].get("failed"), events
    assert (f"its Slurm job waited 20s in the queue of partition {cluster.down_partition} "
            "(number 1 of 1 waiting) without starting. Slurm's reason: PartitionDown: the "
            "partition is down") in messages[-1], messages[-1]
    # The waiting job was cancelled; a user of an open partition still gets a server.
    cluster.wait_for("slow's job cancelled", lambda: not cluster.jobs(slow), 30)
    assert asyncio.run(session(hub.url, fine, PASSWORD, ["1+1"])) == ["2"]
    asyncio.run(stop(hub.url, fine, PASSWORD))
    cluster.wait_for("fine's job gone", lambda: not cluster.jobs(fine), 30)

    async def slow_model() -> dict:
        async with SimUser(hub.url, slow, PASSWORD) as user:
            await user.login()
            return await user.model()

    model = asyncio.run(slow_model())
    assert model["servers"] == {} and not model["pending"], model


# --- 3: bad input -------------------------------------------------------------------------

BAD = [  # (case, hub.yaml after the hub line, the error as printed, verbs)
    ("slurm section on backend local",
     "users: {allowed: [a]}\nslurm: {partition: debug}\n",
     "hub.yaml:3:8: slurm: only used with backend: slurm, not 'local'", "check apply"),
    ("memory as an extra option",
     "backend: slurm\nusers: {allowed: [a]}\nslurm: {extra_options: [--mem=4G]}\n",
     "hub.yaml:4:25: slurm.extra_options[0]: '--mem=4G': --mem is not an extra option, set "
     "limits.memory instead", "check apply"),
    ("not an option",
     "backend: slurm\nusers: {allowed: [a]}\nslurm: {extra_options: ['-A physics']}\n",
     "hub.yaml:4:25: slurm.extra_options[0]: '-A physics' is not an sbatch option",
     "check apply"),
    ("personal mode",
     "backend: slurm\nusers: {allowed: [a]}\n",
     "hub.yaml:2:10: backend: slurm runs servers as jobs of the users' Linux accounts, which "
     "needs hub.mode system", "check apply"),
    ("a time that is not one",
     "backend: slurm\nusers: {allowed: [a]}\nslurm: {time: 8 hours}\n",
     "hub.yaml:4:15: slurm.time: '8 hours' is not a duration", "check apply"),
    ("a group that is not in the roster",
     f"backend: slurm\nauth: {{kind: pam}}\nusers: {{allowed: [{P}06]}}\n"
     "slurm: {groups: {nolab: {gpus: 1}}}\n",
     "hub.yaml:5:25: slurm.groups.nolab: 'nolab' is not a roster group", "check"),
    ("a partition Slurm does not have",
     f"backend: slurm\nauth: {{kind: pam}}\nusers: {{allowed: [{P}06]}}\n"
     "slurm: {partition: nosuchpart}\n",
     "hub.yaml:5:20: slurm.partition: Slurm has no partition 'nosuchpart'", "check"),
]


@pytest.mark.parametrize(("case", "body", "expected", "verbs"), BAD,
                         ids=[case for case, _, _, _ in BAD])
def test_bad_slurm_settings_are_refused_with_the_place_and_nothing_changes(
        workdir: Path, accounts, cluster: SlurmCluster, case: str, body: str,
        expected: str, verbs: str) -> None:
    accounts(f"{P}06")
    mode = "personal" if case == "personal mode" else "system"
    config = workdir / "hub.yaml"
    config.write_text(f"hub: {{name: {P}sl9, state_dir: state, mode: {mode}}}\n" + body)
    for verb in verbs.split():
        result = hk(config, cluster, verb)
        assert result.returncode == 2, (case, verb, result.stdout, result.stderr)
        assert f"{workdir}/{expected}" in result.stderr, (case, verb, result.stderr)
        assert "nothing was changed" in result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["hub.yaml"]
    assert cluster.jobs() == []

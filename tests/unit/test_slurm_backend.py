"""backend: slurm without a cluster: hub.yaml rules, the rendered config, what a job asks
for, its batch script (golden), squeue's answers in words, the job-side port report. (The
cluster itself is exercised in tests/component/test_slurm_backend.py.)"""

from __future__ import annotations

import pytest

from hubkeeper.host.cgroups import Limits
from hubkeeper.hub.slurm import SlurmJobSpawner, slurm_words
from hubkeeper.proc.slurm_server import with_port
from hubkeeper.render.slurm_job import (
    JobRequest,
    QueueStatus,
    batch_script,
    describe_reason,
    job_request,
    parse_status,
    pending_message,
    slurm_time,
)
from tests.unit.test_nginx import golden
from tests.unit.test_render import rendered
from tests.unit.test_schema import problems_of

SLURM = """
hub: {name: course, api_port: 9081}
auth: {kind: pam}
users: {allowed: [ann, bo], groups: {lab: [ann], gpu: [ann]}}
backend: slurm
limits: {memory: 2G, cpu: 1, groups: {lab: {memory: 8G, cpu: 2.5}}}
hooks:
  as_root: [{script: /srv/hooks/root.sh, timeout: 40s}]
environments:
  python: {packages: [numpy]}
slurm:
  partition: debug
  time: 8h
  queue_timeout: 10m
  hub_ip: 10.0.0.5
  extra_options: [--account=physics, --qos=interactive]
  groups:
    gpu: {partition: gpu, gpus: 2, time: 1d}
    lab: {partition: long}
"""


def test_a_slurm_hub_renders_the_job_spawner_and_its_settings() -> None:
    c = rendered(SLURM)
    assert c.JupyterHub.spawner_class == "hubkeeper.hub.slurm.SlurmJobSpawner"
    assert c.SlurmJobSpawner.slurm_partition == "debug"
    assert c.SlurmJobSpawner.slurm_time == 8 * 3600
    assert c.SlurmJobSpawner.slurm_extra_options == ["--account=physics", "--qos=interactive"]
    assert c.SlurmJobSpawner.slurm_groups == {
        "gpu": {"partition": "gpu", "gpus": 2, "time": 86400.0},
        "lab": {"partition": "long", "gpus": 0, "time": 0.0}}
    assert c.SlurmJobSpawner.queue_timeout == 600
    # The nodes call the hub's API on hub_ip; the start may wait in the queue and run hooks.
    assert c.JupyterHub.hub_bind_url == "http://10.0.0.5:9081"
    assert c.Spawner.start_timeout == 60 + 40 + 600
    # Environments are the local backend's venvs; limits are the shared ones.
    assert c.HubkeeperSpawner.environments["python"]["path"] == (
        "/var/lib/hubkeeper/course/envs/python")
    assert c.HubkeeperSpawner.group_limits["lab"] == {"memory": 8 * 1024**3, "cpu": 2.5,
                                                  "pids": None}


def test_other_backends_render_no_slurm_settings() -> None:
    c = rendered("hub: {api_port: 9081}\nauth: {kind: pam}\nusers: {allowed: [ann]}\n")
    assert "SlurmJobSpawner" not in c
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:9081"
    assert c.Spawner.start_timeout == 60 + 900  # hubkeeper's line, not a Slurm queue


@pytest.mark.parametrize("body, expected", [
    ("users: {allowed: [a]}\nslurm: {partition: debug}\n",
     "hub.yaml:2:8: slurm: only used with backend: slurm, not 'local'; remove it, or set "
     "backend: slurm"),
    ("hub: {mode: personal}\nbackend: slurm\nusers: {allowed: [a]}\n",
     "hub.yaml:2:10: backend: slurm runs servers as jobs of the users' Linux accounts, which "
     "needs hub.mode system (root); use backend: local with hub.mode personal"),
    ("backend: slurm\nusers: {allowed: [a]}\nslurm: {extra_options: [--partition=x]}\n",
     "hub.yaml:3:25: slurm.extra_options[0]: '--partition=x': --partition is not an extra "
     "option, set slurm.partition instead"),
    ("backend: slurm\nusers: {allowed: [a]}\nslurm: {extra_options: [--cpus=4]}\n",
     "hub.yaml:3:25: slurm.extra_options[0]: '--cpus=4': --cpus-per-task is not an extra "
     "option, set limits.cpu instead"),
    ("backend: slurm\nusers: {allowed: [a]}\nslurm: {extra_options: [--output=/tmp/x]}\n",
     "hub.yaml:3:25: slurm.extra_options[0]: '--output=/tmp/x': --output is not an extra "
     "option, hubkeeper writes it itself"),
    ("backend: slurm\nusers: {allowed: [a]}\nslurm: {extra_options: ['--comment=a b']}\n",
     "hub.yaml:3:25: slurm.extra_options[0]: '--comment=a b' is not an sbatch option"),
    ("backend: slurm\nusers: {allowed: [a]}\nslurm: {partition: 'a b'}\n",
     "hub.yaml:3:20: slurm.partition: 'a b' is not valid; use a Slurm partition name"),
    ("backend: slurm\nusers: {allowed: [a]}\nslurm: {groups: {lab: {gpus: -1}}}\n",
     "hub.yaml:3:30: slurm.groups.lab.gpus: input should be greater than or equal to 0"),
    ("backend: slurm\nusers: {allowed: [a]}\nslurm: {queue_timeout: 2h}\n",
     "hub.yaml:3:24: slurm.queue_timeout: '2h' must be more than 0s and at most 1h"),
    ("backend: slurm\nusers: {allowed: [a]}\nenvironments:\n  py: {image: 'a:1'}\n",
     "hub.yaml:4:15: environments.py.image: only used with backend: docker"),
])
def test_bad_slurm_settings_name_file_line_and_field(body: str, expected: str) -> None:
    problems = problems_of(body)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_slurm_time_is_days_hours_minutes_seconds() -> None:
    assert slurm_time(8 * 3600) == "0-08:00:00"
    assert slurm_time(90) == "0-00:01:30"
    assert slurm_time(2 * 86400 + 3661) == "2-01:01:01"
    assert slurm_time(0.2) == "0-00:00:01"  # rounded up, never 0 (which means no limit)


def test_a_users_groups_replace_the_hubs_values() -> None:
    hub = {"partition": "debug", "time": 3600.0, "extra_options": ["--account=x"]}
    groups = {"gpu": {"partition": "gpu", "gpus": 2, "time": 7200.0},
              "lab": {"partition": "long", "gpus": 1, "time": 86400.0},
              "tiny": {"partition": "", "gpus": 0, "time": 0.0}}
    limits = Limits(2 * 1024**3 + 1, 1.5)
    # The first group in slurm.groups' order gives the partition; time and GPUs the largest.
    both = job_request(["lab", "gpu"], hub, groups, limits)
    assert both == JobRequest("gpu", 86400.0, 2 * 1024**3 + 1, 1.5, 2, ("--account=x",))
    assert both.sbatch_options() == [
        "--partition=gpu", "--time=1-00:00:00", "--mem=2049M", "--cpus-per-task=2",
        "--gres=gpu:2", "--account=x"]
    # A group that sets nothing leaves the hub's values; no limits, no --mem or --cpus.
    plain = job_request(["tiny"], hub, groups, Limits())
    assert plain.sbatch_options() == ["--partition=debug", "--time=0-01:00:00",
                                      "--account=x"]
    assert job_request([], {}, {}, Limits()).sbatch_options() == []


def test_the_batch_script_golden() -> None:
    request = JobRequest("gpu", 8 * 3600, 2 * 1024**3, 2, 1, ("--account=physics",))
    script = batch_script(
        job_name="hubkeeper-course-ann", output="/home/ann/.hubkeeper-slurm.log",
        folder="/home/ann/python", export=["PATH", "JUPYTERHUB_API_TOKEN", "HOME"],
        options=request.sbatch_options(),
        command=["/var/lib/hubkeeper/course/envs/python/abc/bin/python", "-P",
                 "/opt/hubkeeper/hub/slurm_server.py", "--SingleUserNotebookApp.x=it's"])
    golden("slurm-batch-script.sh", script)


def test_squeue_lines_and_reasons_in_words() -> None:
    assert parse_status("PENDING|n/a|down|PartitionDown\n") == QueueStatus(
        "PENDING", "n/a", "down", "PartitionDown")
    status = parse_status("RUNNING|node7|debug|None")
    assert status is not None and not status.pending and status.host == "node7"
    assert parse_status("") is None
    assert parse_status("slurm_load_jobs error: Invalid job id specified") is None
    reason = "ReqNodeNotAvail, UnavailableNodes:n1"
    assert parse_status(f"PENDING|n/a|p|{reason}") == QueueStatus("PENDING", "n/a", "p",
                                                                  reason)
    assert describe_reason("PartitionDown") == "PartitionDown: the partition is down"
    assert describe_reason(reason) == f"{reason}: the nodes it needs are not available"
    assert describe_reason("SomethingNew") == "SomethingNew"
    waiting = QueueStatus("PENDING", "n/a", "debug", "Priority")
    assert pending_message(waiting, 3, 7) == (
        "Your server is waiting in the Slurm queue of partition debug, number 3 of 7 "
        "waiting there. Slurm's reason: Priority: jobs with a higher priority are ahead of "
        "it.")
    assert "number" not in pending_message(waiting, None, None)


def test_sbatchs_error_without_its_prefixes() -> None:
    stderr = ("sbatch: error: Memory specification can not be satisfied\n"
              "sbatch: error: Batch job submission failed: Requested node configuration is "
              "not available\n")
    assert slurm_words(stderr) == "Requested node configuration is not available"
    assert slurm_words("") == "no reason given"


def test_the_job_reports_the_port_it_chose_in_the_service_url() -> None:
    assert with_port("http://0.0.0.0:0/user/ann/", 51234) == "http://0.0.0.0:51234/user/ann/"
    assert with_port("http://[::]:0/user/a/", 5) == "http://[::]:5/user/a/"


def test_the_job_spawner_runs_slurm_commands_as_the_account() -> None:
    spawner = SlurmJobSpawner()
    assert spawner.exec_prefix == "/usr/sbin/runuser -u {username} --"
    assert spawner.batch_query_cmd == "squeue -h -j {job_id} -o '%T|%B|%P|%r'"
    assert "SLURM_CONF" in spawner.env_keep and "PATH" in spawner.env_keep
    import re
    match = re.search(spawner.state_exechost_re, "RUNNING|node7|debug|None")
    assert match is not None and match.group(1) == "node7"

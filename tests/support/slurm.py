"""A real one-node Slurm cluster for backend slurm's tests: munged, slurmctld and slurmd from
Debian's slurm-wlm and munge, started by hand (no systemd here) with everything of theirs
under one temporary directory: configuration, munge key and socket, state, pid and log
files, on free ports. Stopped by the pids this module started, never by name: a munged or
slurm of the machine's own (default socket, ports 6817/6818, /etc/slurm) is left alone.

Commands reach this cluster through SLURM_CONF (`cluster.env`); the hub gets it in its
environment and passes it to sbatch, squeue and scancel.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import require
from tests.support.hubproc import free_ports

DAEMONS = ("munged", "slurmctld", "slurmd")
COMMANDS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
START_DEADLINE = 60.0


def require_slurm() -> None:
    """The binaries (CI fails without them: ./run installs slurm-wlm and munge)."""
    missing = [name for name in (*DAEMONS, *COMMANDS)
               if not shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin")]
    require(not missing, f"Slurm and munge ({', '.join(missing)} not found; apt-get install "
            "slurm-wlm munge)")
    require(_account("munge") is not None, "the munge account (Debian's munge package)")


def _account(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def node_hardware() -> dict[str, str]:
    """`slurmd -C`'s description of this machine (CPUs, sockets, cores, memory)."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    first = out.splitlines()[0]
    return dict(item.split("=", 1) for item in first.split())


@dataclass
class SlurmCluster:
    directory: Path
    node: str
    partition: str  # up, the default
    down_partition: str  # State=DOWN: jobs are accepted and wait
    memory_mb: int  # the node's RealMemory
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.directory / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, **self.env})
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}: "
                                 f"{result.stderr[-2000:]}")
        return result

    def jobs(self, user: str | None = None) -> list[dict[str, str]]:
        """Jobs squeue lists (pending, running, completing): id, user, state, partition,
        node, reason, name."""
        argv = ["squeue", "-h", "-o", "%i|%u|%T|%P|%N|%r|%j"]
        if user:
            argv += ["-u", user]
        lines = self.run(*argv).stdout.splitlines()
        keys = ("id", "user", "state", "partition", "node", "reason", "name")
        return [dict(zip(keys, line.split("|", 6), strict=True)) for line in lines
                if line.strip()]

    def job_state(self, job_id: str) -> str | None:
        """JobState from scontrol, or None once slurmctld forgot the job."""
        result = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        for item in result.stdout.split():
            if item.startswith("JobState="):
                return item.split("=", 1)[1]
        return None

    def wait_for(self, what: str, check, deadline: float = 60.0):  # noqa: ANN001
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            ended = [f"{name} exited {proc.returncode}" for name, proc in self.procs.items()
                     if proc.poll() is not None]
            if ended:
                raise AssertionError(f"{what}: {', '.join(ended)}\n{self.logs()}")
            value = check()
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"{what}: not within {deadline:.0f} s\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munge/munged.log", "munged.out",
                     "slurmctld.out", "slurmd.out"):
            path = self.directory / name
            if path.exists():
                parts.append(f"===== {path}\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def cancel_all(self) -> None:
        """Cancel every job of this cluster and wait until none is left."""
        if self.procs.get("slurmctld") is None or self.procs["slurmctld"].poll() is not None:
            return
        self.run("scancel", "--full", *[job["id"] for job in self.jobs()], check=False)
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self.wait_for("jobs gone", lambda: not self.jobs(), deadline=30)

    def stop(self) -> None:
        """Every job cancelled, then each daemon this cluster started, by its pid."""
        with contextlib.suppress(Exception):
            self.cancel_all()
        for name in reversed(DAEMONS):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def remove(self) -> None:
        """The cluster's directory (after stop)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def start_cluster(prefix: str) -> SlurmCluster:
    """Write the configuration, start munged, slurmctld and slurmd, wait until the node is
    idle. On any failure what was started is stopped again."""
    require_slurm()
    directory = Path(tempfile.mkdtemp(prefix=f"{prefix}-slurm-"))
    os.chmod(directory, 0o755)  # users' sbatch reads slurm.conf and reaches munge's socket
    node = socket.gethostname().split(".")[0]
    hardware = node_hardware()
    memory_mb = int(hardware["RealMemory"])
    cluster = SlurmCluster(directory, node, f"{prefix}-debug", f"{prefix}-down", memory_mb)
    ctld_port, slurmd_port = free_ports(2)
    munge = _account("munge")
    assert munge is not None
    munge_dir = directory / "munge"
    munge_dir.mkdir(mode=0o755)
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    for path in (munge_dir, key):
        os.chown(path, munge.pw_uid, munge.pw_gid)
    for sub in ("ctld", "spool"):
        (directory / sub).mkdir(mode=0o755)
    node_line = " ".join(f"{key}={value}" for key, value in hardware.items()
                         if key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket",
                                    "ThreadsPerCore", "RealMemory"))
    cluster.conf.write_text(f"""\
ClusterName={prefix}
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_dir}/munge.socket.2
CredType=cred/munge
StateSaveLocation={directory}/ctld
SlurmdSpoolDir={directory}/spool
SlurmctldPidFile={directory}/slurmctld.pid
SlurmdPidFile={directory}/slurmd.pid
SlurmctldLogFile={directory}/slurmctld.log
SlurmdLogFile={directory}/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait=5
MinJobAge=60
NodeName={node} NodeHostname={node} NodeAddr=127.0.0.1 {node_line} State=UNKNOWN
PartitionName={cluster.partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP
PartitionName={cluster.down_partition} Nodes={node} MaxTime=INFINITE State=DOWN
""")
    os.chmod(cluster.conf, 0o644)
    try:
        _start(cluster, "munged", [
            "munged", "--foreground", f"--socket={munge_dir}/munge.socket.2",
            f"--key-file={key}", f"--log-file={munge_dir}/munged.log",
            f"--pid-file={munge_dir}/munged.pid", f"--seed-file={munge_dir}/munged.seed"],
            user=munge)
        cluster.wait_for("munged's socket", (munge_dir / "munge.socket.2").exists,
                         START_DEADLINE)
        _start(cluster, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(cluster.conf)])
        cluster.wait_for("slurmctld answers", lambda: cluster.run(
            "scontrol", "ping", check=False).stdout.count("UP") > 0, START_DEADLINE)
        _start(cluster, "slurmd", ["slurmd", "-D", "-N", node, "-f", str(cluster.conf)])
        cluster.wait_for("the node idle", lambda: cluster.run(
            "sinfo", "-h", "-n", node, "-p", cluster.partition, "-o", "%t",
            check=False).stdout.strip() == "idle", START_DEADLINE)
    except BaseException:
        print(cluster.logs())
        cluster.stop()
        raise
    return cluster


def _start(cluster: SlurmCluster, name: str, argv: list[str],
           user: pwd.struct_passwd | None = None) -> None:
    """Start one daemon in the foreground (its pid is the one we stop), as `user`."""
    ids = ({"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user
           else {})
    with open(cluster.directory / f"{name}.out", "ab") as log:
        cluster.procs[name] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **cluster.env}, start_new_session=True, cwd="/", **ids)

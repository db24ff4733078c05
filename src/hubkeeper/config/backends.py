"""The four backends as one interface: one `Backend` each, carrying what differs between
them, so that callers ask `backend_of(spec).<what>` instead of switching on its name.

- local: servers are processes of the users' accounts (or of the invoking account) here;
- docker: servers are containers on this machine's Docker engine, from images;
- slurm: servers are Slurm jobs of the users' accounts (batchspawner), on compute nodes;
- kubernetes: the hub runs on a cluster from the Zero to JupyterHub chart; nothing of it
  runs here (`export z2jh`).

What each backend is, as data over hub.yaml: the rules (config/rules), the renderer
(render/jupyterhub.py, whose `BACKEND_STEPS` set what only docker or slurm needs), the
hosts's environments and the doctor ask it. It imports the model only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hubkeeper.config.model import HubSpec

BackendName = Literal["local", "docker", "slurm", "kubernetes"]
# How a backend's servers get an environment: a venv built here (host/envs.py), an image
# built on this machine's Docker engine (host/images.py), or an image the cluster pulls.
Environments = Literal["venv", "image", "cluster"]
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Backend:
    name: BackendName
    runs_here: bool  # the hub runs on this machine (not kubernetes)
    spawner_class: str | None  # JupyterHub.spawner_class; None: no hub here to spawn
    needs_system_mode: bool  # servers run as the users' Linux accounts (root)
    environments: Environments
    servers_on_nodes: bool  # servers run on other machines and call home at slurm.hub_ip
    scheduler_queue: bool  # the engine's own queue holds starts (Slurm), not hubkeeper's line
    system_mode_because: str = ""  # why it needs system mode, in words

    def hub_api_ip(self, spec: HubSpec) -> str:
        """Where the hub's own API listens: servers call home there, on this machine or
        from a Slurm cluster's nodes."""
        return spec.slurm.hub_ip if self.servers_on_nodes else LOOPBACK

    def admission_on(self, spec: HubSpec) -> bool:
        """Whether starts wait in hubkeeper's line (hub/admission.py); with a scheduler's
        queue, the queue decides."""
        return not self.scheduler_queue and spec.starts.at_once != 0

    def queue_timeout(self, spec: HubSpec) -> float:
        """How long a start may wait before its server's own start begins: in the
        scheduler's queue, or in hubkeeper's line (0 when neither)."""
        if self.scheduler_queue:
            return spec.slurm.queue_timeout
        return spec.starts.queue_timeout if self.admission_on(spec) else 0


LOCAL = Backend("local", runs_here=True, spawner_class="hubkeeper.hub.spawner.LocalSpawner",
                needs_system_mode=False, environments="venv", servers_on_nodes=False,
                scheduler_queue=False)
DOCKER = Backend("docker", runs_here=True,
                 spawner_class="hubkeeper.hub.container.ContainerSpawner",
                 needs_system_mode=True, environments="image", servers_on_nodes=False,
                 scheduler_queue=False,
                 system_mode_because="runs servers as the users' Linux accounts, which "
                 "needs system mode; run as root (the Docker engine needs it too), or use "
                 "backend: local")
# Slurm's servers run the local backend's venvs (on a shared file system).
SLURM = Backend("slurm", runs_here=True, spawner_class="hubkeeper.hub.slurm.SlurmJobSpawner",
                needs_system_mode=True, environments="venv", servers_on_nodes=True,
                scheduler_queue=True,
                system_mode_because="submits servers as jobs of the users' Linux accounts, "
                "which needs system mode; run the hub as root on a machine that can submit "
                "jobs, or use backend: local")
KUBERNETES = Backend("kubernetes", runs_here=False, spawner_class=None,
                     needs_system_mode=False, environments="cluster", servers_on_nodes=False,
                     scheduler_queue=False)

BACKENDS: dict[str, Backend] = {b.name: b for b in (LOCAL, DOCKER, SLURM, KUBERNETES)}


def backend_of(spec: HubSpec) -> Backend:
    return BACKENDS[spec.backend]

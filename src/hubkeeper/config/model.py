"""The one typed model of hub.yaml. Every field has a type, bounds, a default and a help text.

Its sections are built by topic in `access.py` (hub, proxy, auth, users), `environments.py`
(hooks, data, environments), `materials.py` (course material from git), `operation.py`
(snapshots, archive, TLS, nginx, systemd, services), `resources.py` (culling, starts,
classes, limits, Slurm, Kubernetes) and `servers.py` (the servers' variables and UI); rules
that span fields in `rules/`; loading (with file:line positions) in `loader.py`; the value
types in `types.py`. Pure data.
"""

from __future__ import annotations

import urllib.parse
from typing import Literal

from pydantic import Field

from hubkeeper.config.access import AuthSection, HubSection, ProxySection, UsersSection
from hubkeeper.config.environments import DataSection, Environment, EnvironmentName, HooksSection
from hubkeeper.config.materials import Material
from hubkeeper.config.operation import (
    ArchiveSection,
    HubService,
    NginxSection,
    ServiceSection,
    SnapshotsSection,
    TlsSection,
    WebSection,
)
from hubkeeper.config.resources import (
    ClassWindow,
    CullingSection,
    KubernetesSection,
    LimitsSection,
    SlurmSection,
    StartsSection,
)
from hubkeeper.config.servers import ServersSection
from hubkeeper.config.types import SCHEMA_VERSION, Section


class HubSpec(Section):
    """The whole of hub.yaml."""

    version: Literal[1] = Field(
        SCHEMA_VERSION, description="Version of the hub.yaml format. Only 1 exists."
    )
    hub: HubSection = Field(default_factory=HubSection, description="The hub process.")
    proxy: ProxySection = Field(default_factory=ProxySection, description="The public proxy.")
    auth: AuthSection = Field(default_factory=AuthSection, description="How users log in.")
    users: UsersSection = Field(default_factory=UsersSection, description="Who may log in.")
    backend: Literal["local", "docker", "slurm", "kubernetes"] = Field(
        "local",
        description="Where user servers run. local: processes of the users' accounts on "
        "this machine, from Python environments. docker: containers on this machine's "
        "Docker engine, from images, still as the users' accounts (uid, gid, groups) with "
        "their homes mounted (needs root). slurm: jobs on a Slurm cluster through "
        "batchspawner, as the users' accounts, from the same environments as local (the "
        "nodes share the filesystem; needs root). kubernetes: a cluster runs the hub from the "
        "Zero to JupyterHub chart; `hubkeeper export z2jh` writes its values (`up` does not "
        "run it here). See docs/backends.md.",
    )
    hooks: HooksSection = Field(
        default_factory=HooksSection,
        description="Start-up scripts run as root and as the user before each server starts.",
    )
    data: DataSection = Field(
        default_factory=DataSection, description="Users' data: the free-space guard."
    )
    environments: dict[EnvironmentName, Environment] = Field(
        default_factory=dict,
        description="Named Python environments (name -> packages, groups, home template), "
        "built by `hubkeeper env build`. Empty: servers run from hubkeeper's own venv.",
    )
    servers: ServersSection = Field(
        default_factory=ServersSection,
        description="What every server starts with: the UI it opens, environment variables "
        "(hub-wide and per group).")
    materials: list[Material] = Field(
        default_factory=list,
        description="Course material from git repositories, pulled into each user's folder "
        "at every server start and by `hubkeeper materials publish`; the student's edits "
        "win, new and untouched files follow the instructor (docs/materials.md).",
    )
    snapshots: SnapshotsSection = Field(
        default_factory=SnapshotsSection,
        description="Where `hubkeeper snapshot` writes and how many it keeps.",
    )
    archive: ArchiveSection = Field(
        default_factory=ArchiveSection, description="Where `hubkeeper archive` writes.")
    tls: TlsSection = Field(
        default_factory=TlsSection, description="The certificate for hub.url.")
    nginx: NginxSection = Field(
        default_factory=NginxSection, description="The nginx site in front of hub.url.")
    service: ServiceSection = Field(
        default_factory=ServiceSection, description="The hub as a systemd service.")
    culling: CullingSection = Field(
        default_factory=CullingSection, description="Stopping idle servers.")
    limits: LimitsSection = Field(
        default_factory=LimitsSection, description="Memory and CPU per user's server.")
    starts: StartsSection = Field(
        default_factory=StartsSection,
        description="Server starts at once, and how long the others may wait in line.")
    schedule: list[ClassWindow] = Field(
        default_factory=list,
        description="Classes: each group's servers are started before its class "
        "(`hubkeeper prewarm` on a timetable) and kept until the class ends.")
    services: list[HubService] = Field(
        default_factory=list,
        description="Extra web services (RStudio, a dashboard) at /services/<name>/.")
    web: WebSection = Field(
        default_factory=WebSection,
        description="hubkeeper's own pages in the browser: the student's page (docs/web.md).")
    slurm: SlurmSection = Field(
        default_factory=SlurmSection,
        description="backend slurm: partition, time limit, sbatch options, per group.")
    kubernetes: KubernetesSection = Field(
        default_factory=KubernetesSection,
        description="backend kubernetes (and `export z2jh`): storage, images, placeholders.")


def default_environment(spec: HubSpec) -> str | None:
    """The name of the default environment (a single one is the default), or None."""
    marked = [name for name, env in spec.environments.items() if env.default]
    if marked:
        return marked[0]
    if len(spec.environments) == 1:
        return next(iter(spec.environments))
    return None


def https_port(spec: HubSpec) -> int:
    """The port nginx serves hub.url on (443 unless the address names one)."""
    assert spec.hub.url
    return urllib.parse.urlsplit(spec.hub.url).port or 443


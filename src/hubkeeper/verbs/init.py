"""`hubkeeper init [DIR]`: write a commented starter hub.yaml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import write_atomic

STARTER = """\
# hub.yaml: the whole description of this JupyterHub. `hubkeeper check` validates it,
# `hubkeeper render` shows the JupyterHub configuration it becomes, `hubkeeper up` runs it.
# Every field is listed in docs/reference.md. Secrets never go in this file.
version: 1

hub:
  name: {name}            # lower-case letters, digits and '-'
  ip: 127.0.0.1           # 0.0.0.0 opens the hub to the network
  port: 8000              # users open http://<ip>:<port><base_url>
  base_url: /
  # state_dir: /var/lib/hubkeeper/{name}   # default as root; ./.hubkeeper otherwise
  # mode: auto            # system (Linux accounts, root) | personal (one account) | auto

auth:
  # Default: pam (Linux passwords) in system mode; shared-password (one generated
  # password for every user, printed by `hubkeeper up`) in personal mode.
  # Also: native (sign-up, admin approval), github (see docs/reference.md).
  # kind: pam

users:
  admins: [instructor]
  allowed: [student1, student2, student3]

backend: local            # user servers are processes on this machine

proxy:
  kind: python            # python (PyPI port) | node (the npm reference)

# What every server starts with (docs/environments.md):
# servers:
#   ui: lab               # lab | notebook | a path in the server, e.g. /voila
#   env:
#     NLTK_DATA: /srv/nltk_data
# Course material from git, merged into each home at every start (docs/materials.md):
# materials:
#   - repo: https://github.com/example/course.git
#     target: course
"""


@dataclass(frozen=True)
class InitResult:
    path: str
    hub: str


def init(directory: Path) -> InitResult:
    directory = directory.absolute()
    target = directory / "hub.yaml"
    if target.exists():
        raise HubkeeperError(
            f"{target} already exists; not overwriting it",
            hint="edit it, or choose another directory: hubkeeper init DIR",
        )
    name = re.sub(r"[^a-z0-9]+", "-", directory.name.lower()).strip("-")[:63].strip("-")
    name = name or "hub"
    write_atomic(target, STARTER.format(name=name).encode())
    return InitResult(path=str(target), hub=name)

"""`hubkeeper doctor`: the checks, in the order they are shown.

Adding a check is one line in CHECKS: `Check(name, title, function)`, where the function
takes the `Context` and returns `Finding`s (see findings.py). A fix a check offers is run by
`doctor --fix` only when it is marked safe.
"""

from __future__ import annotations

from hubkeeper.doctor.containers import container_checks
from hubkeeper.doctor.data import data_checks
from hubkeeper.doctor.disk import disk_checks
from hubkeeper.doctor.extra_config import extra_config_checks
from hubkeeper.doctor.findings import Check, Context, Finding, Fix
from hubkeeper.doctor.hub import hub_checks
from hubkeeper.doctor.journal import journal_checks
from hubkeeper.doctor.permissions import home_checks, state_checks
from hubkeeper.doctor.service import service_checks
from hubkeeper.doctor.tls import tls_checks

CHECKS: tuple[Check, ...] = (
    Check("hub", "The hub and its proxy", hub_checks),
    Check("state", "State directory and secrets", state_checks),
    Check("homes", "Users' homes", home_checks),
    Check("data", "Shared data and group folders", data_checks),
    Check("journal", "The journal against this machine", journal_checks),
    Check("disk", "Free disk space", disk_checks),
    Check("tls", "The certificate of hub.url", tls_checks),
    Check("service", "The systemd service", service_checks),
    Check("containers", "The Docker engine and the environments' images", container_checks),
    Check("extra_config", "The operator's own configuration files", extra_config_checks),
)

__all__ = ["CHECKS", "Check", "Context", "Finding", "Fix"]

"""Doctor check of the hub's systemd unit: the file hubkeeper wrote and what systemd says."""

from __future__ import annotations

from collections.abc import Iterable

from hubkeeper.doctor.findings import Context, Finding
from hubkeeper.ops.unit import service_state


def service_checks(context: Context) -> Iterable[Finding]:
    state = service_state(context.loaded, context.paths)
    if state.file == "absent":
        yield Finding("service", "ok" if not state.systemd else "warning", state.path,
                      "No systemd unit is installed for this hub"
                      + (": it does not start at boot or restart after a crash. Run "
                         "`hubkeeper service install`." if state.systemd else
                         " (systemd does not run on this machine, so `hubkeeper up` is "
                         "how the hub runs)."))
        return
    if state.file in ("hand-edited", "foreign", "missing", "outdated"):
        status = "warning" if state.file == "outdated" else "problem"
        yield Finding("service", status, state.path, state.detail)
        return
    if not state.systemd:
        yield Finding("service", "ok", state.path,
                      f"The unit {state.unit} is installed as hubkeeper wrote it; systemd "
                      f"does not run on this machine (PID 1 is {state.pid1}), so it is not "
                      "started.")
        return
    if state.active != "active" or state.enabled != "enabled":
        yield Finding("service", "problem", state.unit,
                      f"The unit {state.unit} is {state.active} and {state.enabled}. Run "
                      f"`systemctl enable --now {state.unit}`, and `journalctl -u "
                      f"{state.unit}` to see why it stopped.")
    else:
        yield Finding("service", "ok", state.unit,
                      f"The unit {state.unit} is active and enabled.")

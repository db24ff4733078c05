"""Doctor checks for production pieces: hub.url's certificate and the systemd unit."""

from __future__ import annotations

from collections.abc import Iterable

from hubkeeper.doctor.findings import Context, Finding
from hubkeeper.host.journal import Journal
from hubkeeper.host.tls import certificate_status
from hubkeeper.verbs.service import service_state

RENEW_WARNING_DAYS = 30  # Let's Encrypt renews at 30 days left: fewer means renewal fails


def tls_checks(context: Context) -> Iterable[Finding]:
    status = certificate_status(context.loaded)
    if status is None:
        return  # no hub.url: nginx and TLS are not hubkeeper's business here
    if not status.ok:
        yield Finding("tls", "problem", status.file,
                      f"The certificate for {status.host} is not usable: {status.problem}. "
                      "Browsers will refuse the hub. See `hubkeeper tls status`; "
                      + ("check that `certbot renew` runs (its timer or cron job) and "
                         "that port 80 reaches this machine."
                         if status.source == "letsencrypt" else
                         "put a valid certificate at tls.certificate and tls.key, then run "
                         "`hubkeeper apply`."))
    elif status.source == "letsencrypt" and (status.days_left or 0) <= RENEW_WARNING_DAYS:
        yield Finding("tls", "warning", status.file,
                      f"The certificate for {status.host} expires in {status.days_left} "
                      "days. certbot renews Let's Encrypt certificates 30 days before they "
                      "expire, so renewal is failing: run `certbot renew --dry-run` to see "
                      "why.")
    else:
        yield Finding("tls", "ok", status.file,
                      f"The certificate for {status.host} is valid for {status.days_left} "
                      "more days.")


def service_checks(context: Context) -> Iterable[Finding]:
    # The journal read again (not context.journal): unreadable, this check says why.
    state = service_state(context.loaded, context.paths, Journal.load(context.paths.journal))
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

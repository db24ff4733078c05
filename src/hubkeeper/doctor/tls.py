"""Doctor check of hub.url's certificate (the one nginx serves)."""

from __future__ import annotations

from collections.abc import Iterable

from hubkeeper.doctor.findings import Context, Finding
from hubkeeper.host.tls import certificate_status

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

"""`hubkeeper tls status`: the certificate nginx serves for hub.url, and when it runs out.

Exit codes (cli/main.py): 0 fine; 1 missing, not yet valid, expired, expiring within 14 days
or not covering hub.url's host; 2 hub.yaml is invalid or has no hub.url.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubkeeper.base.errors import InvalidInput
from hubkeeper.context.hub import Hub
from hubkeeper.host.tls import EXPIRY_WARNING_DAYS, CertStatus, certificate_status

__all__ = ["CertStatus", "TlsStatusResult", "certificate_status", "tls_status"]


@dataclass(frozen=True)
class TlsStatusResult:
    config: str
    warn_days: int
    certificate: CertStatus

    @property
    def ok(self) -> bool:
        return self.certificate.ok


def tls_status(hub: Hub) -> TlsStatusResult:
    loaded = hub.loaded
    status = certificate_status(loaded)
    if status is None:
        raise InvalidInput([loaded.problem(("hub",), "no hub.url: hubkeeper serves no "
                                           "certificate (set hub.url and tls to have one)")])
    return TlsStatusResult(str(loaded.path), EXPIRY_WARNING_DAYS, status)

"""Reading certificates: what a PEM file holds, whether its key matches, whom it covers."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID

from hubkeeper.config.loader import LoadedSpec
from hubkeeper.render.nginx import certificate_files, public_host

EXPIRY_WARNING_DAYS = 14  # `tls status` fails this long before the end; certbot renews at 30


class CertificateError(Exception):
    """A certificate or key file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Certificate:
    path: str
    subject: str
    names: tuple[str, ...]  # subjectAltName DNS names and addresses (the CN when there are none)
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str  # of the leaf certificate (DER), as `openssl x509 -fingerprint -sha256`
    der: bytes

    def covers(self, host: str) -> bool:
        return any(_matches(name, host) for name in self.names)


def _matches(name: str, host: str) -> bool:
    """RFC 6125: exact, or a wildcard as the whole left-most label matching one label."""
    name, host = name.lower().rstrip("."), host.lower().rstrip(".")
    if name == host:
        return True
    if name.startswith("*."):
        label, _, rest = host.partition(".")
        return bool(label) and rest == name[2:] and "." in rest
    return False


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {path}: {exc.strerror}") from None


def load_certificate(path: str) -> Certificate:
    """The leaf (first) certificate of a PEM chain."""
    data = _read(path)
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                               ) from None
    leaf = chain[0]
    names: list[str] = []
    try:
        alt = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        names += alt.value.get_values_for_type(x509.DNSName)
        names += [str(a) for a in alt.value.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names += [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    der = leaf.public_bytes(serialization.Encoding.DER)
    return Certificate(
        path=path, subject=leaf.subject.rfc4514_string(), names=tuple(names),
        issuer=leaf.issuer.rfc4514_string(), not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc, sha256=hashlib.sha256(der).hexdigest(), der=der)


def key_problem(certificate_path: str, key_path: str) -> str | None:
    """Why the key at key_path cannot serve the certificate, or None when it matches."""
    try:
        key = serialization.load_pem_private_key(_read(key_path), password=None)
    except CertificateError as exc:
        return str(exc)
    except TypeError:
        return f"{key_path} is encrypted with a passphrase; nginx needs it without one"
    except ValueError:
        return f"{key_path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)"
    except UnsupportedAlgorithm as exc:
        return f"{key_path} holds a key of a kind nginx cannot use: {exc}"
    leaf = x509.load_pem_x509_certificates(_read(certificate_path))[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != leaf.public_key().public_bytes(serialization.Encoding.DER, public)):
        return f"{key_path} is not the private key of the certificate {certificate_path}"
    return None


@dataclass(frozen=True)
class CertStatus:
    """The certificate nginx serves for hub.url, as `tls status` and the doctor show it."""

    url: str
    host: str
    source: Literal["letsencrypt", "files"]
    file: str
    present: bool
    subject: str | None
    names: tuple[str, ...]
    issuer: str | None
    not_before: str | None  # ISO 8601, UTC
    not_after: str | None
    days_left: int | None  # whole days until not_after; negative once expired
    covers_host: bool
    ok: bool  # present, valid now, covers the host, and more than 14 days left
    problem: str | None  # why not ok, for people


def certificate_status(loaded: LoadedSpec, now: dt.datetime | None = None
                       ) -> CertStatus | None:
    """The state of hub.url's certificate, or None when hub.yaml has no hub.url. Reads only
    the certificate file (not the key, not nginx)."""
    spec = loaded.spec
    if not spec.hub.url:
        return None
    now = now or dt.datetime.now(dt.timezone.utc)
    host = public_host(spec)
    source: Literal["letsencrypt", "files"] = (
        "letsencrypt" if spec.tls.letsencrypt_email else "files")
    path = certificate_files(spec)[0]
    try:
        cert = load_certificate(path)
    except CertificateError as exc:
        problem = ("no certificate from Let's Encrypt yet: `hubkeeper apply` gets one"
                   if source == "letsencrypt" and not Path(path).exists() else str(exc))
        return CertStatus(spec.hub.url, host, source, path, False, None, (), None, None,
                          None, None, False, False, problem)
    days = (cert.not_after - now) // dt.timedelta(days=1)
    covers = cert.covers(host)
    problems = []
    if cert.not_before > now:
        problems.append(f"not valid before {cert.not_before:%Y-%m-%d %H:%M} UTC")
    if now >= cert.not_after:
        problems.append(f"expired on {cert.not_after:%Y-%m-%d %H:%M} UTC")
    elif days < EXPIRY_WARNING_DAYS:
        renew = (": certbot renews 30 days ahead, so renewal is failing; try `certbot renew "
                 "--dry-run`" if source == "letsencrypt" else
                 ": put a new certificate in place and run `hubkeeper apply`")
        problems.append(f"expires in {days} days, on {cert.not_after:%Y-%m-%d %H:%M} UTC"
                        + renew)
    if not covers:
        problems.append(f"does not cover {host} (it names {', '.join(cert.names) or 'nothing'})")
    return CertStatus(spec.hub.url, host, source, path, True, cert.subject, cert.names,
                      cert.issuer, cert.not_before.isoformat(), cert.not_after.isoformat(),
                      days, covers, not problems, "; ".join(problems) or None)

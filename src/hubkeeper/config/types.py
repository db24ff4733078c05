"""The value types of hub.yaml: names, paths, durations, sizes, and the base Section.

Every section model (`access.py`, `environments.py`, `operation.py`, `resources.py`, the
root in `model.py`) is built from these; they are pure data and validation.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

SCHEMA_VERSION = 1

USERNAME_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}$"
HUB_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# GitHub names as they appear in URLs: an organisation login, optionally ':' and a team slug.
_GITHUB_ORG = r"[A-Za-z0-9][A-Za-z0-9-]{0,38}"
_GITHUB_SLUG = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
GITHUB_ORG_OR_TEAM_PATTERN = rf"^{_GITHUB_ORG}(:{_GITHUB_SLUG})?$"
GITHUB_TEAM_PATTERN = rf"^{_GITHUB_ORG}:{_GITHUB_SLUG}$"
ENVIRONMENT_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
UNIT_NAME_PATTERN = r"^[A-Za-z0-9:_.@%-]+\.(service|target)$"
SERVICE_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
SLURM_PARTITION_PATTERN = r"^[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64})*$"

PATTERN_WORDS = {
    USERNAME_PATTERN: "a lower-case Linux user name: a letter or '_', then up to 31 of "
    "a-z 0-9 '_' '-'",
    HUB_NAME_PATTERN: "lower-case letters, digits and '-', starting with a letter or digit, "
    "at most 63 characters",
    GITHUB_ORG_OR_TEAM_PATTERN: "a GitHub organisation 'org' or a team 'org:team', spelt as "
    "in its URL (github.com/orgs/ORG/teams/TEAM)",
    GITHUB_TEAM_PATTERN: "a GitHub team 'org:team', spelt as in its URL "
    "(github.com/orgs/ORG/teams/TEAM)",
    UNIT_NAME_PATTERN: "a systemd unit name ending in .service or .target (letters, digits "
    "and : _ . @ % -), e.g. notify-admin@%n.service",
    ENVIRONMENT_NAME_PATTERN: "a lower-case slug: a letter, then up to 39 of a-z 0-9 '_' "
    "'-' (it becomes a folder name in every home)",
    SERVICE_NAME_PATTERN: "a letter, then up to 31 of a-z 0-9 '-' (it becomes the path "
    "/services/<name>/)",
    SLURM_PARTITION_PATTERN: "a Slurm partition name (letters, digits, '_', '.', '-'), or "
    "several separated by commas, e.g. debug or gpu,gpu-long",
}

Username = Annotated[
    str,
    Field(
        pattern=USERNAME_PATTERN,
        description="A portable lower-case Linux user name: a letter or _, then up to 31 of "
        "a-z 0-9 _ -.",
    ),
]
Port = Annotated[int, Field(ge=1, le=65535)]


def check_ip_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address; use 127.0.0.1 (this machine only), "
            "0.0.0.0 (every interface) or one of this machine's addresses"
        ) from None
    return value


def loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_callback_url(value: str) -> str:
    example = "e.g. https://hub.example.org/hub/oauth_callback"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not a web address; {example}")
    if parts.scheme == "http" and not loopback_host(parts.hostname):
        raise ValueError(
            f"{value!r} must start with https://: GitHub sends the login code to this "
            "address (http is only accepted for localhost)"
        )
    if parts.query or parts.fragment or not parts.path.endswith("/hub/oauth_callback"):
        raise ValueError(f"{value!r} must end with '/hub/oauth_callback'; {example}")
    return value


def secure_address(value: str, example: str, why: str) -> urllib.parse.SplitResult:
    """A web address that secrets are sent to: https, or http on this machine only."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not a web address; {example}")
    if parts.scheme == "http" and not loopback_host(parts.hostname):
        raise ValueError(f"{value!r} must start with https://: {why} (http is only accepted "
                         "for a server on this machine: localhost, 127.0.0.1, ::1)")
    return parts


def check_github_url(value: str) -> str:
    """auth.github.url: https://github.com or a GitHub Enterprise Server's address."""
    example = "e.g. https://github.com or https://github.example.edu"
    parts = secure_address(value, example, "the hub sends the GitHub OAuth app's client "
                            "secret there")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path.strip(
            "/"):
        raise ValueError(f"{value!r} must be the server's address alone, without a path, "
                         f"user, query or fragment; {example}")
    return value.rstrip("/")


def check_issuer_url(value: str) -> str:
    """An OpenID Connect issuer: https://host[:port][/path], no query or fragment; http only
    on a loopback host (a test provider on this machine)."""
    example = "e.g. https://keycloak.example.edu/realms/campus"
    parts = secure_address(value, example, "the hub sends the client's secret there")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{value!r} must be a plain address without user, query or "
                         f"fragment; {example}")
    if parts.path.endswith("/.well-known/openid-configuration"):
        raise ValueError(f"{value!r}: give the issuer itself, without "
                         "/.well-known/openid-configuration")
    return value


def check_public_url(value: str) -> str:
    """hub.url: https://host[:port][/prefix/], what users type; nginx terminates TLS there."""
    example = "e.g. https://hub.example.edu or https://example.edu/course/"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(
            f"{value!r} must be an https:// address, {example}; a hub without a public "
            "name needs no hub.url (users open http://<hub.ip>:<hub.port>/)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{value!r} must be a plain address without user, query or "
                         f"fragment, {example}")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"{value!r} has a port that is not a number from 1 to 65535") from None
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", parts.hostname):
        raise ValueError(f"{value!r}: {parts.hostname!r} is not a DNS name, {example}")
    return value


def check_local_url(value: str) -> str:
    """A service's address: plain http on this machine's loopback, a port, no path. Anything
    else would send users' requests (and the login gate's user header) off the machine."""
    example = "e.g. http://127.0.0.1:8787"
    parts = urllib.parse.urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if (parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1")
            or parts.username or parts.password or parts.query or parts.fragment
            or parts.path not in ("", "/")):
        raise ValueError(f"{value!r} must be http://127.0.0.1:<port> (a service on this "
                         f"machine, no path), {example}")
    if not port:
        raise ValueError(f"{value!r} needs a port from 1 to 65535, {example}")
    return value


def check_url_prefix(value: str) -> str:
    if not (value.startswith("/") and value.endswith("/")):
        raise ValueError(f"{value!r} must start and end with '/', e.g. '/' or '/course/'")
    if "//" in value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} must not contain '//' or spaces")
    return value


@dataclass(frozen=True)
class TypeName:
    """How docs/reference.md names a type whose Python type (float, int) would mislead."""

    name: str


_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
MAX_DURATION = 3600.0
MAX_PERIOD = 366 * 86400.0


def _seconds(value: Any, units: str) -> float:
    """'30s', '5m', '1h', '2d', '1m30s' or a number of seconds -> seconds."""
    words = (f"{value!r} is not a duration; use a number and a unit {units}, e.g. 30s, "
             "5m or 1m30s")
    if isinstance(value, bool):
        raise ValueError(words)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        match = _DURATION.match(text)
        if not text or not match or not any(match.groups()):
            raise ValueError(words)
        days, hours, minutes, secs = (float(part) if part else 0.0 for part in match.groups())
        if days and units == "s, m or h":
            raise ValueError(words)
        return days * 86400 + hours * 3600 + minutes * 60 + secs
    raise ValueError(words)


def _duration(value: Any) -> float:
    """A short deadline: more than 0 s and at most 1 h."""
    seconds = _seconds(value, "s, m or h")
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_DURATION:
        raise ValueError(f"{value!r} must be more than 0s and at most 1h")
    return seconds


def _period(value: Any) -> float:
    """A period of operation: 0 (off) or up to a year; days allowed (2d, 12h)."""
    seconds = _seconds(value, "s, m, h or d")
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_PERIOD:
        raise ValueError(f"{value!r} must be 0 (off) or a duration of at most 366d")
    return seconds


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$")
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _size(value: Any) -> int:
    """'500M', '1G', '2T', '0' or a number of bytes -> bytes (K, M, G, T are powers of 1024)."""
    words = (f"{value!r} is not a size; use a number and a unit K, M, G or T (powers of "
             "1024), e.g. 500M or 1G; 0 turns the check off")
    if isinstance(value, bool):
        raise ValueError(words)
    if isinstance(value, int):
        number, unit = float(value), ""
    elif isinstance(value, str):
        match = _SIZE.match(value.strip().lower())
        if not match:
            raise ValueError(words)
        number, unit = float(match.group(1)), match.group(2)
    else:
        raise ValueError(words)
    if number < 0:
        raise ValueError(words)
    return int(number * SIZE_UNITS[unit])


def format_size(count: int | float) -> str:
    """Bytes for people: '1.5G', '512K', '0'."""
    for unit in ("T", "G", "M", "K"):
        scale = SIZE_UNITS[unit.lower()]
        if count >= scale:
            value = count / scale
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return f"{int(count)}B" if count else "0"


def format_duration(seconds: float) -> str:
    """Seconds for people, in hub.yaml's own spelling: '30s', '5m', '1m30s', '2h', '1d'."""
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


Duration = Annotated[float, BeforeValidator(_duration),
                     TypeName("duration (30s, 5m, 1h, 1m30s)")]
Period = Annotated[float, BeforeValidator(_period),
                   TypeName("duration (10m, 1h, 2d; 0 is off)")]
Size = Annotated[int, BeforeValidator(_size), TypeName("size (500M, 1G; K M G T = 1024^n)")]


class Section(BaseModel):
    """A hub.yaml mapping: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

def config_relative(directory: Path, value: str) -> Path:
    """A path written in hub.yaml: relative paths are relative to hub.yaml's directory."""
    path = Path(value).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else directory / path))


GroupName = Annotated[
    str,
    Field(pattern=USERNAME_PATTERN,
          description="A group name: the same rules as a Linux user name."),
]

"""Running the hub for real: snapshots, archive, TLS, nginx, systemd, extra web services."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from hubkeeper.config.access import GroupName
from hubkeeper.config.types import (
    SERVICE_NAME_PATTERN,
    UNIT_NAME_PATTERN,
    Port,
    Section,
    Size,
    check_local_url,
)


class Retention(Section):
    """Which snapshots `hubkeeper snapshot` keeps. The newest complete one is always kept."""

    last: int = Field(7, ge=1, le=10000, description="The newest N snapshots.")
    daily: int = Field(
        14, ge=0, le=10000,
        description="The newest snapshot of each of the last N days that have one.")
    weekly: int = Field(
        8, ge=0, le=10000,
        description="The newest snapshot of each of the last N ISO weeks that have one.")


class SnapshotsSection(Section):
    """Dated, hard-linked snapshots of the hub (see docs/lifecycle.md)."""

    targets: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Directories that receive snapshots, each complete on its own (put one "
        "on another disk). Relative to hub.yaml or absolute. Empty: `hubkeeper snapshot` "
        "needs --target.",
    )
    keep: Retention = Field(default_factory=Retention, description="Retention.")


class ArchiveSection(Section):
    """The end-of-course archive (see docs/lifecycle.md)."""

    dir: str | None = Field(
        None,
        description="Where `hubkeeper archive` writes <hub>-<time>/ folders. Relative to "
        "hub.yaml or absolute. Empty: `hubkeeper archive` needs --to.",
    )


class TlsSection(Section):
    """Where the certificate for hub.url comes from: Let's Encrypt or files you give."""

    letsencrypt_email: str | None = Field(
        None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Get and renew the certificate from Let's Encrypt with certbot (webroot "
        "challenge over port 80); Let's Encrypt writes to this address before a "
        "certificate expires. Needs hub.url's name to point at this machine.",
    )
    staging: bool = Field(
        False,
        description="letsencrypt only: use Let's Encrypt's staging server (certificates "
        "browsers do not trust; for trying the set-up without hitting rate limits).",
    )
    webroot: str = Field(
        "/var/lib/hubkeeper-acme",
        description="letsencrypt only: the directory nginx serves "
        "/.well-known/acme-challenge/ from.",
    )
    certificate: str | None = Field(
        None,
        description="A PEM certificate chain (leaf first), absolute path; with key, instead "
        "of Let's Encrypt (e.g. from your institution).",
    )
    key: str | None = Field(
        None, description="The certificate's PEM private key, absolute path, readable only "
        "by root.")


class NginxSection(Section):
    """The nginx site `apply` writes when hub.url is set."""

    conf_dir: str = Field(
        "/etc/nginx/conf.d",
        description="Directory nginx includes *.conf from; the site is "
        "hubkeeper-<hub.name>.conf there.",
    )
    main_config: str = Field(
        "/etc/nginx/nginx.conf",
        description="nginx's main configuration: checked with `nginx -t -c` before any "
        "reload, and used to reload (`nginx -s reload -c`).",
    )
    http_port: Port = Field(80, description="Port of the HTTP server that redirects to "
                            "HTTPS and answers Let's Encrypt's challenges.")
    max_upload: Size = Field(
        "1G", validate_default=True,
        description="The largest request body (client_max_body_size), e.g. an upload; 0 "
        "means no limit.",
    )
    hsts: bool = Field(
        True,
        description="Send Strict-Transport-Security (one year): browsers then refuse plain "
        "http for this name.",
    )


class ServiceSection(Section):
    """The systemd unit `hubkeeper service install` writes."""

    unit_dir: str = Field("/etc/systemd/system",
                          description="Where the unit hubkeeper-<hub.name>.service goes.")
    on_failure: str | None = Field(
        None, pattern=UNIT_NAME_PATTERN,
        description="A unit systemd starts when the hub fails for good (OnFailure=), "
        "e.g. notify-admin@%n.service that mails you.",
    )



class WebSection(Section):
    """hubkeeper's web pages at <hub>/services/hubkeeper/ (docs/web.md)."""

    enabled: bool = Field(
        False,
        description="Serve the student's page at <hub>/services/hubkeeper/me/ (their home "
        "in each snapshot: browse, download, restore, their whole work as a zip). It runs as "
        "its own unprivileged account hkweb-<hub.name> and asks a root helper of `up` for "
        "the files; needs system mode.")
    port: Port = Field(
        8090, description="The loopback port the web service listens on (the hub's proxy "
        "routes /services/hubkeeper/ to it).")
    max_read: Size = Field(
        256 * 1024**2, description="The largest single file the page downloads.")


ServiceName = Annotated[str, Field(pattern=SERVICE_NAME_PATTERN,
                                   description="Lower-case letters, digits and '-'.")]
HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$",
                                  description="An HTTP header name: letters, digits, '-'.")]


class HubService(Section):
    """A JupyterHub service reachable at /services/<name>/ behind the hub's login."""

    name: ServiceName = Field(description="Its name; its address is <hub>/services/<name>/.")
    url: Annotated[str, AfterValidator(check_local_url)] | None = Field(
        None,
        description="Where it listens, on this machine: http://127.0.0.1:<port>. The proxy "
        "sends /services/<name>/ there: with hub_login through the login gate, which passes "
        "on the path below /services/<name>/ (/services/rstudio/x -> <url>/x); without, "
        "the whole path, as JupyterHub services expect.",
    )
    command: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="A command the hub starts and restarts with itself (a managed service); "
        "empty: something else runs it (an external service). With hub_login the login gate "
        "runs it as its child: they start, stop and are restarted together.",
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables of the command.")
    hub_login: bool = Field(
        True,
        description="Put hubkeeper's login gate in front of it: only users logged in to the "
        "hub who may use it reach it (for services like RStudio that know nothing of "
        "JupyterHub). false: the service checks logins itself (JupyterHub OAuth).",
    )
    gate_port: Port | None = Field(
        None,
        description="hub_login only, and required there: the port on 127.0.0.1 the login "
        "gate listens on. The proxy sends /services/<name>/ to the gate, the gate sends what "
        "it lets through to url.",
    )
    user_header: HeaderName = Field(
        "X-Hubkeeper-User",
        description="hub_login only: the request header in which the gate tells the service "
        "who the user is (any copy sent by the browser is removed first). E.g. "
        "X-RStudio-Username for RStudio Workbench's proxied authentication.",
    )
    groups: list[GroupName] = Field(
        default_factory=list,
        description="Roster groups whose members may use it. Empty: every hub user.",
    )

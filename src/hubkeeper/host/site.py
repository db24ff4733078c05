"""hub.url on this machine: the nginx site, the certificate and certbot's deploy hook.

`site_problems` checks before anything changes; `desired` renders what hub.yaml asks for and
`observe` reads what is there (for the pure planner, plan/site.py); `deploy` and `certbot`
are the effectors ops/site.py runs: a site nginx rejects (or cannot serve) is put back as it
was, so nginx never runs a configuration it refused.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.model import HubSpec, https_port
from hubkeeper.host import nginxctl
from hubkeeper.host.tls import CertificateError, certificate_status, key_problem, load_certificate
from hubkeeper.render.nginx import (
    MAIN_CONFIG_MARK,
    certificate_files,
    hook_path,
    public_host,
    render_certbot_hook,
    render_site,
    site_path,
)
from hubkeeper.state.installed import (
    current_sha256,
    file_state,
    install_file,
    remove_file,
)
from hubkeeper.state.journal import Journal

log = logging.getLogger(__name__)
SITE_KIND = "nginx-site"
HOOK_KIND = "certbot-hook"


@dataclass(frozen=True)
class Desired:
    """What hub.yaml asks for on this machine."""

    site_path: str
    site: bytes  # the whole site
    bootstrap: bytes | None  # HTTP only, while Let's Encrypt has not issued the certificate
    hook_path: str | None
    hook: bytes | None
    certificate_sha256: str | None  # of the certificate nginx should serve, when known
    host: str = ""  # hub.url's host name
    main_config: str = ""  # nginx.main_config
    letsencrypt: bool = False
    staging: bool = False
    webroot: str = ""
    http_port: int = 80


@dataclass(frozen=True)
class SiteFile:
    """A site or hook file as it is now."""

    path: str
    kind: str  # the journal record's kind; "" when not in the journal
    problem: str | None  # why hubkeeper may not replace or remove it (state/installed.py)
    exists: bool
    sha256: str | None
    main_config: str | None  # a site of ours: the nginx main configuration its header names


@dataclass(frozen=True)
class SiteFacts:
    """What plan/site.py plans from: the files, nginx, the certificate."""

    files: dict[str, SiteFile]  # every journaled site and hook, and the desired paths
    nginx: bool  # nginx is installed
    running: frozenset[str]  # main configurations whose nginx runs
    certificate_problem: str | None = None  # the certificate is there but not usable: why


def _has_ipv6() -> bool:
    """Whether nginx could listen on [::] here (a kernel without IPv6 refuses the socket)."""
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True


def letsencrypt_ready(spec: HubSpec) -> bool:
    return all(Path(path).exists() for path in certificate_files(spec))


def desired(loaded: LoadedSpec) -> Desired | None:
    """What hub.yaml asks for (None without hub.url)."""
    spec = loaded.spec
    if not spec.hub.url:
        return None
    shown = str(loaded.path)
    about = {"host": public_host(spec), "main_config": spec.nginx.main_config,
             "letsencrypt": bool(spec.tls.letsencrypt_email), "staging": bool(spec.tls.staging),
             "webroot": str(spec.tls.webroot), "http_port": spec.nginx.http_port}
    ipv6 = _has_ipv6()
    sha = None
    if spec.tls.letsencrypt_email:
        bootstrap = None if letsencrypt_ready(spec) else render_site(
            spec, config_path=shown, with_https=False, ipv6=ipv6).encode()
        hook = render_certbot_hook(spec, config_path=shown,
                                   nginx=nginxctl.find_nginx() or "nginx").encode()
        site = render_site(spec, config_path=shown, ipv6=ipv6).encode()
        if bootstrap is None:  # unreadable: nginx -T says why, and nothing is changed
            with contextlib.suppress(CertificateError):
                sha = load_certificate(certificate_files(spec)[0]).sha256
        return Desired(site_path(spec), site, bootstrap, hook_path(spec), hook, sha, **about)
    sha = load_certificate(certificate_files(spec)[0]).sha256
    site = render_site(spec, config_path=shown, ipv6=ipv6, certificate_sha256=sha).encode()
    return Desired(site_path(spec), site, None, None, None, sha, **about)


def site_problems(loaded: LoadedSpec, journal: Journal) -> list[Problem]:
    """What stops hub.url's site on this machine, each at its line of hub.yaml."""
    spec = loaded.spec
    if not spec.hub.url:
        return []
    problems = []
    if not nginxctl.find_nginx():
        problems.append(loaded.problem(("hub", "url"), "nginx is not installed, and hub.url "
                                       "is served through it: apt-get install nginx"))
    if not Path(spec.nginx.main_config).is_file():
        problems.append(loaded.problem(("nginx", "main_config"),
                                       f"no such file: {spec.nginx.main_config}"))
    if not Path(spec.nginx.conf_dir).is_dir():
        problems.append(loaded.problem(("nginx", "conf_dir"),
                                       f"no such directory: {spec.nginx.conf_dir}"))
    tls = spec.tls
    if tls.letsencrypt_email:
        if not letsencrypt_ready(spec) and not shutil.which("certbot"):
            problems.append(loaded.problem(
                ("tls", "letsencrypt_email"), "certbot is not installed, and it gets the "
                "certificate from Let's Encrypt: apt-get install certbot"))
    else:
        assert tls.certificate and tls.key
        try:
            load_certificate(tls.certificate)
        except CertificateError as exc:
            problems.append(loaded.problem(("tls", "certificate"), str(exc)))
        else:
            why = key_problem(tls.certificate, tls.key)
            if why:
                problems.append(loaded.problem(("tls", "key"), why))
    where = {site_path(spec): ("nginx", "conf_dir"),
             hook_path(spec): ("tls", "letsencrypt_email")}
    for path, loc in where.items():
        if loc[0] == "tls" and not tls.letsencrypt_email:
            continue
        state = file_state(journal, path)
        if state.problem:
            problems.append(loaded.problem(loc, f"{path} {state.problem}"))
    return problems


def check(loaded: LoadedSpec, journal: Journal) -> None:
    problems = site_problems(loaded, journal)
    if problems:
        raise InvalidInput(problems, hint="nothing was changed")


def observe(loaded: LoadedSpec, journal: Journal, want: Desired | None) -> SiteFacts:
    """The site and hook files (journaled ones and the desired paths), nginx, and the
    certificate, as they are now. Changes nothing."""
    paths = {path for path, record in journal.files.items()
             if record.kind in (SITE_KIND, HOOK_KIND)}
    if want is not None:
        paths |= {want.site_path} | ({want.hook_path} if want.hook_path else set())
    files = {}
    for path in sorted(paths):
        state = file_state(journal, path)
        files[path] = SiteFile(path, state.kind, state.problem, Path(path).exists(),
                               current_sha256(path), main_config_of(path))
    nginx = nginxctl.find_nginx() is not None
    mains = {loaded.spec.nginx.main_config} | {f.main_config for f in files.values()
                                               if f.main_config}
    running = frozenset(main for main in mains if nginx and nginxctl.running_pid(main))
    note = None
    status = certificate_status(loaded)
    if status and status.present and status.problem:
        note = f"certificate {status.file}: {status.problem}"
    return SiteFacts(files, nginx, running, note)


class SiteUndo:
    """One journaled site write that can be undone: the previous content (ours) or none."""

    def __init__(self, journal: Journal, path: str) -> None:
        self.journal = journal
        self.path = path
        had = journal.files.get(path) is not None and Path(path).exists()
        self.previous = Path(path).read_bytes() if had else None

    def put_back(self) -> None:
        if self.previous is None:
            remove_file(self.journal, self.path)
        else:
            install_file(self.journal, self.path, self.previous, SITE_KIND)


def deploy(spec: HubSpec, journal: Journal, path: str, content: bytes, *, https: bool,
            certificate_sha256: str | None, force_reload: bool) -> str | None:
    """Write the site, have nginx check it, reload (or start) nginx and wait until it serves
    the site. On any failure the previous site is put back (and nginx reloaded if it had
    taken the new one), so nginx keeps serving what it served. Returns "reload", "start"
    or None when nothing had to be done."""
    main = spec.nginx.main_config
    undo = SiteUndo(journal, path)
    changed = install_file(journal, path, content, SITE_KIND)
    if not changed and not force_reload and nginxctl.running_pid(main):
        return None
    try:
        nginxctl.check_config(main, must_include=path)
    except HubkeeperError:
        if changed:
            undo.put_back()
        raise
    verb = nginxctl.reload_or_start(main)
    try:
        nginxctl.wait_served(
            http_port=spec.nginx.http_port, host=public_host(spec),
            redirect=_redirect(spec), https_port=https_port(spec) if https else None,
            certificate_sha256=certificate_sha256)
    except HubkeeperError:
        if changed:
            undo.put_back()
            if nginxctl.running_pid(main):
                nginxctl.reload_or_start(main)
        raise
    return verb


def _redirect(spec: HubSpec) -> str:
    port = https_port(spec)
    return f"https://{public_host(spec)}" + ("" if port == 443 else f":{port}") + "/"


def certbot(spec: HubSpec) -> None:
    host = public_host(spec)
    tls = spec.tls
    assert tls.letsencrypt_email
    command = ["certbot", "certonly", "--webroot", "-w", tls.webroot, "-d", host,
               "--cert-name", host, "-m", tls.letsencrypt_email, "--agree-tos",
               "--no-eff-email", "--non-interactive", "--keep-until-expiring"]
    if tls.staging:
        command.append("--staging")
    log.info("%s: %s", host, " ".join(command))
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise HubkeeperError(
            f"certbot could not get a certificate for {host}:\n{tail}",
            hint=f"Let's Encrypt must reach http://{host}/.well-known/acme-challenge/ on "
            "port 80: the name must point at this machine and the port be open. nginx "
            "serves the challenge already; run apply again once that is fixed.")
    if not letsencrypt_ready(spec):
        raise HubkeeperError(f"certbot succeeded but {certificate_files(spec)[0]} is missing",
                             hint="see /var/log/letsencrypt/letsencrypt.log")


def main_config_of(path: str) -> str | None:
    """The nginx main configuration a site of ours names in its header (see render_site)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as site:
            for line in site:
                if line.startswith(f"# {MAIN_CONFIG_MARK}"):
                    return line.removeprefix(f"# {MAIN_CONFIG_MARK}").strip()
    except OSError:
        return None
    return None

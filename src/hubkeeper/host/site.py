"""hub.url on this machine: the nginx site, the certificate and certbot's deploy hook.

`site_problems` checks before anything changes; `plan_site` says what `apply_site` would do;
`apply_site` does it, one journaled file at a time, and never leaves nginx running a
configuration it refused: a site nginx rejects (or cannot serve) is put back as it was.
`remove_site` is for hub.url's removal and for `retire`.
"""

from __future__ import annotations

import contextlib
import logging
import os
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
from hubkeeper.plan.accounts import Action
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
    sha256_of,
)
from hubkeeper.state.journal import Journal

log = logging.getLogger(__name__)
SITE_KIND = "nginx-site"
HOOK_KIND = "certbot-hook"
OUR_KINDS = {SITE_KIND: "remove-nginx-site", HOOK_KIND: "remove-certbot-hook"}


@dataclass(frozen=True)
class Desired:
    """What hub.yaml asks for on this machine."""

    site_path: str
    site: bytes  # the whole site
    bootstrap: bytes | None  # HTTP only, while Let's Encrypt has not issued the certificate
    hook_path: str | None
    hook: bytes | None
    certificate_sha256: str | None  # of the certificate nginx should serve, when known


@dataclass(frozen=True)
class SitePlan:
    actions: tuple[Action, ...]
    notes: tuple[str, ...]


def _has_ipv6() -> bool:
    """Whether nginx could listen on [::] here (a kernel without IPv6 refuses the socket)."""
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True


def _letsencrypt_ready(spec: HubSpec) -> bool:
    return all(Path(path).exists() for path in certificate_files(spec))


def desired(loaded: LoadedSpec) -> Desired:
    spec = loaded.spec
    shown = str(loaded.path)
    ipv6 = _has_ipv6()
    sha = None
    if spec.tls.letsencrypt_email:
        bootstrap = None if _letsencrypt_ready(spec) else render_site(
            spec, config_path=shown, with_https=False, ipv6=ipv6).encode()
        hook = render_certbot_hook(spec, config_path=shown,
                                   nginx=nginxctl.find_nginx() or "nginx").encode()
        site = render_site(spec, config_path=shown, ipv6=ipv6).encode()
        if bootstrap is None:  # unreadable: nginx -T says why, and nothing is changed
            with contextlib.suppress(CertificateError):
                sha = load_certificate(certificate_files(spec)[0]).sha256
        return Desired(site_path(spec), site, bootstrap, hook_path(spec), hook, sha)
    sha = load_certificate(certificate_files(spec)[0]).sha256
    site = render_site(spec, config_path=shown, ipv6=ipv6, certificate_sha256=sha).encode()
    return Desired(site_path(spec), site, None, None, None, sha)


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
        if not _letsencrypt_ready(spec) and not shutil.which("certbot"):
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


def _differs(journal: Journal, path: str, content: bytes) -> bool:
    record = journal.files.get(path)
    return not (record and record.state == "created"
                and current_sha256(path) == sha256_of(content))


def _check(loaded: LoadedSpec, journal: Journal) -> None:
    problems = site_problems(loaded, journal)
    if problems:
        raise InvalidInput(problems, hint="nothing was changed")


def _removals(journal: Journal, keep: set[str]) -> tuple[list[Action], list[str]]:
    """Journaled sites and hooks not in `keep`: removable ones, and notes on hand-edited
    ones, which stay."""
    actions, notes = [], []
    for path, record in sorted(journal.files.items()):
        if record.kind not in OUR_KINDS or path in keep:
            continue
        state = file_state(journal, path)
        if state.problem:
            notes.append(f"{path} {state.problem}")
        elif Path(path).exists():
            actions.append(Action(OUR_KINDS[record.kind], path))
        else:
            actions.append(Action(OUR_KINDS[record.kind], path, "already gone"))
    return actions, notes


def _nginx_action(spec: HubSpec) -> Action:
    main = spec.nginx.main_config
    running = nginxctl.running_pid(main) if nginxctl.find_nginx() else None
    return Action("reload-nginx" if running else "start-nginx", main)


def plan_site(loaded: LoadedSpec, journal: Journal) -> SitePlan:
    """What apply_site would do. Changes nothing; raises InvalidInput on a site_problem."""
    _check(loaded, journal)
    spec = loaded.spec
    if not spec.hub.url:
        actions, notes = _removals(journal, set())
        if nginxctl.find_nginx():
            mains = {_main_config_of(a.subject) or spec.nginx.main_config
                     for a in actions if a.kind == "remove-nginx-site"}
            actions += [Action("reload-nginx", main) for main in sorted(mains)
                        if nginxctl.running_pid(main)]
        return SitePlan(tuple(actions), tuple(notes))
    want = desired(loaded)
    keep = {want.site_path} | ({want.hook_path} if want.hook_path else set())
    actions, notes = _removals(journal, keep)
    host = public_host(spec)
    if want.bootstrap is not None:
        staging = " (staging)" if spec.tls.staging else ""
        actions.append(Action("install-nginx-site", want.site_path,
                              "HTTP only, for Let's Encrypt's challenge"))
        actions.append(Action("get-certificate", host,
                              f"Let's Encrypt{staging}, certbot --webroot {spec.tls.webroot}"))
    if want.hook is not None and want.hook_path and _differs(journal, want.hook_path,
                                                             want.hook):
        actions.append(Action("install-certbot-hook", want.hook_path))
    if want.bootstrap is not None or _differs(journal, want.site_path, want.site):
        actions.append(Action("install-nginx-site", want.site_path))
    nginx = _nginx_action(spec)
    if any(a.kind in ("install-nginx-site", "remove-nginx-site") for a in actions) \
            or nginx.kind == "start-nginx":
        actions.append(nginx)
    if spec.tls.letsencrypt_email and spec.nginx.http_port != 80:
        notes.append(f"Let's Encrypt checks http://{host}/ on port 80; nginx.http_port is "
                     f"{spec.nginx.http_port}, so port 80 must reach it")
    status = certificate_status(loaded)
    if status and status.present and status.problem:
        notes.append(f"certificate {status.file}: {status.problem}")
    return SitePlan(tuple(actions), tuple(notes))


class _SiteFile:
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


def _deploy(spec: HubSpec, journal: Journal, path: str, content: bytes, *, https: bool,
            certificate_sha256: str | None, force_reload: bool) -> str | None:
    """Write the site, have nginx check it, reload (or start) nginx and wait until it serves
    the site. On any failure the previous site is put back (and nginx reloaded if it had
    taken the new one), so nginx keeps serving what it served. Returns "reload", "start"
    or None when nothing had to be done."""
    main = spec.nginx.main_config
    undo = _SiteFile(journal, path)
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


def _nginx_done(verb: str, main: str) -> Action:
    return Action("reload-nginx" if verb == "reload" else "start-nginx", main)


def _redirect(spec: HubSpec) -> str:
    port = https_port(spec)
    return f"https://{public_host(spec)}" + ("" if port == 443 else f":{port}") + "/"


def _certbot(spec: HubSpec) -> None:
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
    if not _letsencrypt_ready(spec):
        raise HubkeeperError(f"certbot succeeded but {certificate_files(spec)[0]} is missing",
                             hint="see /var/log/letsencrypt/letsencrypt.log")


def apply_site(loaded: LoadedSpec, journal: Journal) -> tuple[Action, ...]:
    """Make nginx serve hub.url as hub.yaml says (or stop serving it when hub.url is gone).
    Returns what was done."""
    _check(loaded, journal)
    spec = loaded.spec
    if not spec.hub.url:
        return remove_site(loaded, journal)
    want = desired(loaded)
    keep = {want.site_path} | ({want.hook_path} if want.hook_path else set())
    removals, _ = _removals(journal, keep)
    done: list[Action] = []
    for action in removals:
        remove_file(journal, action.subject)
        done.append(action)
    main = spec.nginx.main_config
    if want.bootstrap is not None:
        os.makedirs(spec.tls.webroot, mode=0o755, exist_ok=True)
        if _differs(journal, want.site_path, want.bootstrap):  # not left by a failed apply
            done.append(Action("install-nginx-site", want.site_path,
                               "HTTP only, for Let's Encrypt's challenge"))
        verb = _deploy(spec, journal, want.site_path, want.bootstrap, https=False,
                       certificate_sha256=None, force_reload=bool(removals))
        if verb:
            done.append(_nginx_done(verb, main))
        _certbot(spec)
        done.append(Action("get-certificate", public_host(spec), "Let's Encrypt"))
        want = desired(loaded)  # now with the certificate's fingerprint
    if want.hook is not None and want.hook_path and install_file(
            journal, want.hook_path, want.hook, HOOK_KIND, mode=0o755):
        done.append(Action("install-certbot-hook", want.hook_path))
    site_changed = _differs(journal, want.site_path, want.site)
    verb = _deploy(spec, journal, want.site_path, want.site, https=True,
                   certificate_sha256=want.certificate_sha256, force_reload=bool(removals))
    if site_changed:
        done.append(Action("install-nginx-site", want.site_path))
    if verb:
        done.append(_nginx_done(verb, main))
    return tuple(done)


def remove_site(loaded: LoadedSpec, journal: Journal) -> tuple[Action, ...]:
    """Remove this hub's journaled nginx sites and certbot hooks and reload nginx (for
    hub.url's removal and for `retire`). Hand-edited files stay. The certificate stays
    (`certbot delete --cert-name <host>` removes it)."""
    removals, notes = _removals(journal, set())
    for note in notes:
        log.info("left alone: %s", note)
    done: list[Action] = []
    mains = {loaded.spec.nginx.main_config} if loaded.spec.hub.url else set()
    for action in removals:
        if action.kind == "remove-nginx-site":
            mains.add(_main_config_of(action.subject) or loaded.spec.nginx.main_config)
        remove_file(journal, action.subject)
        done.append(action)
    if any(a.kind == "remove-nginx-site" for a in removals) and nginxctl.find_nginx():
        for main in sorted(mains):
            if nginxctl.running_pid(main):
                nginxctl.check_config(main)
                nginxctl.reload_or_start(main)
                done.append(Action("reload-nginx", main))
    return tuple(done)


def _main_config_of(path: str) -> str | None:
    """The nginx main configuration a site of ours names in its header (see render_site)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as site:
            for line in site:
                if line.startswith(f"# {MAIN_CONFIG_MARK}"):
                    return line.removeprefix(f"# {MAIN_CONFIG_MARK}").strip()
    except OSError:
        return None
    return None

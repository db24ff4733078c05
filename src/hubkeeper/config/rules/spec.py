"""Rules of hub.yaml alone that span several fields (schema rules stay in the model)."""

from __future__ import annotations

import ipaddress
import urllib.parse

from hubkeeper.base.errors import Problem
from hubkeeper.config.access import NATIVE_FIELDS, PROVIDERS
from hubkeeper.config.backends import backend_of
from hubkeeper.config.model import HubSpec, https_port
from hubkeeper.config.rules import Found, Locate
from hubkeeper.config.rules.auth_github import github_problems
from hubkeeper.config.rules.auth_ldap import ldap_problems
from hubkeeper.config.rules.auth_lti13 import lti13_problems
from hubkeeper.config.rules.auth_oidc import oidc_problems
from hubkeeper.config.rules.cluster import kubernetes_problems
from hubkeeper.config.rules.materials import materials_problems


def spec_problems(spec: HubSpec, at: Locate) -> list[Problem]:
    """Every rule of hub.yaml alone that spans fields, each problem at its line."""
    return [at(where, message) for where, message in semantic_problems(spec)]


def system_auth_rules(spec: HubSpec) -> Found:
    """Logins that let one person become another, refused in system mode (hub users are
    Linux accounts there). Checked at load for hub.mode: system, and by rules/mode.py for
    `auto` run as root."""
    auth = spec.auth
    problems: Found = []
    if auth.kind == "shared-password":
        problems.append((("auth", "kind"),
                         "'shared-password' gives every user the one password, so in system "
                         "mode anyone could log in as anyone and get their Linux account; "
                         "use 'pam' (Linux passwords), 'native' or an identity provider "
                         "('github', 'oidc', 'ldap', 'lti13'), or hub.mode: personal"))
    elif auth.kind == "dummy":
        problems.append((("auth", "kind"),
                         "'dummy' accepts any password, so in system mode anyone could log "
                         "in as anyone and get their Linux account; use 'pam' (Linux "
                         "passwords), 'native' or an identity provider ('github', 'oidc', "
                         "'ldap', 'lti13'), or hub.mode: personal"))
    elif auth.kind == "native" and auth.open_signup:
        problems.append((("auth", "open_signup"),
                         "in system mode a hub user runs as a Linux account, so sign-ups "
                         "cannot be open; remove open_signup (roster users sign up with "
                         "their invite code, others wait for an admin's approval)"))
    return problems


def semantic_problems(spec: HubSpec) -> Found:
    """Rules that span several fields, as (field path, message) pairs; empty when fine."""
    problems: Found = []
    if spec.hub.mode == "system":
        problems += system_auth_rules(spec)
    if (spec.auth.kind == "dummy" and spec.hub.mode != "system"
            and not ipaddress.ip_address(spec.hub.ip).is_loopback):
        problems.append(
            (
                ("auth", "kind"),
                f"'dummy' accepts any password, so it is only allowed when hub.ip is a "
                f"loopback address (127.0.0.1 or ::1), not {spec.hub.ip}; use "
                "'shared-password' or 'pam'",
            )
        )
    for key in ("password_file", "admin_password_file"):
        if getattr(spec.auth, key) is not None and spec.auth.kind not in (
                None, "shared-password"):
            problems.append(
                (
                    ("auth", key),
                    f"only used with kind 'shared-password', not {spec.auth.kind!r}; remove it",
                )
            )
    problems += _auth_kind_problems(spec)
    problems += ldap_problems(spec)
    problems += oidc_problems(spec)
    problems += lti13_problems(spec)
    problems += _environment_problems(spec)
    problems += materials_problems(spec)
    problems += _web_problems(spec)
    problems += _operation_problems(spec)
    problems += _slurm_problems(spec)
    problems += _warm_problems(spec)
    for index, window in enumerate(spec.schedule):
        if window.end <= window.start:
            problems.append((("schedule", index, "end"),
                             f"{window.end} is not after start {window.start}: a class "
                             "ends on the day it starts"))
        seen_days = set()
        for position, day in enumerate(window.days):
            if day in seen_days:
                problems.append((("schedule", index, "days", position),
                                 f"{day} is listed twice"))
            seen_days.add(day)
    if not backend_of(spec).runs_here:
        problems += kubernetes_problems(spec)
    seen: dict[int, str] = {}
    for where, port in _ports(spec):
        if port in seen:
            problems.append((where, f"port {port} is already used by {seen[port]}"))
        seen.setdefault(port, _field_label(where))
    for key in ("admins", "allowed"):
        names: list[str] = getattr(spec.users, key)
        first: dict[str, int] = {}
        for index, name in enumerate(names):
            if name in first:
                problems.append(
                    (("users", key, index),
                     f"{name!r} is listed twice (first at item {first[name] + 1})")
                )
            first.setdefault(name, index)
    users = spec.users
    auth = spec.auth
    if not (users.allowed or users.admins or users.allow_all or users.groups
            or users.roster.csv or users.roster.entries or users.roster.ranges
            or (auth.kind == "github" and auth.github.organizations)
            or (auth.kind == "ldap" and auth.ldap.allowed_groups)
            or (auth.kind == "oidc" and auth.oidc.allowed_groups)
            or (auth.kind == "lti13" and auth.lti13.courses)
            or users.accounts == "first_login"  # the provider admits (_first_login_problems)
            or (auth.kind == "native" and auth.open_signup)):
        problems.append(
            (
                ("users",),
                "nobody could log in: list names under users.allowed or users.admins, give "
                "a users.roster, or set users.allow_all: true",
            )
        )
    return problems


def _ports(spec: HubSpec) -> list[tuple[tuple[str | int, ...], int]]:
    """Every port hub.yaml names on this machine, with where it is named."""
    ports: list[tuple[tuple[str | int, ...], int]] = [
        (("hub", "port"), spec.hub.port), (("hub", "api_port"), spec.hub.api_port),
        (("proxy", "api_port"), spec.proxy.api_port)]
    if spec.hub.url:
        ports += [(("nginx", "http_port"), spec.nginx.http_port),
                  (("hub", "url"), https_port(spec))]
    for index, service in enumerate(spec.services):
        if service.url:
            port = urllib.parse.urlsplit(service.url).port
            assert port is not None  # check_local_url
            ports.append((("services", index, "url"), port))
        if service.gate_port and service.hub_login:
            ports.append((("services", index, "gate_port"), service.gate_port))
    if spec.web.enabled:
        ports.append((("web", "port"), spec.web.port))
    return ports


def _field_label(where: tuple[str | int, ...]) -> str:
    """('services', 0, 'url') -> 'services[0].url', as problems name fields."""
    label = ""
    for part in where:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else part)
    return label




def _environment_problems(spec: HubSpec) -> Found:
    """Exactly one default among several environments; each environment has what its
    backend starts servers from. (Groups are checked against the roster in rules/roster.py,
    files on the disk in host/preflight.py.)"""
    problems = _backend_environment_problems(spec)
    marked = [name for name, env in spec.environments.items() if env.default]
    for name in marked[1:]:
        problems.append(
            (("environments", name, "default"),
             f"{marked[0]!r} is already the default environment; only one may be")
        )
    if len(spec.environments) > 1 and not marked:
        names = ", ".join(spec.environments)
        problems.append(
            (("environments",),
             f"with several environments ({names}) one needs 'default: true': the one "
             "users get when they do not choose")
        )
    return problems


def _backend_environment_problems(
        spec: HubSpec) -> Found:
    problems: Found = []
    backend = backend_of(spec)
    if not backend.runs_here:
        return []  # kubernetes_problems
    if backend.environments == "venv":  # local, and slurm (which runs the local venvs)
        for name, env in spec.environments.items():
            for key in ("image", "build", "starter_files"):
                if getattr(env, key) is not None:
                    problems.append((("environments", name, key),
                                     "only used with backend: docker (servers in containers); "
                                     "remove it, or set backend: docker"))
        return problems
    if spec.hub.mode == "personal":
        problems.append((("backend",), "docker runs servers as the users' Linux accounts, "
                         "which needs hub.mode system (root); use backend: local with "
                         "hub.mode personal"))
    if not spec.environments:
        problems.append((("backend",), "docker starts servers from images: declare at "
                         "least one environment with image: or build: under environments"))
    for name, env in spec.environments.items():
        if env.image is None and env.build is None:
            problems.append((("environments", name),
                             "needs image: (an image on this engine) or build: (a directory "
                             "with a Dockerfile) on backend docker"))
        if env.image is not None and env.build is not None:
            problems.append((("environments", name, "build"),
                             "image and build exclude each other: keep one"))
        for key in ("packages", "requirements"):
            if getattr(env, key):
                problems.append((("environments", name, key),
                                 "not used on backend docker: install them in the image "
                                 "(RUN pip install ... in its Dockerfile)"))
        if env.r is not None:
            problems.append((("environments", name, "r"),
                             "not used on backend docker: install R and IRkernel in the "
                             "image (e.g. RUN apt-get install r-cran-irkernel)"))
    return problems


def _auth_kind_problems(spec: HubSpec) -> Found:
    """Fields that belong to one auth.kind; auth.github when kind is github."""
    problems: Found = []
    auth = spec.auth
    given = auth.model_fields_set
    for key in NATIVE_FIELDS:
        if key in given and auth.kind != "native":
            problems.append(
                (("auth", key),
                 f"only used with kind 'native', not {auth.kind or 'the default'!r}; remove it")
            )
    for provider in PROVIDERS:
        if provider in given and auth.kind != provider:
            problems.append(
                (("auth", provider),
                 f"only used with kind {provider!r}, not {auth.kind or 'the default'!r}; "
                 "remove it")
            )
    problems += _first_login_problems(spec)
    if auth.kind != "github":
        return problems
    github = auth.github
    if "github" not in given:
        problems.append(
            (("auth", "kind"),
             "kind 'github' needs an auth.github section with at least callback_url (the "
             "'Authorization callback URL' of your GitHub OAuth app) and usually "
             "organizations")
        )
        return problems
    if github.callback_url is None:
        problems.append(
            (("auth", "github"),
             "callback_url is required: the 'Authorization callback URL' of your GitHub "
             "OAuth app, e.g. https://hub.example.org"
             f"{spec.hub.base_url}hub/oauth_callback")
        )
    else:
        path = urllib.parse.urlsplit(github.callback_url).path
        wanted = f"{spec.hub.base_url}hub/oauth_callback"
        if path != wanted:
            problems.append(
                (("auth", "github", "callback_url"),
                 f"the path must be {wanted!r} (hub.base_url {spec.hub.base_url!r} followed "
                 f"by hub/oauth_callback), not {path!r}")
            )
    if spec.users.allow_all and github.organizations:
        problems.append(
            (("users", "allow_all"),
             "with kind 'github' this lets every GitHub account in, so "
             "auth.github.organizations would have no effect; remove one of them")
        )
    roster_groups = set(spec.users.groups)
    for entry in spec.users.roster.entries:
        roster_groups.update(entry.groups)
    for team, group in github.teams_to_groups.items():
        if group in roster_groups:
            problems.append(
                (("auth", "github", "teams_to_groups", team),
                 f"{group!r} is also a roster group; GitHub teams and the roster cannot "
                 "both decide who is in it: use another group name")
            )
    problems += github_problems(spec)
    return problems


def _first_login_problems(spec: HubSpec) -> Found:
    """users.accounts: first_login needs a provider that says who may come, and says it."""
    auth, users = spec.auth, spec.users
    if users.accounts != "first_login":
        return []
    if auth.kind not in PROVIDERS:
        return [(("users", "accounts"),
                 f"first_login lets an identity provider admit people, and auth.kind "
                 f"{auth.kind or 'the default'!r} is none; use kind 'github', 'oidc', 'ldap' "
                 "or 'lti13', or accounts: roster")]
    if auth.kind == "github" and not (auth.github.organizations or users.allow_all):
        return [(("users", "accounts"),
                 "with first_login every GitHub account could make itself an account here; "
                 "list the organisations or teams admitted in auth.github.organizations "
                 "(or, knowingly, users.allow_all: true)")]
    return []


RESERVED_SERVICES = ("hubkeeper", "hubkeeper-api", "hubkeeper-status", "hubkeeper-metrics",
                     "idle-culler",
                     "hubkeeper-schedule")




def _web_problems(spec: HubSpec) -> Found:
    """hub.url and its certificate; tls and nginx only mean something with hub.url."""
    problems: Found = []
    tls = spec.tls
    if not spec.hub.url:
        for section in ("tls", "nginx"):
            if section in spec.model_fields_set:
                problems.append(((section,), "only used with hub.url (the public https:// "
                                 "address nginx serves); set hub.url or remove it"))
        return problems
    path = urllib.parse.urlsplit(spec.hub.url).path or "/"
    if path.rstrip("/") + "/" != spec.hub.base_url:
        problems.append((("hub", "url"),
                         f"its path {path!r} must be hub.base_url {spec.hub.base_url!r} "
                         "(set both, e.g. url https://example.edu/course/ with base_url "
                         "/course/)"))
    if not ipaddress.ip_address(spec.hub.ip).is_loopback:
        problems.append((("hub", "ip"),
                         f"with hub.url, nginx is the way in: the proxy must listen on "
                         f"127.0.0.1 (or ::1), not {spec.hub.ip}, or users could bypass TLS"))
    given_files = [key for key in ("certificate", "key") if getattr(tls, key)]
    if tls.letsencrypt_email and given_files:
        problems.append((("tls", given_files[0]),
                         "give either letsencrypt_email (Let's Encrypt) or certificate and "
                         "key (your own files), not both"))
    elif not tls.letsencrypt_email and len(given_files) != 2:
        missing = "key" if given_files == ["certificate"] else "certificate"
        where = (("tls", missing) if given_files else
                 ("tls",) if "tls" in spec.model_fields_set else ("hub", "url"))
        problems.append((where,
                         "hub.url needs a certificate: set tls.letsencrypt_email to get one "
                         "from Let's Encrypt, or tls.certificate and tls.key (PEM files)"))
    for key in ("certificate", "key", "webroot"):
        value = getattr(tls, key)
        if value and not value.startswith("/"):
            problems.append((("tls", key), f"{value!r} must be an absolute path"))
    for key in ("staging", "webroot"):
        if key in tls.model_fields_set and not tls.letsencrypt_email:
            problems.append((("tls", key), "only used with letsencrypt_email; remove it"))
    for key in ("conf_dir", "main_config"):
        value = getattr(spec.nginx, key)
        if not value.startswith("/"):
            problems.append((("nginx", key), f"{value!r} must be an absolute path"))
    return problems


def _operation_problems(spec: HubSpec) -> Found:
    """Culling, limits and services."""
    problems: Found = []
    culling = spec.culling
    if culling.enabled:
        for key in ("idle", "every"):
            if not getattr(culling, key):
                problems.append((("culling", key), "must be more than 0 while culling is "
                                 "enabled (set enabled: false to turn culling off)"))
    if not spec.service.unit_dir.startswith("/"):
        problems.append((("service", "unit_dir"),
                         f"{spec.service.unit_dir!r} must be an absolute path"))
    seen: dict[str, int] = {}
    for index, service in enumerate(spec.services):
        if service.name in RESERVED_SERVICES:
            problems.append((("services", index, "name"),
                             f"{service.name!r} is hubkeeper's own service; choose another "
                             "name"))
        elif service.name in seen:
            problems.append((("services", index, "name"),
                             f"{service.name!r} is already item {seen[service.name] + 1}"))
        seen.setdefault(service.name, index)
        if service.hub_login and not service.url:
            problems.append((("services", index),
                             "hub_login needs url: the address the login gate passes "
                             "requests to (http://127.0.0.1:<port>)"))
        if service.hub_login and not service.gate_port:
            problems.append((("services", index),
                             "hub_login needs gate_port: the port on 127.0.0.1 the login "
                             "gate listens on (a free port, not url's)"))
        for key in ("gate_port", "user_header"):
            if not service.hub_login and key in service.model_fields_set:
                problems.append((("services", index, key),
                                 "only used with hub_login: true (the login gate); remove it"))
        if not service.command and not service.url:
            problems.append((("services", index),
                             "give command (the hub runs it), url (it runs elsewhere on "
                             "this machine), or both"))
        if service.groups and not service.hub_login:
            problems.append((("services", index, "groups"),
                             "only used with hub_login: true (the login gate checks groups)"))
    return problems


def _warm_problems(spec: HubSpec) -> Found:
    """servers.warm forks servers on this machine from a local parent: backend local only."""
    if spec.servers.warm and spec.backend != "local":
        return [(("servers", "warm"), f"only used with backend: local, not {spec.backend!r} "
                 "(servers forked from a warm parent on this machine); remove it, or set "
                 "backend: local")]
    return []


def _slurm_problems(spec: HubSpec) -> Found:
    """The slurm section belongs to backend slurm, which runs jobs as the users' accounts."""
    if spec.backend != "slurm":
        if "slurm" in spec.model_fields_set:
            return [(("slurm",), f"only used with backend: slurm, not {spec.backend!r}; "
                     "remove it, or set backend: slurm")]
        return []
    if spec.hub.mode == "personal":
        return [(("backend",), "slurm runs servers as jobs of the users' Linux accounts, "
                 "which needs hub.mode system (root); use backend: local with hub.mode "
                 "personal")]
    return []

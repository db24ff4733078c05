"""hub.yaml -> values for the Zero to JupyterHub Helm chart (`hubkeeper export z2jh`).

Pure: `z2jh_values(spec, roster, scripts)` returns the values as a ruamel CommentedMap, with
a comment on every choice that keeps users' data (the chart's traps). `dump()` makes the
text. The exported file holds no secret; `z2jh_secrets()` makes the one that does.

Kubernetes cannot run here, so tests check the result three ways: the chart's own schema
(what `helm lint` checks), golden files, and the pods and volume claims KubeSpawner builds
from it (tests/support/z2jh.py).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from hubkeeper.config.model import HubSpec
from hubkeeper.render import z2jh_snippets as snippets
from hubkeeper.render.hubkeeper_services import ACTIVITY_DEFAULT, activity_interval
from hubkeeper.render.z2jh_singleuser import (
    chart_image,
    data_claim,
    single_environment,
    singleuser_values,
    yaml_map,
    yaml_note,
)
from hubkeeper.roster import Roster

AUTHENTICATORS = {
    "shared-password": "shared-password",
    "native": "native",
    "github": "github",
}
# KubeSpawner formats every string of a container with the user's names: {username} etc.
CHART_HUB_IMAGE = "quay.io/jupyterhub/k8s-hub"


def z2jh_values(spec: HubSpec, roster: Roster, scripts: Mapping[str, str],
                generator: str = "hubkeeper") -> CommentedMap:
    """The chart's values for `spec`. `scripts` holds each hook's file content by the path
    hub.yaml gives (the verb reads them). kubernetes_problems(spec) must be empty."""
    values = CommentedMap()
    kube = spec.kubernetes
    values.yaml_set_start_comment(
        f"Zero to JupyterHub values for hub {spec.hub.name!r}, written by {generator} from "
        "hub.yaml.\nEdit hub.yaml and export again rather than this file. Install with:\n"
        f"  helm upgrade --install {spec.hub.name} jupyterhub/jupyterhub "
        f"--version {kube.chart_version} \\\n"
        f"    --namespace {spec.hub.name} --create-namespace -f values.yaml -f secrets.yaml\n"
        "secrets.yaml: `hubkeeper export z2jh --secrets secrets.yaml` (docs/kubernetes.md).\n"
        "Keys the chart's schema requires are written with the chart's defaults, so that\n"
        "this file validates on its own.")
    values["hub"] = _hub(spec, roster, scripts)
    values["proxy"] = _proxy(spec)
    values["singleuser"] = singleuser_values(spec, scripts)
    values["scheduling"] = _scheduling(spec, roster)
    values["prePuller"] = _pre_puller()
    yaml_note(values, "prePuller", "Every environment's image is pulled onto each node before an "
              "upgrade completes (hook) and onto new nodes (continuous): the first start of a "
              "class does not wait for a multi-GB pull.", 0)
    values["cull"] = _cull(spec)
    for key, default in (("imagePullSecrets", CommentedSeq()), ("ingress", {"enabled": False}),
                         ("custom", {}), ("debug", {"enabled": False}),
                         ("rbac", {"create": True}), ("global", {})):
        values[key] = default
    return values


def dump(values: CommentedMap) -> str:
    yaml = YAML()
    yaml.width = 4096  # never fold: long strings stay one line, scripts stay literal blocks
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump(values, out)
    return out.getvalue()


# --- hub ------------------------------------------------------------------------------------

def _hub(spec: HubSpec, roster: Roster, scripts: Mapping[str, str]) -> CommentedMap:
    hub = yaml_map({"baseUrl": spec.hub.base_url})
    if spec.kubernetes.hub_image:
        hub["image"] = chart_image(spec.kubernetes.hub_image)
    config = yaml_map()
    hub["config"] = config
    kind = spec.auth.kind
    assert kind in AUTHENTICATORS, "kubernetes_problems refuses the others"
    config["JupyterHub"] = yaml_map({"authenticator_class": AUTHENTICATORS[kind]})
    active = [member for member in roster.active]
    authenticator = yaml_map({
        "admin_users": sorted(member.name for member in active if member.admin),
        "allowed_users": sorted(member.name for member in active),
        "blocked_users": sorted(member.name for member in roster.members if member.locked),
        "allow_all": spec.users.allow_all,
    })
    config["Authenticator"] = authenticator
    yaml_note(authenticator, "blocked_users", "users.locked: they stay on the roster and keep "
              "their files, but may not log in.", 3)
    extra = yaml_map()
    if kind == "shared-password":
        pass  # the passwords are in the secrets file
    elif kind == "native":
        auth = spec.auth
        config["NativeAuthenticator"] = yaml_map({
            "open_signup": auth.open_signup,
            "minimum_password_length": auth.minimum_password_length,
            "check_common_password": auth.check_common_password,
            "ask_email_on_signup": auth.ask_email_on_signup,
        })
        extra["hubkeeper-native"] = LiteralScalarString(snippets.NATIVE_TEMPLATES)
    else:
        github = spec.auth.github
        needs_org = bool(github.organizations or github.teams_to_groups
                         or github.admin_teams)
        config["GitHubOAuthenticator"] = yaml_map({
            "oauth_callback_url": github.callback_url,
            "allowed_organizations": list(github.organizations),
            "scope": ["read:org"] if needs_org else [],
            "allow_existing_users": False,
        })
        if github.url != "https://github.com":  # a GitHub Enterprise Server
            config["GitHubOAuthenticator"]["github_url"] = github.url
        if github.teams_to_groups or github.admin_teams:
            extra["hubkeeper-github-teams"] = LiteralScalarString(snippets.with_data(
                snippets.GITHUB_TEAMS, {
                    "teams": dict(github.teams_to_groups),
                    "admin_teams": sorted(team.lower() for team in github.admin_teams),
                    "roster": {member.name: sorted(member.groups) for member in active
                               if member.groups}}))
    if not (kind == "github" and (spec.auth.github.teams_to_groups
                                  or spec.auth.github.admin_teams)):
        active_names = {member.name for member in active}
        config["JupyterHub"]["load_groups"] = yaml_map({
            group: {"users": [name for name in roster.group_members(group)
                              if name in active_names]}
            for group in roster.groups})
    interval = activity_interval(spec.culling.idle) if spec.culling.enabled else None
    if interval and interval != ACTIVITY_DEFAULT:
        config["JupyterHub"]["last_activity_interval"] = interval
    spawner = yaml_map({"delete_pvc": False})
    single = single_environment(spec)
    if single:  # several: each profile says its own
        spawner["notebook_dir"] = f"{spec.kubernetes.home_mount}/{single}"
    config["KubeSpawner"] = spawner
    yaml_note(spawner, "delete_pvc", "Deleting a user in the hub keeps their home volume "
              "(KubeSpawner's default deletes it). Remove a volume by hand once it is archived.",
              3)
    groups = _group_data(spec)
    if groups:
        extra["hubkeeper-groups"] = LiteralScalarString(
            snippets.with_data(snippets.GROUPS, groups))
    for index, name in enumerate(spec.hub.extra_config):
        # the chart runs extraConfig in the order of its keys: "zz-" after hubkeeper's own
        key = f"zz-extra-config-{index + 1:02d}-{PurePosixPath(name).stem}"
        extra[key] = LiteralScalarString(
            f"# hub.extra_config: {name} (the operator's own; exported as it is)\n"
            + scripts[name])
    if extra:
        hub["extraConfig"] = extra
    return hub


def _group_data(spec: HubSpec) -> dict[str, Any]:
    """What hub.yaml decides by group; empty when nothing does."""
    access = {name: list(env.groups) for name, env in spec.environments.items() if env.groups}
    limits = {name: {"memory": limit.memory, "cpu": limit.cpu}
              for name, limit in spec.limits.groups.items()}
    folders = [{"name": f"hubkeeper-folder-{index}", "group": folder.group,
                "path": folder.path, "claim": data_claim(spec, folder.path)}
               for index, folder in enumerate(spec.data.group_folders)]
    env = [{"group": name, "env": dict(group.env)}
           for name, group in spec.servers.groups.items() if group.env]
    if not (access or limits or folders or env):
        return {}
    return {"access": access, "limits": limits, "folders": folders, "env": env,
            "profiles": not single_environment(spec),
            "memory_guarantee": spec.kubernetes.memory_guarantee,
            "cpu_guarantee": spec.kubernetes.cpu_guarantee}


# --- proxy ----------------------------------------------------------------------------------

def _proxy(spec: HubSpec) -> CommentedMap:
    proxy = yaml_map()
    if not spec.hub.url:
        return proxy
    host = spec.hub.url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    tls = spec.tls
    if tls.letsencrypt_email:
        https = yaml_map({"enabled": True, "type": "letsencrypt", "hosts": [host],
                          "letsencrypt": {"contactEmail": tls.letsencrypt_email}})
        if tls.staging:
            https["letsencrypt"]["acmeServer"] = (
                "https://acme-staging-v02.api.letsencrypt.org/directory")
    else:
        https = yaml_map({"enabled": True, "type": "secret", "hosts": [host],
                          "secret": {"name": f"{spec.hub.name}-tls"}})
        yaml_note(https, "secret", f"tls.certificate and tls.key, as a Secret: kubectl create "
                  f"secret tls {spec.hub.name}-tls --cert={tls.certificate} --key={tls.key}", 2)
    proxy["https"] = https
    return proxy


# --- scheduling, pre-puller, culling --------------------------------------------------------

def _scheduling(spec: HubSpec, roster: Roster) -> CommentedMap:
    kube = spec.kubernetes
    students = sum(1 for member in roster.active if not member.admin)
    replicas = students if kube.placeholders is None else kube.placeholders
    scheduling = yaml_map({
        "podPriority": {"enabled": True},
        "userPlaceholder": yaml_map({"enabled": replicas > 0, "replicas": replicas}),
    })
    if replicas:
        yaml_note(scheduling, "userPlaceholder", f"Room for {replicas} servers (one per student "
                  "on the roster, or kubernetes.placeholders) kept by placeholder pods that real "
                  "users' pods push out: a class logging in at once does not wait for new nodes "
                  "(z2jh#987). Lower it between classes: helm upgrade ... --set "
                  "scheduling.userPlaceholder.replicas=0", 1)
    else:
        yaml_note(scheduling, "userPlaceholder", "No placeholders: hub.yaml lists no students. "
                  "Set kubernetes.placeholders to the size of a class that logs in at once.", 1)
    return scheduling


def _pre_puller() -> CommentedMap:
    return yaml_map({"hook": {"enabled": True}, "continuous": {"enabled": True},
                     "pullProfileListImages": True})


def _cull(spec: HubSpec) -> CommentedMap:
    culling = spec.culling
    cull = yaml_map({"enabled": culling.enabled})
    if culling.enabled:
        cull.update({"users": False, "adminUsers": True, "removeNamedServers": False,
                     "timeout": int(culling.idle), "every": int(culling.every),
                     "maxAge": int(culling.max_age)})
        yaml_note(cull, "users", "Culling stops idle servers and never deletes users: a deleted "
                  "user loses the hub's record of them.", 1)
    return cull


def z2jh_secrets(spec: HubSpec, secrets: Mapping[str, str]) -> CommentedMap:
    """The values that hold secrets, from the state dir's files (`secrets` by name)."""
    config = yaml_map()
    kind = spec.auth.kind
    if kind == "shared-password":
        config["SharedPasswordAuthenticator"] = yaml_map({
            "user_password": secrets["shared-password"],
            "admin_password": secrets["admin-password"]})
    elif kind == "github":
        config["GitHubOAuthenticator"] = yaml_map({
            "client_id": secrets["github-client-id"],
            "client_secret": secrets["github-client-secret"]})
    values = yaml_map({"hub": yaml_map({"config": config})})
    values.yaml_set_start_comment(
        f"Secrets of hub {spec.hub.name!r} for the Zero to JupyterHub chart, written by "
        "hubkeeper export z2jh --secrets.\nKeep this file private (0600); pass it to helm "
        "after values.yaml.")
    return values


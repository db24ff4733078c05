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
import posixpath
import shlex
import textwrap
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from hubkeeper.config.model import Hook, HubSpec, default_environment
from hubkeeper.export import z2jh_snippets as snippets
from hubkeeper.render.hub_services import ACTIVITY_DEFAULT, activity_interval
from hubkeeper.roster import Roster

AUTHENTICATORS = {
    "shared-password": "shared-password",
    "native": "native",
    "github": "github",
}
# The chart's names for the home volume; written out because the init containers mount it.
HOME_VOLUME = "volume-{user_server}"
HOME_CLAIM = "claim-{user_server}"
# KubeSpawner formats every string of a container with the user's names: {username} etc.
CHART_HUB_IMAGE = "quay.io/jupyterhub/k8s-hub"
# A pod pulls its image and starts JupyterLab: the chart's default start timeout.
POD_START_SECONDS = 300


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
    values["hub"] = _hub(spec, roster)
    values["proxy"] = _proxy(spec)
    values["singleuser"] = _singleuser(spec, scripts)
    values["scheduling"] = _scheduling(spec, roster)
    values["prePuller"] = _pre_puller()
    _note(values, "prePuller", "Every environment's image is pulled onto each node before an "
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


def _note(mapping: CommentedMap, key: str, text: str, depth: int) -> None:
    """A comment above `key`, at its indentation, folded to fit 100 columns."""
    lines = textwrap.wrap(text, width=98 - 2 * depth, break_on_hyphens=False)
    mapping.yaml_set_comment_before_after_key(key, before="\n".join(lines), indent=2 * depth)


def _map(items: Mapping[str, Any] | None = None) -> CommentedMap:
    return CommentedMap(items or {})


# --- hub ------------------------------------------------------------------------------------

def _hub(spec: HubSpec, roster: Roster) -> CommentedMap:
    hub = _map({"baseUrl": spec.hub.base_url})
    if spec.kubernetes.hub_image:
        hub["image"] = _image(spec.kubernetes.hub_image)
    config = _map()
    hub["config"] = config
    kind = spec.auth.kind
    assert kind in AUTHENTICATORS, "kubernetes_problems refuses the others"
    config["JupyterHub"] = _map({"authenticator_class": AUTHENTICATORS[kind]})
    active = [member for member in roster.active]
    authenticator = _map({
        "admin_users": sorted(member.name for member in active if member.admin),
        "allowed_users": sorted(member.name for member in active),
        "blocked_users": sorted(member.name for member in roster.members if member.locked),
        "allow_all": spec.users.allow_all,
    })
    config["Authenticator"] = authenticator
    _note(authenticator, "blocked_users", "users.locked: they stay on the roster and keep "
          "their files, but may not log in.", 3)
    extra = _map()
    if kind == "shared-password":
        pass  # the passwords are in the secrets file
    elif kind == "native":
        auth = spec.auth
        config["NativeAuthenticator"] = _map({
            "open_signup": auth.open_signup,
            "minimum_password_length": auth.minimum_password_length,
            "check_common_password": auth.check_common_password,
            "ask_email_on_signup": auth.ask_email_on_signup,
        })
        extra["hubkeeper-native"] = LiteralScalarString(snippets.NATIVE_TEMPLATES)
    else:
        github = spec.auth.github
        needs_org = bool(github.organizations or github.teams_to_groups)
        config["GitHubOAuthenticator"] = _map({
            "oauth_callback_url": github.callback_url,
            "allowed_organizations": list(github.organizations),
            "scope": ["read:org"] if needs_org else [],
            "allow_existing_users": False,
        })
        if github.teams_to_groups:
            extra["hubkeeper-github-teams"] = LiteralScalarString(snippets.with_data(
                snippets.GITHUB_TEAMS, {
                    "teams": dict(github.teams_to_groups),
                    "roster": {member.name: sorted(member.groups) for member in active
                               if member.groups}}))
    if not (kind == "github" and spec.auth.github.teams_to_groups):
        active_names = {member.name for member in active}
        config["JupyterHub"]["load_groups"] = _map({
            group: {"users": [name for name in roster.group_members(group)
                              if name in active_names]}
            for group in roster.groups})
    interval = activity_interval(spec.culling.idle) if spec.culling.enabled else None
    if interval and interval != ACTIVITY_DEFAULT:
        config["JupyterHub"]["last_activity_interval"] = interval
    spawner = _map({"delete_pvc": False})
    single = _single_environment(spec)
    if single:  # several: each profile says its own
        spawner["notebook_dir"] = f"{spec.kubernetes.home_mount}/{single}"
    config["KubeSpawner"] = spawner
    _note(spawner, "delete_pvc", "Deleting a user in the hub keeps their home volume "
          "(KubeSpawner's default deletes it). Remove a volume by hand once it is archived.",
          3)
    groups = _group_data(spec)
    if groups:
        extra["hubkeeper-groups"] = LiteralScalarString(
            snippets.with_data(snippets.GROUPS, groups))
    if extra:
        hub["extraConfig"] = extra
    return hub


def _group_data(spec: HubSpec) -> dict[str, Any]:
    """What hub.yaml decides by group; empty when nothing does."""
    access = {name: list(env.groups) for name, env in spec.environments.items() if env.groups}
    limits = {name: {"memory": limit.memory, "cpu": limit.cpu}
              for name, limit in spec.limits.groups.items()}
    folders = [{"name": f"hubkeeper-folder-{index}", "group": folder.group,
                "path": folder.path, "claim": _claim(spec, folder.path)}
               for index, folder in enumerate(spec.data.group_folders)]
    if not (access or limits or folders):
        return {}
    return {"access": access, "limits": limits, "folders": folders,
            "memory_guarantee": spec.kubernetes.memory_guarantee,
            "cpu_guarantee": spec.kubernetes.cpu_guarantee}


def _claim(spec: HubSpec, path: str) -> str:
    given = spec.kubernetes.data_claims.get(path)
    if given:
        return given
    return f"{spec.hub.name}-{posixpath.basename(path)}".lower().replace("_", "-")


# --- proxy ----------------------------------------------------------------------------------

def _proxy(spec: HubSpec) -> CommentedMap:
    proxy = _map()
    if not spec.hub.url:
        return proxy
    host = spec.hub.url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    tls = spec.tls
    if tls.letsencrypt_email:
        https = _map({"enabled": True, "type": "letsencrypt", "hosts": [host],
                      "letsencrypt": {"contactEmail": tls.letsencrypt_email}})
        if tls.staging:
            https["letsencrypt"]["acmeServer"] = (
                "https://acme-staging-v02.api.letsencrypt.org/directory")
    else:
        https = _map({"enabled": True, "type": "secret", "hosts": [host],
                      "secret": {"name": f"{spec.hub.name}-tls"}})
        _note(https, "secret", f"tls.certificate and tls.key, as a Secret: kubectl create "
              f"secret tls {spec.hub.name}-tls --cert={tls.certificate} --key={tls.key}", 2)
    proxy["https"] = https
    return proxy


# --- singleuser -----------------------------------------------------------------------------

def _image(reference: str) -> CommentedMap:
    """name and tag as the chart wants them ('name:tag'; a digest stays in the name)."""
    if "@" in reference:
        return _map({"name": reference, "tag": ""})
    name, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return _map({"name": reference, "tag": "latest"})
    return _map({"name": name, "tag": tag})


def _quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity (Gi, Mi: powers of 1024, as hub.yaml's sizes)."""
    for unit, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _byte_size(size: int) -> str | int:
    """Bytes as KubeSpawner's memory sizes: K, M, G, T are powers of 1024, as in hub.yaml
    (it refuses Kubernetes' Gi)."""
    for unit, factor in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return size


def _singleuser(spec: HubSpec, scripts: Mapping[str, str]) -> CommentedMap:
    kube = spec.kubernetes
    default = default_environment(spec)
    assert default is not None, "kubernetes_problems wants environments"
    singleuser = _map({"image": _image(spec.environments[default].image or ""),
                       "uid": kube.uid, "fsGid": kube.fs_gid, "defaultUrl": "/lab"})
    storage = _map({
        "type": "dynamic",
        "capacity": _quantity(kube.home_size),
        "homeMountPath": kube.home_mount,
        "dynamic": _map({"pvcNameTemplate": HOME_CLAIM, "volumeNameTemplate": HOME_VOLUME,
                         "storageAccessModes": ["ReadWriteOnce"]}),
    })
    if kube.storage_class:
        storage["dynamic"]["storageClass"] = kube.storage_class
    _note(storage, "type", "One volume per user, made at their first start. It is not part "
          "of the Helm release: `helm uninstall` leaves it, and so does deleting the user "
          "(hub.config.KubeSpawner.delete_pvc). Use a StorageClass with reclaimPolicy: "
          "Retain so that deleting a claim keeps the disk.", 2)
    if spec.data.shared:
        storage["extraVolumes"] = [
            {"name": f"hubkeeper-data-{index}",
             "persistentVolumeClaim": {"claimName": _claim(spec, shared.path),
                                       "readOnly": True}}
            for index, shared in enumerate(spec.data.shared)]
        storage["extraVolumeMounts"] = [
            {"name": f"hubkeeper-data-{index}", "mountPath": shared.path, "readOnly": True}
            for index, shared in enumerate(spec.data.shared)]
        _note(storage, "extraVolumes", "data.shared: read-only for every server. Create each "
              "claim (ReadOnlyMany) and fill it before the first start (docs/kubernetes.md).",
              2)
    singleuser["storage"] = storage
    limits = spec.limits
    if limits.memory:
        singleuser["memory"] = _map({
            "limit": _byte_size(limits.memory),
            "guarantee": _byte_size(int(limits.memory * kube.memory_guarantee))})
    if limits.cpu:
        singleuser["cpu"] = _map({"limit": limits.cpu,
                                  "guarantee": round(limits.cpu * kube.cpu_guarantee, 3)})
    if not _single_environment(spec):
        singleuser["profileList"] = [_profile(spec, name, scripts) for name in spec.environments]
    else:
        singleuser["initContainers"] = _init_containers(spec, default, scripts)
        singleuser["extraEnv"] = _map({"HUBKEEPER_ENVIRONMENT": default})
    links = [(folder.link, folder.path) for folder in spec.data.group_folders if folder.link]
    if links:
        singleuser["lifecycleHooks"] = _map({"postStart": {"exec": {"command": [
            "/bin/sh", "-c", _escape(_group_links(spec, links))]}}})
        _note(singleuser, "lifecycleHooks", "data.group_folders links: made in the server's "
              "container, where the folders of the user's groups are mounted.", 1)
    interval = activity_interval(spec.culling.idle) if spec.culling.enabled else None
    if interval and interval != ACTIVITY_DEFAULT:
        singleuser.setdefault("extraEnv", _map())["JUPYTERHUB_ACTIVITY_INTERVAL"] = str(interval)
    if spec.hooks.as_root or spec.hooks.as_user:
        singleuser["startTimeout"] = start_timeout(spec)
    return singleuser


def _single_environment(spec: HubSpec) -> str | None:
    """The one environment everyone gets without a choice (no profile list), if so."""
    if len(spec.environments) == 1 and not any(env.groups for env in spec.environments.values()):
        return next(iter(spec.environments))
    return None


def _profile(spec: HubSpec, name: str, scripts: Mapping[str, str]) -> dict[str, Any]:
    env = spec.environments[name]
    profile: dict[str, Any] = {
        "display_name": name,
        "slug": name,
        "description": (f"for {', '.join(env.groups)}" if env.groups else "for everyone"),
        "kubespawner_override": {
            "image": env.image,
            "init_containers": _init_containers(spec, name, scripts),
            "environment": {"HUBKEEPER_ENVIRONMENT": name},
            "notebook_dir": f"{spec.kubernetes.home_mount}/{name}",
        },
    }
    if name == default_environment(spec):
        profile["default"] = True
    return profile


def _escape(text: str) -> LiteralScalarString:
    """A literal string in a container spec: KubeSpawner formats each with the user's names
    ({username}), so braces of scripts are doubled. Written as a block, line by line."""
    return LiteralScalarString(text.replace("{", "{{").replace("}", "}}"))


def _init_containers(spec: HubSpec, env: str, scripts: Mapping[str, str]) -> list[Any]:
    """Before the server: hooks.as_root as root, then the home prepared and hooks.as_user as
    the user, in the environment's image with the home mounted (as on one machine, hooks run
    before the server and a failing one stops the start when on_failure is fail)."""
    image = spec.environments[env].image
    kube = spec.kubernetes
    def mounts() -> list[dict[str, str]]:  # one list each (YAML would share it as an alias)
        return [{"name": HOME_VOLUME, "mountPath": kube.home_mount}]

    names = {"HUBKEEPER_USER": "{unescaped_username}", "HUBKEEPER_HOME": kube.home_mount,
             "HUBKEEPER_ENVIRONMENT": env, "HUBKEEPER_HUB": spec.hub.name}
    containers: list[Any] = []
    if spec.hooks.as_root:
        containers.append({
            "name": "hubkeeper-hooks-as-root", "image": image,
            "command": ["/bin/sh", "-c", _escape(_hook_runner(spec, spec.hooks.as_root))],
            "env": _env(names, spec.hooks.as_root, scripts),
            "securityContext": {"runAsUser": 0, "runAsGroup": 0},
            "volumeMounts": mounts(),
        })
    prepare = _prepare(spec, env) + _hook_runner(spec, spec.hooks.as_user)
    names = {**names, "HOME": kube.home_mount}  # whatever the image's passwd says
    containers.append({
        "name": "hubkeeper-prepare", "image": image,
        "command": ["/bin/sh", "-c", _escape(prepare)],
        "env": _env(names, spec.hooks.as_user, scripts),
        "securityContext": {"runAsUser": kube.uid, "runAsGroup": kube.fs_gid,
                            "allowPrivilegeEscalation": False},
        "volumeMounts": mounts(),
    })
    return containers


def _env(names: Mapping[str, str], hooks: list[Hook],
         scripts: Mapping[str, str]) -> list[dict[str, str]]:
    env = [{"name": key, "value": value} for key, value in names.items()]
    env += [{"name": f"HUBKEEPER_HOOK_{index}", "value": _escape(scripts[hook.script])}
            for index, hook in enumerate(hooks)]
    return env


def _prepare(spec: HubSpec, env: str) -> str:
    """The user's side of a start: ~/<environment>/, the starter files the user does not
    have yet, the links to shared data."""
    home = spec.kubernetes.home_mount
    folder = f"{home}/{env}"
    lines = ["set -eu", f"mkdir -p {shlex.quote(folder)}"]
    starter = spec.environments[env].starter_files
    if starter:
        # -n: never over a file the user has; -P: never through a link.
        lines.append(f"cp -RnP {shlex.quote(starter)}/. {shlex.quote(folder)}/")
    for shared in spec.data.shared:
        if shared.link:
            link = shlex.quote(f"{home}/{shared.link}")
            lines.append(f"[ -e {link} ] || [ -L {link} ] || ln -s "
                         f"{shlex.quote(shared.path)} {link}")
    return "\n".join(lines) + "\n"


def _hook_runner(spec: HubSpec, hooks: list[Hook]) -> str:
    """Run each hook's script (from HUBKEEPER_HOOK_<n>) with its timeout; on_failure
    decides whether a failure stops the start."""
    if not hooks:
        return ""
    fail = spec.hooks.on_failure == "fail"
    lines = ["set +e", 'cd "$HUBKEEPER_HOME" 2>/dev/null || cd /',
             'hook_file=$(mktemp)']
    for index, hook in enumerate(hooks):
        label = shlex.quote(hook.script)
        lines += [
            f'printenv HUBKEEPER_HOOK_{index} > "$hook_file" && chmod 700 "$hook_file"',
            f'timeout -s KILL {int(hook.timeout + 0.999)} "$hook_file"',
            "status=$?",
            f'if [ "$status" -ne 0 ]; then echo "hubkeeper: start-up script {label} '
            f'failed (exit $status)" >&2;{" exit 1;" if fail else ""} fi',
        ]
    lines.append('rm -f "$hook_file"')
    return "\n".join(lines) + "\n"


def _group_links(spec: HubSpec, links: list[tuple[str, str]]) -> str:
    home = spec.kubernetes.home_mount
    lines = []
    for link, path in links:
        target = shlex.quote(f"{home}/{link}")
        lines.append(f"[ ! -d {shlex.quote(path)} ] || [ -e {target} ] || [ -L {target} ] "
                     f"|| ln -s {shlex.quote(path)} {target}")
    return "\n".join(lines) + "\n"


# --- scheduling, pre-puller, culling --------------------------------------------------------

def _scheduling(spec: HubSpec, roster: Roster) -> CommentedMap:
    kube = spec.kubernetes
    students = sum(1 for member in roster.active if not member.admin)
    replicas = students if kube.placeholders is None else kube.placeholders
    scheduling = _map({
        "podPriority": {"enabled": True},
        "userPlaceholder": _map({"enabled": replicas > 0, "replicas": replicas}),
    })
    if replicas:
        _note(scheduling, "userPlaceholder", f"Room for {replicas} servers (one per student "
              "on the roster, or kubernetes.placeholders) kept by placeholder pods that real "
              "users' pods push out: a class logging in at once does not wait for new nodes "
              "(z2jh#987). Lower it between classes: helm upgrade ... --set "
              "scheduling.userPlaceholder.replicas=0", 1)
    else:
        _note(scheduling, "userPlaceholder", "No placeholders: hub.yaml lists no students. "
              "Set kubernetes.placeholders to the size of a class that logs in at once.", 1)
    return scheduling


def _pre_puller() -> CommentedMap:
    return _map({"hook": {"enabled": True}, "continuous": {"enabled": True},
                 "pullProfileListImages": True})


def _cull(spec: HubSpec) -> CommentedMap:
    culling = spec.culling
    cull = _map({"enabled": culling.enabled})
    if culling.enabled:
        cull.update({"users": False, "adminUsers": True, "removeNamedServers": False,
                     "timeout": int(culling.idle), "every": int(culling.every),
                     "maxAge": int(culling.max_age)})
        _note(cull, "users", "Culling stops idle servers and never deletes users: a deleted "
              "user loses the hub's record of them.", 1)
    return cull


def start_timeout(spec: HubSpec) -> int:
    """A pod's start with its hooks (what singleuser.startTimeout gets)."""
    hooks = spec.hooks.as_root + spec.hooks.as_user
    return POD_START_SECONDS + int(sum(hook.timeout for hook in hooks) + 0.999)


def z2jh_secrets(spec: HubSpec, secrets: Mapping[str, str]) -> CommentedMap:
    """The values that hold secrets, from the state dir's files (`secrets` by name)."""
    config = _map()
    kind = spec.auth.kind
    if kind == "shared-password":
        config["SharedPasswordAuthenticator"] = _map({
            "user_password": secrets["shared-password"],
            "admin_password": secrets["admin-password"]})
    elif kind == "github":
        config["GitHubOAuthenticator"] = _map({
            "client_id": secrets["github-client-id"],
            "client_secret": secrets["github-client-secret"]})
    values = _map({"hub": _map({"config": config})})
    values.yaml_set_start_comment(
        f"Secrets of hub {spec.hub.name!r} for the Zero to JupyterHub chart, written by "
        "hubkeeper export z2jh --secrets.\nKeep this file private (0600); pass it to helm "
        "after values.yaml.")
    return values


"""The `singleuser` section of the Zero to JupyterHub values (render/z2jh.py): the users'
pods (image, profiles per environment, home and data volumes, limits, hooks as init
containers, group folder links), and the small builders of ruamel maps both modules use.
Pure, like the rest of the export.
"""

from __future__ import annotations

import posixpath
import shlex
import textwrap
from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import LiteralScalarString

from hubkeeper.config.environments import Hook
from hubkeeper.config.model import HubSpec, default_environment
from hubkeeper.config.servers import ui_url
from hubkeeper.render.hubkeeper_services import ACTIVITY_DEFAULT, activity_interval

# The chart's names for the home volume; written out because the init containers mount it.
HOME_VOLUME = "volume-{user_server}"
HOME_CLAIM = "claim-{user_server}"
# A pod pulls its image and starts JupyterLab: the chart's default start timeout.
POD_START_SECONDS = 300


def yaml_note(mapping: CommentedMap, key: str, text: str, depth: int) -> None:
    """A comment above `key`, at its indentation, folded to fit 100 columns."""
    lines = textwrap.wrap(text, width=98 - 2 * depth, break_on_hyphens=False)
    mapping.yaml_set_comment_before_after_key(key, before="\n".join(lines), indent=2 * depth)


def yaml_map(items: Mapping[str, Any] | None = None) -> CommentedMap:
    return CommentedMap(items or {})


def data_claim(spec: HubSpec, path: str) -> str:
    given = spec.kubernetes.data_claims.get(path)
    if given:
        return given
    return f"{spec.hub.name}-{posixpath.basename(path)}".lower().replace("_", "-")


def start_timeout(spec: HubSpec) -> int:
    """A pod's start with its hooks (what singleuser.startTimeout gets)."""
    hooks = spec.hooks.as_root + spec.hooks.as_user
    return POD_START_SECONDS + int(sum(hook.timeout for hook in hooks) + 0.999)


def chart_image(reference: str) -> CommentedMap:
    """name and tag as the chart wants them ('name:tag'; a digest stays in the name)."""
    if "@" in reference:
        return yaml_map({"name": reference, "tag": ""})
    name, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return yaml_map({"name": reference, "tag": "latest"})
    return yaml_map({"name": name, "tag": tag})


def quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity (Gi, Mi: powers of 1024, as hub.yaml's sizes)."""
    for unit, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def byte_size(size: int) -> str | int:
    """Bytes as KubeSpawner's memory sizes: K, M, G, T are powers of 1024, as in hub.yaml
    (it refuses Kubernetes' Gi)."""
    for unit, factor in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return size


def singleuser_values(spec: HubSpec, scripts: Mapping[str, str]) -> CommentedMap:
    kube = spec.kubernetes
    default = default_environment(spec)
    assert default is not None, "kubernetes_problems wants environments"
    single = single_environment(spec)
    ui = (single and spec.environments[single].ui) or spec.servers.ui
    singleuser = yaml_map({"image": chart_image(spec.environments[default].image or ""),
                           "uid": kube.uid, "fsGid": kube.fs_gid, "defaultUrl": ui_url(ui)})
    storage = yaml_map({
        "type": "dynamic",
        "capacity": quantity(kube.home_size),
        "homeMountPath": kube.home_mount,
        "dynamic": yaml_map({"pvcNameTemplate": HOME_CLAIM, "volumeNameTemplate": HOME_VOLUME,
                             "storageAccessModes": ["ReadWriteOnce"]}),
    })
    if kube.storage_class:
        storage["dynamic"]["storageClass"] = kube.storage_class
    yaml_note(storage, "type", "One volume per user, made at their first start. It is not part "
              "of the Helm release: `helm uninstall` leaves it, and so does deleting the user "
              "(hub.config.KubeSpawner.delete_pvc). Use a StorageClass with reclaimPolicy: "
              "Retain so that deleting a claim keeps the disk.", 2)
    if spec.data.shared:
        storage["extraVolumes"] = [
            {"name": f"hubkeeper-data-{index}",
             "persistentVolumeClaim": {"claimName": data_claim(spec, shared.path),
                                       "readOnly": True}}
            for index, shared in enumerate(spec.data.shared)]
        storage["extraVolumeMounts"] = [
            {"name": f"hubkeeper-data-{index}", "mountPath": shared.path, "readOnly": True}
            for index, shared in enumerate(spec.data.shared)]
        yaml_note(storage, "extraVolumes", "data.shared: read-only for every server. Create each "
                  "claim (ReadOnlyMany) and fill it before the first start (docs/kubernetes.md).",
                  2)
    singleuser["storage"] = storage
    limits = spec.limits
    if limits.memory:
        singleuser["memory"] = yaml_map({
            "limit": byte_size(limits.memory),
            "guarantee": byte_size(int(limits.memory * kube.memory_guarantee))})
    if limits.cpu:
        singleuser["cpu"] = yaml_map({"limit": limits.cpu,
                                      "guarantee": round(limits.cpu * kube.cpu_guarantee, 3)})
    # servers.env for everyone; an environment's own over it (its profile's, merged by
    # KubeSpawner), and the groups' over both (hubkeeper-groups in hub.extraConfig)
    extra_env = yaml_map(spec.servers.env)
    if not single:
        singleuser["profileList"] = [_profile(spec, name, scripts) for name in spec.environments]
        if extra_env:
            singleuser["extraEnv"] = extra_env
    else:
        singleuser["initContainers"] = _init_containers(spec, default, scripts)
        extra_env.update(spec.environments[single].env)
        extra_env["HUBKEEPER_ENVIRONMENT"] = default
        singleuser["extraEnv"] = extra_env
    links = [(folder.link, folder.path) for folder in spec.data.group_folders if folder.link]
    if links:
        singleuser["lifecycleHooks"] = yaml_map({"postStart": {"exec": {"command": [
            "/bin/sh", "-c", _escape(_group_links(spec, links))]}}})
        yaml_note(singleuser, "lifecycleHooks", "data.group_folders links: made in the server's "
                  "container, where the folders of the user's groups are mounted.", 1)
    interval = activity_interval(spec.culling.idle) if spec.culling.enabled else None
    if interval and interval != ACTIVITY_DEFAULT:
        extra_env = singleuser.setdefault("extraEnv", yaml_map())
        extra_env["JUPYTERHUB_ACTIVITY_INTERVAL"] = str(interval)
    if spec.hooks.as_root or spec.hooks.as_user:
        singleuser["startTimeout"] = start_timeout(spec)
    return singleuser


def single_environment(spec: HubSpec) -> str | None:
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
            "environment": {**env.env, "HUBKEEPER_ENVIRONMENT": name},
            "notebook_dir": f"{spec.kubernetes.home_mount}/{name}",
        },
    }
    if env.ui:
        profile["kubespawner_override"]["default_url"] = ui_url(env.ui)
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

"""What a Zero to JupyterHub install would make of exported values, without a cluster.

No Kubernetes API server runs here (this is the one mocked boundary). Instead:
- `schema_errors(values)` checks them against the chart's values schema, as `helm lint` does;
- `spawner_config(values)` turns them into KubeSpawner configuration the way the chart's
  jupyterhub_config.py does for the keys the export writes (its documented mapping), then runs
  hub.extraConfig with `c` bound, as the chart does;
- `user_pod(...)` builds the pod and the home volume claim with KubeSpawner's own builders.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from jsonschema import Draft7Validator
from traitlets.config import Config

SCHEMA = Path(__file__).parents[1] / "data" / "z2jh" / "values.schema.yaml"

# A kubeconfig for a server that is not there: KubeSpawner loads one when it is made, and
# no test may reach a real cluster.
NO_CLUSTER = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: hub}}]
current-context: none
"""


def schema_errors(values: dict[str, Any]) -> list[str]:
    validator = Draft7Validator(yaml.safe_load(SCHEMA.read_text()))
    return sorted(f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
                  for error in validator.iter_errors(values))


def spawner_config(values: dict[str, Any]) -> Config:
    c = Config()
    hub = values.get("hub", {})
    for section, settings in hub.get("config", {}).items():
        for key, value in settings.items():
            c[section][key] = copy.deepcopy(value)
    single = values.get("singleuser", {})
    image = single.get("image", {})
    if image.get("name"):
        c.KubeSpawner.image = (f"{image['name']}:{image['tag']}" if image.get("tag")
                               else image["name"])
    for key, trait in (("uid", "uid"), ("fsGid", "fs_gid"), ("initContainers", "init_containers"),
                       ("lifecycleHooks", "lifecycle_hooks"), ("profileList", "profile_list"),
                       ("extraEnv", "environment"), ("startTimeout", "start_timeout"),
                       ("defaultUrl", "default_url")):
        if key in single:
            c.KubeSpawner[trait] = copy.deepcopy(single[key])
    for key, trait in (("memory", "mem"), ("cpu", "cpu")):
        for part in ("limit", "guarantee"):
            if single.get(key, {}).get(part) is not None:
                c.KubeSpawner[f"{trait}_{part}"] = single[key][part]
    storage = single.get("storage", {})
    volumes: dict[str, Any] = {}
    mounts: dict[str, Any] = {}
    if storage.get("type") == "dynamic":
        dynamic = storage.get("dynamic", {})
        name = dynamic.get("volumeNameTemplate", "volume-{user_server}")
        c.KubeSpawner.pvc_name_template = dynamic.get("pvcNameTemplate", "claim-{user_server}")
        c.KubeSpawner.storage_pvc_ensure = True
        if dynamic.get("storageClass"):
            c.KubeSpawner.storage_class = dynamic["storageClass"]
        c.KubeSpawner.storage_access_modes = dynamic.get("storageAccessModes",
                                                         ["ReadWriteOnce"])
        c.KubeSpawner.storage_capacity = storage.get("capacity")
        volumes[name] = {"name": name, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
        mounts[name] = {"name": name, "mountPath": storage["homeMountPath"]}
    for volume in storage.get("extraVolumes") or []:
        volumes[volume["name"]] = volume
    for index, mount in enumerate(storage.get("extraVolumeMounts") or []):
        mounts[f"{index}-extra"] = mount
    c.KubeSpawner.volumes = volumes
    c.KubeSpawner.volume_mounts = mounts
    for _, source in sorted(hub.get("extraConfig", {}).items()):
        exec(compile(source, "<hub.extraConfig>", "exec"), {"c": c})  # as the chart does
    return c


def spawner_for(values: dict[str, Any], user: str, groups: list[str]) -> Any:
    """KubeSpawner as the hub makes it for `user` in `groups` (KUBECONFIG must point at
    NO_CLUSTER: see the kubeconfig fixture)."""
    from kubespawner import KubeSpawner

    who = SimpleNamespace(name=user, id=1, url=f"/user/{user}/",
                          groups=[SimpleNamespace(name=group) for group in groups])
    return KubeSpawner(_mock=True, config=spawner_config(values), user=who)


def user_pod(values: dict[str, Any], user: str, groups: list[str],
             profile: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, home claim) as KubeSpawner would create them for `user` in `groups`, with the
    hub's steps before a start: the pre-spawn hook, then the chosen profile."""
    return asyncio.run(_user_pod(values, user, groups, profile))


async def _user_pod(values: dict[str, Any], user: str, groups: list[str],
                    profile: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    from kubernetes_asyncio.client import ApiClient

    spawner = spawner_for(values, user, groups)
    spawner.user_options = {"profile": profile} if profile else {}
    hook = spawner.run_pre_spawn_hook()
    if asyncio.iscoroutine(hook):
        await hook
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as client:
        return (client.sanitize_for_serialization(pod),
                client.sanitize_for_serialization(spawner.get_pvc_manifest()))


def offered(values: dict[str, Any], groups: list[str]) -> list[str]:
    """The environments (profile slugs) a user in `groups` is offered on the spawn page."""

    async def listed() -> list[str]:  # KubeSpawner is made inside the hub's event loop
        spawner = spawner_for(values, "someone", groups)
        profiles = spawner.profile_list
        if callable(profiles):
            profiles = profiles(spawner)
        return [profile["slug"] for profile in profiles]

    return asyncio.run(listed())

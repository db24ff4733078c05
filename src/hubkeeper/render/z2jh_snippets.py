"""Python that the exported values put in the hub's configuration (hub.extraConfig).

The chart runs these after its own configuration, with `c` bound. They carry what values
alone cannot say: what depends on a user's groups, GitHub teams as groups, nativeauthenticator's
pages. Each is fixed code plus one JSON document, so the data is what changes between hubs.
"""

from __future__ import annotations

import json
from typing import Any

GROUPS = '''\
# hubkeeper: what depends on a user's groups (hub.yaml environments.<name>.groups,
# limits.groups, data.group_folders, servers.groups). Written by `hubkeeper export
# z2jh`: edit hub.yaml.
import copy
import json

from tornado import web

HUBKEEPER_GROUPS = json.loads(r"""{data}""")


def hubkeeper_groups_of(spawner):
    return {{group.name for group in spawner.user.groups}}


def hubkeeper_group_env(spawner):
    """servers.groups: for each name, the value of the first of the user's groups listed."""
    groups = hubkeeper_groups_of(spawner)
    env = {{}}
    for entry in reversed(HUBKEEPER_GROUPS["env"]):
        if entry["group"] in groups:
            env.update(entry["env"])
    return env


def hubkeeper_profiles(spawner):
    """The environments open to the user's groups (an environment without groups is open
    to everyone), each with the groups' variables over its own. A start asking for another
    one is refused by KubeSpawner."""
    groups = hubkeeper_groups_of(spawner)
    access = HUBKEEPER_GROUPS["access"]
    profiles = [copy.deepcopy(profile) for profile in HUBKEEPER_PROFILES
                if not access.get(profile["slug"]) or groups & set(access[profile["slug"]])]
    if not profiles:
        raise web.HTTPError(403, "No environment of this hub is open to your groups; "
                            "ask your instructor.")
    env = hubkeeper_group_env(spawner)
    for profile in profiles:
        override = profile.setdefault("kubespawner_override", {{}})
        override["environment"] = {{**override.get("environment", {{}}), **env}}
    return profiles


def hubkeeper_with(existing, name, item):
    """`existing` (KubeSpawner's volumes or volume_mounts: a dict or a list) plus item."""
    if isinstance(existing, dict):
        return {{**existing, name: item}}
    return [*existing, item]


def hubkeeper_before_start(spawner):
    """Limits of the user's groups (the largest of each, replacing the hub-wide one), the
    group folders of the groups they are in, and their variables (a profile, loaded after
    this hook, carries them again over its environment's own)."""
    groups = hubkeeper_groups_of(spawner)
    spawner.environment = {{**spawner.environment, **hubkeeper_group_env(spawner)}}
    limits = [HUBKEEPER_GROUPS["limits"][name] for name in sorted(groups)
              if name in HUBKEEPER_GROUPS["limits"]]
    memory = [limit["memory"] for limit in limits if limit.get("memory")]
    if memory:
        spawner.mem_limit = max(memory)
        spawner.mem_guarantee = int(max(memory) * HUBKEEPER_GROUPS["memory_guarantee"])
    cpu = [limit["cpu"] for limit in limits if limit.get("cpu")]
    if cpu:
        spawner.cpu_limit = max(cpu)
        spawner.cpu_guarantee = max(cpu) * HUBKEEPER_GROUPS["cpu_guarantee"]
    for folder in HUBKEEPER_GROUPS["folders"]:
        if folder["group"] not in groups:
            continue
        spawner.volumes = hubkeeper_with(spawner.volumes, folder["name"], {{
            "name": folder["name"],
            "persistentVolumeClaim": {{"claimName": folder["claim"]}}}})
        spawner.volume_mounts = hubkeeper_with(spawner.volume_mounts, folder["name"], {{
            "name": folder["name"], "mountPath": folder["path"]}})


if HUBKEEPER_GROUPS["profiles"] and (HUBKEEPER_GROUPS["access"] or HUBKEEPER_GROUPS["env"]):
    HUBKEEPER_PROFILES = c.KubeSpawner.profile_list  # singleuser.profileList
    c.KubeSpawner.profile_list = hubkeeper_profiles
c.KubeSpawner.pre_spawn_hook = hubkeeper_before_start
'''

GITHUB_TEAMS = '''\
# hubkeeper: GitHub teams become hub groups at each login (hub.yaml
# auth.github.teams_to_groups); users keep their roster groups; members of
# auth.github.admin_teams are admins, decided at each login. Written by `hubkeeper
# export z2jh`: edit hub.yaml.
import json

from oauthenticator.github import GitHubOAuthenticator

HUBKEEPER_GITHUB = json.loads(r"""{data}""")


def hubkeeper_teams(auth_state):
    return {{f"{{team['organization']['login']}}:{{team['slug']}}".lower()
             for team in auth_state.get("teams") or []}}


class HubkeeperGitHubAuthenticator(GitHubOAuthenticator):
    async def get_user_groups(self, auth_state):
        login = self.normalize_username(auth_state[self.user_auth_state_key]["login"])
        member_of = hubkeeper_teams(auth_state)
        groups = {{group for team, group in HUBKEEPER_GITHUB["teams"].items()
                   if team.lower() in member_of}}
        return groups | set(HUBKEEPER_GITHUB["roster"].get(login, []))

    async def update_auth_model(self, auth_model):
        auth_model = await super().update_auth_model(auth_model)
        if HUBKEEPER_GITHUB["admin_teams"]:
            in_team = bool(hubkeeper_teams(auth_model["auth_state"])
                           & set(HUBKEEPER_GITHUB["admin_teams"]))
            auth_model["admin"] = in_team or auth_model["name"] in self.admin_users
        return auth_model


c.JupyterHub.authenticator_class = HubkeeperGitHubAuthenticator
c.GitHubOAuthenticator.populate_teams_in_auth_state = True
c.GitHubOAuthenticator.manage_groups = True
'''

NATIVE_TEMPLATES = '''\
# hubkeeper: nativeauthenticator's pages (sign-up, authorize, change password), as its
# documentation asks.
import os

import nativeauthenticator

c.JupyterHub.template_paths = [
    os.path.join(os.path.dirname(nativeauthenticator.__file__), "templates")]
'''


def with_data(template: str, data: dict[str, Any]) -> str:
    """`template` with its JSON document filled in. JSON never holds three quotes in a row
    (a quote inside a string is escaped), so it cannot end the raw string around it."""
    return template.format(data=json.dumps(data, indent=1, sort_keys=True))

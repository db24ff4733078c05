"""`hubkeeper export z2jh`: hub.yaml -> Zero to JupyterHub values.

No Kubernetes API server can run here, so each exported file is checked three ways: against
the chart's values schema (what `helm lint` checks), against golden files, and through the
pods and volume claims KubeSpawner's own builders make of it (tests/support/z2jh.py). The
scripts the pods would run are run here with /bin/sh.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubkeeper.config.loader import load
from hubkeeper.render.z2jh import dump, z2jh_values
from hubkeeper.roster import build_roster
from hubkeeper.roster.policy import name_problem
from tests.support.z2jh import NO_CLUSTER, offered, schema_errors, spawner_config, user_pod
from tests.unit.test_cli import HUBKEEPER

ROOT = Path(__file__).parents[2]
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = {"cluster": ROOT / "examples" / "cluster" / "hub.yaml",
            "growth": ROOT / "examples" / "growth" / "hub.yaml"}


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(NO_CLUSTER)
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


def hubkeeper(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUBKEEPER, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def exported(config: Path) -> dict[str, Any]:
    result = hubkeeper("-c", str(config), "export", "z2jh")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_validate_against_the_charts_schema_and_match_golden(name: str) -> None:
    result = hubkeeper("-c", str(EXAMPLES[name]), "export", "z2jh")
    assert result.returncode == 0, result.stderr
    values = yaml.safe_load(result.stdout)
    assert schema_errors(values) == []
    text = result.stdout.replace(
        f"hubkeeper {__import__('hubkeeper').__version__}", "hubkeeper VERSION")
    golden = GOLDEN / f"z2jh-{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_the_schema_check_bites() -> None:
    """The validation above can fail: the chart refuses what it does not know."""
    values = exported(EXAMPLES["cluster"])
    del values["singleuser"]["storage"]["homeMountPath"]
    values["cull"]["users"] = "no"
    values["hub"]["config"]["lowercase"] = {}
    errors = schema_errors(values)
    assert any("homeMountPath" in error for error in errors), errors
    assert any(error.startswith("cull.users") for error in errors), errors
    assert any("lowercase" in error for error in errors), errors


def test_users_data_is_kept_and_users_are_never_culled() -> None:
    values = exported(EXAMPLES["cluster"])
    assert values["hub"]["config"]["KubeSpawner"]["delete_pvc"] is False
    assert values["cull"] == {"enabled": True, "users": False, "adminUsers": True,
                              "removeNamedServers": False, "timeout": 3600, "every": 600,
                              "maxAge": 28800}
    auth = values["hub"]["config"]["Authenticator"]
    assert auth["blocked_users"] == ["dropped1"] and "dropped1" not in auth["allowed_users"]
    assert auth["admin_users"] == ["prof"]
    assert values["hub"]["config"]["JupyterHub"]["load_groups"] == {
        "lab": {"users": ["ben"]}, "ta": {"users": ["ana"]}}
    # One placeholder per student (not the admin, not the locked one), and images pre-pulled.
    assert values["scheduling"]["userPlaceholder"] == {"enabled": True, "replicas": 4}
    assert values["scheduling"]["podPriority"] == {"enabled": True}
    assert values["prePuller"]["continuous"] == {"enabled": True}
    assert values["proxy"]["https"]["letsencrypt"] == {
        "contactEmail": "hub-admin@phys.example.edu"}
    output = hubkeeper("-c", str(EXAMPLES["cluster"]), "export", "z2jh").stdout
    text = " ".join(line.strip().lstrip("#").strip() for line in output.splitlines())
    for trap in ("helm uninstall` leaves it", "reclaimPolicy: Retain", "z2jh#987",
                 "never deletes users", "KubeSpawner's default deletes it"):
        assert trap in text


def test_a_students_pod_and_home_volume(kubeconfig: Path) -> None:
    values = exported(EXAMPLES["cluster"])
    pod, claim = user_pod(values, "cara", [])
    spec = pod["spec"]
    server = spec["containers"][0]
    assert server["image"] == "registry.example.edu/phys101/python:2026.09"
    assert server["resources"] == {"limits": {"cpu": 1.0, "memory": 2 * 2**30},
                                   "requests": {"cpu": 0.1, "memory": 2 * 2**30}}
    assert _env(server)["JUPYTERHUB_ROOT_DIR"] == "/home/jovyan/python"
    assert _env(server)["HUBKEEPER_ENVIRONMENT"] == "python"
    assert spec["securityContext"]["fsGroup"] == 100
    assert server["securityContext"]["runAsUser"] == 1000
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    home = volumes["volume-cara"]["persistentVolumeClaim"]["claimName"]
    assert home == claim["metadata"]["name"] == "claim-cara"
    assert volumes["hubkeeper-data-0"]["persistentVolumeClaim"] == {
        "claimName": "phys101-datasets", "readOnly": True}
    assert "hubkeeper-folder-0" not in volumes  # not in the lab group
    mounts = {mount["mountPath"]: mount for mount in server["volumeMounts"]}
    assert mounts["/home/jovyan"]["name"] == "volume-cara"
    assert mounts["/srv/datasets"]["readOnly"] is True
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "retained-ssd",
                             "resources": {"requests": {"storage": "5Gi"}}}
    init = {container["name"]: container for container in spec["initContainers"]}
    assert list(init) == ["hubkeeper-hooks-as-root", "hubkeeper-prepare"]
    assert init["hubkeeper-hooks-as-root"]["securityContext"]["runAsUser"] == 0
    assert init["hubkeeper-prepare"]["securityContext"]["runAsUser"] == 1000
    for container in init.values():
        assert container["volumeMounts"] == [{"name": "volume-cara", "mountPath": "/home/jovyan"}]
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env["HUBKEEPER_USER"] == "cara"
    # The hook reaches the pod byte for byte, braces and all, after KubeSpawner's formatting.
    env = {item["name"]: item["value"] for item in init["hubkeeper-prepare"]["env"]}
    assert env["HUBKEEPER_HOOK_0"] == (EXAMPLES["cluster"].parent / "start/as-user.sh").read_text()


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container["env"]}


def test_group_members_get_their_limits_and_folders(kubeconfig: Path) -> None:
    values = exported(EXAMPLES["cluster"])
    pod, _ = user_pod(values, "ben", ["lab"], profile="gpu")
    spec = pod["spec"]
    server = spec["containers"][0]
    assert server["image"] == "registry.example.edu/phys101/torch:2026.09"
    assert server["resources"]["limits"] == {"cpu": 1.0, "memory": 8 * 2**30}
    assert server["resources"]["requests"]["memory"] == 8 * 2**30
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["hubkeeper-folder-0"]["persistentVolumeClaim"] == {
        "claimName": "phys101-lab"}
    mounts = {mount["mountPath"]: mount for mount in server["volumeMounts"]}
    assert mounts["/srv/projects/lab"]["name"] == "hubkeeper-folder-0"
    assert mounts["/home/jovyan"]["name"] == "volume-ben"  # the home is still there
    assert _env(server)["JUPYTERHUB_ROOT_DIR"] == "/home/jovyan/gpu"
    assert all(c["image"].endswith("torch:2026.09") for c in spec["initContainers"])
    # ana is in ta (4G, 2 CPUs); someone in ta and lab gets the largest of each.
    pod, _ = user_pod(values, "ana", ["ta", "lab"])
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": 2.0, "memory": 8 * 2**30}


def test_environments_follow_groups(kubeconfig: Path) -> None:
    values = exported(EXAMPLES["cluster"])
    assert offered(values, []) == ["python"]
    assert offered(values, ["ta"]) == ["python", "gpu"]
    with pytest.raises(ValueError, match="gpu"):  # a forged start asking for it
        user_pod(values, "cara", [], profile="gpu")


def test_no_environment_for_the_users_groups_is_refused(tmp_path: Path,
                                                         kubeconfig: Path) -> None:
    from tornado.web import HTTPError

    config = tmp_path / "hub.yaml"
    config.write_text(CLUSTER_BASE.replace("admins: [prof]}", "admins: [prof], groups: "
                                           "{lab: [prof]}}")
                      + "environments:\n  gpu: {image: x/gpu:1, groups: [lab]}\n")
    values = exported(config)
    with pytest.raises(HTTPError) as refused:
        offered(values, [])
    assert refused.value.status_code == 403
    assert offered(values, ["lab"]) == ["gpu"]


def test_the_github_teams_snippet_maps_teams_to_groups(kubeconfig: Path) -> None:
    values = exported(EXAMPLES["growth"])
    c = spawner_config(values)
    authenticator_class = c.JupyterHub.authenticator_class
    assert c.GitHubOAuthenticator.manage_groups is True
    authenticator = authenticator_class(config=c)
    team = {"organization": {"login": "Growth-Astro-School"}, "slug": "tas"}
    other = {"organization": {"login": "elsewhere"}, "slug": "tas"}
    groups = asyncio.run(authenticator.get_user_groups(
        {"github_user": {"login": "Alice"}, "teams": [team, other]}))
    assert groups == {"tas"}
    assert asyncio.run(authenticator.get_user_groups(
        {"github_user": {"login": "bob"}, "teams": [other]})) == set()
    assert "load_groups" not in values["hub"]["config"]["JupyterHub"]  # GitHub decides


def test_the_github_teams_snippet_makes_the_admin_teams_admins(kubeconfig: Path) -> None:
    """The TAs' team of examples/growth are admins on Kubernetes too: the snippet's
    authenticator, its teams listed by the GitHub stand-in over HTTP."""
    from tests.support.github_standin import GitHubStandIn, OAuthApp

    c = spawner_config(exported(EXAMPLES["growth"]))
    authenticator = c.JupyterHub.authenticator_class(config=c)
    app = OAuthApp("id", "secret", "https://growth.example.org/hub/oauth_callback")
    with GitHubStandIn(app) as github:
        authenticator.github_api = f"{github.url}/api/v3"
        github.register("ta", 1, teams=("Growth-Astro-School:TAs",))
        github.register("student", 2, teams=("growth-astro-school:participants",))

        def admin(login: str) -> bool | None:
            status, location = github.authorize(
                {"client_id": "id", "redirect_uri": app.callback_url}, github.sign_in(login))
            code = location.partition("code=")[2]
            token = github.access_token({"client_id": "id", "client_secret": "secret",
                                         "code": code})
            model = {"name": login, "admin": None, "auth_state": {
                "token_response": token, "github_user": {"login": login, "email": "x@y"}}}
            return asyncio.run(authenticator.update_auth_model(model))["admin"]

        assert admin("ta") is True
        assert admin("student") is False


def test_the_native_snippet_finds_its_templates(kubeconfig: Path) -> None:
    values = exported(EXAMPLES["cluster"])
    c = spawner_config(values)
    (templates,) = c.JupyterHub.template_paths
    assert (Path(templates) / "signup.html").is_file()


def test_the_pods_start_up_scripts_run(tmp_path: Path, kubeconfig: Path) -> None:
    """The init containers' shell scripts, as KubeSpawner formats them, run with /bin/sh: the
    environment folder, starter files never over the user's, the data link, the hook with
    its braces, a failing hook stopping the start, a hook past its timeout killed."""
    home, starter = tmp_path / "home", tmp_path / "starter"
    home.mkdir()
    starter.mkdir()
    (starter / "intro.ipynb").write_text("starter")
    (starter / "mine.ipynb").write_text("starter")
    (home / "py").mkdir()
    (home / "py" / "mine.ipynb").write_text("the user's")
    hook = tmp_path / "as-user.sh"
    hook.write_text('#!/bin/sh\nprintf "%s" "${HUBKEEPER_USER}:{literal}" > "$HOME/hook-ran"\n')
    hook.chmod(0o755)
    config = tmp_path / "hub.yaml"
    config.write_text(CLUSTER_BASE + f"""
environments:
  py: {{image: x/py:1, starter_files: {starter}}}
data:
  shared: [{{path: /srv/data, link: data}}]
hooks:
  as_user: [{{script: as-user.sh, timeout: 2s}}]
kubernetes: {{home_mount: {home}}}
""")
    values = exported(config)
    pod, _ = user_pod(values, "cara", [])
    (prepare,) = pod["spec"]["initContainers"]

    def run(container: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        env = {item["name"]: item["value"] for item in container["env"]}
        return subprocess.run(container["command"], env={"PATH": os.environ["PATH"], **env},
                              capture_output=True, text=True, timeout=60)

    result = run(prepare)
    assert result.returncode == 0, result.stderr
    assert (home / "py" / "intro.ipynb").read_text() == "starter"
    assert (home / "py" / "mine.ipynb").read_text() == "the user's"
    assert os.readlink(home / "data") == "/srv/data"
    assert (home / "hook-ran").read_text() == "cara:{literal}"
    assert run(prepare).returncode == 0  # twice: nothing changes, nothing fails

    for body, reason in (("exit 3", "exit 3"), ("sleep 30", "exit 137")):
        hook.write_text(f"#!/bin/sh\n{body}\n")
        pod, _ = user_pod(exported(config), "cara", [])
        result = run(pod["spec"]["initContainers"][0])
        assert result.returncode == 1
        assert f"start-up script as-user.sh failed ({reason})" in result.stderr


CLUSTER_BASE = """\
hub: {name: k8s}
auth: {kind: shared-password}
users: {allowed: [cara], admins: [prof]}
backend: kubernetes
"""


@pytest.mark.parametrize("hub_yaml, field, words", [
    ("auth: {kind: pam}\n", "auth.kind", "pam checks this machine's Linux passwords"),
    ("environments:\n  py: {packages: [numpy]}\n", "environments.py", "needs image"),
    ("environments:\n  py: {image: x/py:1, home_template: t}\n",
     "environments.py.home_template", "starter_files"),
    ("services: [{name: dash, url: 'http://127.0.0.1:9000', hub_login: false}]\n",
     "services[0]", "its own Deployment"),
    ("users: {allowed: [cara], account_prefix: jupyter-}\n", "users.account_prefix", "remove"),
    ("web: {enabled: true}\n", "web.enabled", "set it to false"),
    ("environments:\n  py: {image: x/py:1, server_config: [s.py]}\n",
     "environments.py.server_config", "jupyter_server_config.py"),
    ("limits: {groups: {tas: {memory: 4G}}}\n", "limits.groups.tas", "not a roster group"),
    ("data: {group_folders: [{path: /srv/lab, group: lab}]}\n", "data.group_folders[0].group",
     "not a roster group"),
])
def test_what_a_cluster_cannot_take_is_refused(tmp_path: Path, hub_yaml: str, field: str,
                                               words: str) -> None:
    lines = [line for line in CLUSTER_BASE.splitlines()
             if not line.startswith(hub_yaml.split(":")[0] + ":")]
    config = tmp_path / "hub.yaml"
    if "environments" not in hub_yaml:
        hub_yaml += "environments:\n  py: {image: x/py:1}\n"
    config.write_text("\n".join(lines) + "\n" + hub_yaml)
    out = tmp_path / "values.yaml"
    for command in (["export", "z2jh", "-o", str(out)], ["check"]):
        result = hubkeeper("-c", str(config), *command)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "hub.yaml:" in result.stderr and f" {field}:" in result.stderr, result.stderr
        assert words in result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [config]


def test_any_backend_exports_and_says_what_is_missing(tmp_path: Path) -> None:
    """A one-machine hub.yaml is refused with the steps for the cluster, at file:line."""
    config = tmp_path / "hub.yaml"
    config.write_text("hub: {name: lab}\nauth: {kind: pam}\nusers: {allowed: [ann]}\n"
                      "environments:\n  py: {packages: [numpy]}\n")
    result = hubkeeper("-c", str(config), "export", "z2jh")
    assert result.returncode == 2
    assert "hub.yaml:2:" in result.stderr and "auth.kind" in result.stderr
    assert "hub.yaml:5:" in result.stderr and "push it" in result.stderr
    assert result.stdout == ""


def test_up_and_apply_refuse_a_kubernetes_hub(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(CLUSTER_BASE.replace("hub: {name: k8s}", "hub: {name: k8s, state_dir: "
                                           f"{tmp_path / 'state'}}}")
                      + "environments:\n  py: {image: x/py:1}\n")
    result = hubkeeper("-c", str(config), "check")
    assert result.returncode == 0, result.stderr
    assert "kubernetes backend" in result.stdout and "export z2jh" in result.stdout
    for verb in ("up", "apply"):
        result = hubkeeper("-c", str(config), verb)
        assert result.returncode == 1, result.stderr
        assert "export z2jh" in result.stderr
    assert not (tmp_path / "state").exists()


def test_files_and_secrets(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "secrets").mkdir(parents=True)
    (state / "secrets" / "shared-password").write_text("students-pass\n")
    (state / "secrets" / "admin-password").write_text("a" * 40 + "\n")
    config = tmp_path / "hub.yaml"
    config.write_text(CLUSTER_BASE.replace("hub: {name: k8s}",
                                           f"hub: {{name: k8s, state_dir: {state}}}")
                      + "environments:\n  py: {image: x/py:1}\n")
    values, secrets = tmp_path / "values.yaml", tmp_path / "secrets.yaml"
    result = hubkeeper("-c", str(config), "export", "z2jh", "-o", str(values),
                       "--secrets", str(secrets))
    assert result.returncode == 0, result.stderr
    assert "helm upgrade --install k8s" in result.stdout
    assert stat.S_IMODE(values.stat().st_mode) == 0o644
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert "students-pass" not in values.read_text()
    merged = yaml.safe_load(values.read_text())
    merged["hub"]["config"].update(yaml.safe_load(secrets.read_text())["hub"]["config"])
    assert merged["hub"]["config"]["SharedPasswordAuthenticator"] == {
        "user_password": "students-pass", "admin_password": "a" * 40}
    assert schema_errors(merged) == []
    # A missing secret writes nothing; options of the other export are refused.
    (state / "secrets" / "admin-password").unlink()
    values.unlink()
    secrets.unlink()
    result = hubkeeper("-c", str(config), "export", "z2jh", "-o", str(values),
                       "--secrets", str(secrets))
    assert result.returncode == 1 and "admin-password" in result.stderr
    assert not values.exists() and not secrets.exists()
    for args in (["z2jh", "--to", str(tmp_path)], ["ann", "-o", str(values)]):
        result = hubkeeper("-c", str(config), "export", *args)
        assert result.returncode == 2 and "Usage" in result.stderr
    assert name_problem("z2jh") is not None  # no user can be called z2jh


def test_values_are_pure_and_repeatable() -> None:
    loaded = load(EXAMPLES["cluster"])
    scripts = {hook.script: (EXAMPLES["cluster"].parent / hook.script).read_text()
               for hook in loaded.spec.hooks.as_root + loaded.spec.hooks.as_user}
    roster = build_roster(loaded)
    first = dump(z2jh_values(loaded.spec, roster, scripts))
    assert first == dump(z2jh_values(loaded.spec, roster, scripts))


SERVERS = """\
servers:
  ui: notebook
  env: {NLTK_DATA: /srv/nltk_data, LEVEL: hub, WHO: hub}
  groups:
    tas: {env: {WHO: tas}}
    lab: {env: {WHO: lab, LAB: 'yes'}}
"""


def test_variables_and_ui_reach_the_pods_by_precedence(tmp_path: Path,
                                                       kubeconfig: Path) -> None:
    """servers.env < environments.<name>.env < servers.groups (the first listed wins); the
    UI hub-wide and per environment (a profile's default_url)."""
    config = tmp_path / "hub.yaml"
    config.write_text(
        CLUSTER_BASE.replace("admins: [prof]}", "admins: [prof], groups: {lab: [prof], "
                             "tas: [prof, cara]}}") + SERVERS +
        "environments:\n  py: {image: x/py:1, default: true, env: {LEVEL: py, WHO: py}}\n"
        "  gpu: {image: x/gpu:1, groups: [lab], ui: /voila/render/intro.ipynb, "
        "env: {LEVEL: gpu}}\n")
    values = exported(config)
    assert schema_errors(values) == []
    assert values["singleuser"]["defaultUrl"] == "/tree"

    def seen(user: str, groups: list[str], profile: str) -> tuple[dict[str, str], str]:
        pod, _ = user_pod(values, user, groups, profile=profile)
        env = _env(pod["spec"]["containers"][0])
        names = ("NLTK_DATA", "LEVEL", "WHO", "LAB", "HUBKEEPER_ENVIRONMENT")
        return {name: env[name] for name in names if name in env}, env["JUPYTERHUB_DEFAULT_URL"]

    assert seen("cara", [], "py") == ({"NLTK_DATA": "/srv/nltk_data", "LEVEL": "py",
                                       "WHO": "py", "HUBKEEPER_ENVIRONMENT": "py"}, "/tree")
    assert seen("cara", ["tas"], "py")[0]["WHO"] == "tas"
    assert seen("prof", ["lab", "tas"], "gpu") == (
        {"NLTK_DATA": "/srv/nltk_data", "LEVEL": "gpu", "WHO": "tas", "LAB": "yes",
         "HUBKEEPER_ENVIRONMENT": "gpu"}, "/voila/render/intro.ipynb")

    # One environment for everyone: no profiles, the environment's UI and variables in
    # singleuser, the groups' through the pre-spawn hook.
    config.write_text(CLUSTER_BASE.replace("admins: [prof]}", "admins: [prof], groups: "
                                           "{lab: [prof], tas: [cara]}}") + SERVERS +
                      "environments:\n  py: {image: x/py:1, ui: lab, env: {LEVEL: py}}\n")
    values = exported(config)
    assert schema_errors(values) == []
    assert "profileList" not in values["singleuser"]
    assert values["singleuser"]["defaultUrl"] == "/lab"
    assert values["singleuser"]["extraEnv"] == {
        "NLTK_DATA": "/srv/nltk_data", "LEVEL": "py", "WHO": "hub",
        "HUBKEEPER_ENVIRONMENT": "py"}
    pod, _ = user_pod(values, "prof", ["lab"])
    assert _env(pod["spec"]["containers"][0])["WHO"] == "lab"
    assert _env(pod["spec"]["containers"][0])["JUPYTERHUB_DEFAULT_URL"] == "/lab"


def test_hub_extra_config_runs_last_in_hub_extra_config(tmp_path: Path,
                                                        kubeconfig: Path) -> None:
    """The escape hatch on a cluster: each hub.extra_config file's text, after hubkeeper's
    own snippets (the chart runs extraConfig in the order of its keys)."""
    (tmp_path / "late.py").write_text("c.KubeSpawner.start_timeout = 1234\n")
    config = tmp_path / "hub.yaml"
    config.write_text(CLUSTER_BASE.replace("hub: {name: k8s}",
                                           "hub: {name: k8s, extra_config: [late.py]}")
                      + "environments:\n  py: {image: x/py:1}\n")
    values = exported(config)
    assert schema_errors(values) == []
    keys = list(values["hub"]["extraConfig"])
    assert keys[-1] == "zz-extra-config-01-late" and keys == sorted(keys)
    assert "hub.extra_config: late.py" in values["hub"]["extraConfig"][keys[-1]]
    assert spawner_config(values).KubeSpawner.start_timeout == 1234
    (tmp_path / "late.py").unlink()
    missing = hubkeeper("-c", str(config), "export", "z2jh")
    assert missing.returncode == 2 and "hub.yaml:1:" in missing.stderr
    assert "hub.extra_config[0]: cannot read" in missing.stderr, missing.stderr
